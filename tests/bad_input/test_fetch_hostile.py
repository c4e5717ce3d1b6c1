"""What else comes from outside, against the real CLI: audio fetched with yt-dlp from a server that trickles or
floods, a Spotify API that trickles or echoes the client secret, and playlist or dump files that are FIFOs or
too big. Each ends in one line (or one skipped item) within its bound, and the store stays as it was."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from siamrec.connectors.files import PLAYLIST_BYTES
from tests.bad_input.hostile import (  # the store fixtures too: one filled store, copied for each test
    SUBPROCESS_TIMEOUT_S,
    HostileServer,
    Reply,
    document,
    filled_home_fixture,  # noqa: F401
    flood,
    store_home_fixture,  # noqa: F401
    trickle,
)
from tests.cli import assert_one_error_line, run_siamrec
from tests.stores import dump_store

pytestmark = pytest.mark.usefixtures("store_home")  # every test starts from a copy of one filled store (at `home`)
SECRET = "sp0tify-Client-Secret-42"
PLAYLIST_ID = "37i9dQZF1DXcBWIGoYBM5M"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        yield hostile


def _only_progress(stderr: str) -> bool:
    return all("━" in line for line in stderr.splitlines() if line.strip())


# ---- yt-dlp fetches --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply,env,reason",
    [
        (trickle(), {"SIAMREC_DOWNLOAD_DEADLINE": "3"}, "the fetch did not finish within 3 s"),
        (flood(256 << 20), {"SIAMREC_MAX_SONG_BYTES": "3000000"}, "the download passed the 3 MiB allowed"),
    ],
    ids=["trickle", "flood without a declared length"],
)
def test_a_fetch_past_its_deadline_or_cap_skips_that_track(
    home: Path, tmp_path: Path, server: HostileServer, reply: Reply, env: dict[str, str], reason: str
) -> None:
    server.answers["song.ogg"] = lambda q: reply
    m3u = tmp_path / "named.m3u"
    m3u.write_text("spotify:track:4uLU6hMCjMI75M1A2tKUQC\n")
    before = dump_store(home)
    args = ("sync-playlists", "--m3u", str(m3u), "--audio-url", f"{server.url}/song.ogg?id={{id}}", "--fetch-interval")
    done = run_siamrec(*args, "0", "--json", env={**os.environ, **env}, timeout=SUBPROCESS_TIMEOUT_S)
    report = json.loads(done.stdout)
    assert done.returncode == 1 and _only_progress(done.stderr), done.stderr
    ((failure,),) = [report["failed"]]
    assert failure["where"] == "spotify:track:4uLU6hMCjMI75M1A2tKUQC" and reason in failure["reason"], failure
    after = dump_store(home)
    assert {uri: after["tracks"][uri] for uri in before["tracks"]} == before["tracks"]
    assert after["tracks"]["spotify:track:4uLU6hMCjMI75M1A2tKUQC"][0] == {}  # named, never embedded


# ---- Spotify ---------------------------------------------------------------------------------------------


def _spotify_env(server: HostileServer) -> dict[str, str]:
    return {
        **os.environ,
        "SPOTIPY_CLIENT_ID": "test-client",
        "SPOTIPY_CLIENT_SECRET": SECRET,
        "SIAMREC_SPOTIFY_API": f"{server.url}/v1/",
        "SIAMREC_SPOTIFY_TOKEN_URL": f"{server.url}/api/token",
    }


def test_a_trickling_spotify_api_stops_at_the_call_deadline(home: Path, server: HostileServer) -> None:
    server.answers["token"] = lambda q: document({"access_token": "a-token-for-the-test", "expires_in": 3600})
    server.answers[PLAYLIST_ID] = lambda q: trickle(headers=True)
    before = dump_store(home)
    done = run_siamrec("sync-playlists", "--spotify", PLAYLIST_ID, env={**_spotify_env(server),
                       "SIAMREC_CALL_DEADLINE": "2"}, timeout=SUBPROCESS_TIMEOUT_S)  # fmt: skip
    assert_one_error_line(done, f"Spotify (playlist {PLAYLIST_ID}) did not finish within 2 s")
    assert dump_store(home) == before


def test_a_token_error_that_echoes_the_client_secret_shows_none(home: Path, server: HostileServer) -> None:
    def token(query: dict[str, str]) -> Reply:
        echoed = {"error": "invalid_client", "error_description": f"bad credentials in {query['_body']} ({SECRET})"}
        return Reply([json.dumps(echoed).encode()], status=400)

    server.answers["token"] = token
    before = dump_store(home)
    done = run_siamrec("sync-playlists", "--spotify", PLAYLIST_ID, env=_spotify_env(server),
                       timeout=SUBPROCESS_TIMEOUT_S)  # fmt: skip
    line = assert_one_error_line(done, "Spotify refused the app credentials")
    assert "invalid_client" in line and SECRET not in done.stderr + done.stdout
    assert dump_store(home) == before


# ---- files that are not playlists ------------------------------------------------------------------------


def test_a_fifo_or_an_oversized_playlist_is_refused_unread(home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.m3u"
    os.mkfifo(fifo)  # nobody writes: reading it would wait forever
    huge = tmp_path / "huge.m3u"
    with open(huge, "wb") as handle:
        handle.truncate(PLAYLIST_BYTES + 1)  # sparse: costs no disk
    before = dump_store(home)
    too_big = f"too big ({PLAYLIST_BYTES + 1:,} bytes; at most {PLAYLIST_BYTES:,} are read)"
    for path, reason in [(fifo, "not a regular file"), (huge, too_big)]:
        done = run_siamrec("playlist", "import", str(path), "--json", timeout=SUBPROCESS_TIMEOUT_S)
        ((failure,),) = [json.loads(done.stdout)["failed"]]
        assert done.returncode == 1 and _only_progress(done.stderr), done.stderr
        assert failure["where"] == str(path) and reason in failure["reason"], failure
        assert dump_store(home) == before


def test_a_fifo_among_dump_slices_is_refused_and_the_rest_read(home: Path, tmp_path: Path) -> None:
    dump = tmp_path / "mpd"
    dump.mkdir()
    os.mkfifo(dump / "mpd.slice.0-999.json")
    before = dump_store(home)
    done = run_siamrec("sync-playlists", "--mpd", str(dump), "--json", timeout=SUBPROCESS_TIMEOUT_S)
    ((failure,),) = [json.loads(done.stdout)["failed"]]
    assert done.returncode == 1 and "not a regular file" in failure["reason"], done.stderr
    assert dump_store(home) == before


def _listing(server: HostileServer, page: object) -> dict[str, str]:
    """A Spotify API (on the hostile server) whose playlist exists and whose item pages are `page`."""
    server.answers["token"] = lambda q: document({"access_token": "a-token-for-the-test", "expires_in": 3600})
    server.answers[PLAYLIST_ID] = lambda q: document({"id": PLAYLIST_ID, "name": "Listed"})
    server.answers["items"] = lambda q: document(page)
    return _spotify_env(server)


@pytest.mark.parametrize(
    "page,message",
    [
        ("again", "does not end (a page again"),
        ("elsewhere", "points elsewhere than its API"),
        (["not", "a", "page"], "is not a page of a listing"),
    ],
    ids=["next forever", "next to another host", "a list for a page"],
)
def test_a_spotify_listing_that_never_ends_or_leaves_the_api_stops_in_one_line(
    home: Path, server: HostileServer, page: object, message: str
) -> None:
    with HostileServer() as elsewhere:  # where a hostile `next` would send the token
        if page == "again":
            page = {"items": [], "next": f"{server.url}/v1/playlists/{PLAYLIST_ID}/items?offset=100"}
        elif page == "elsewhere":
            page = {"items": [], "next": f"{elsewhere.url}/v1/playlists/{PLAYLIST_ID}/items?offset=100"}
        before = dump_store(home)
        done = run_siamrec("sync-playlists", "--spotify", PLAYLIST_ID, env=_listing(server, page),
                           timeout=SUBPROCESS_TIMEOUT_S)  # fmt: skip
        assert_one_error_line(done, message)
        assert elsewhere.queries == []
        assert dump_store(home) == before
