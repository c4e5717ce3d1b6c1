"""A hostile Subsonic server on 127.0.0.1 against the real CLI: it echoes credentials, trickles, floods, pages
forever and answers in the wrong shapes. siamrec answers each in one line, never shows a secret, stops within
its deadlines and caps, and leaves what was stored as it was."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siamrec.connectors.subsonic.client import PASSWORD_ENV
from siamrec.testing import chord, write_audio
from tests.bad_input.hostile import (  # the store fixtures too: one filled store, copied for each test
    PASSWORD,
    SONG,
    USER,
    HostileServer,
    Reply,
    document,
    failed,
    filled_home_fixture,  # noqa: F401
    flood,
    ok,
    store_home_fixture,  # noqa: F401
    sync,
    trickle,
)
from tests.cli import assert_one_error_line, invoke
from tests.stores import dump_store


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HostileServer]:
    """Songs whose audio the store does not hold yet (audio it holds would reuse its vector, not be embedded)."""
    audio = write_audio(tmp_path / "served.ogg", chord(4.0, 196.0, bright=True)).read_bytes()
    with HostileServer(audio=audio) as hostile:
        yield hostile


@pytest.fixture
def sync_here(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The same command through the CLI's `main` in this process (seconds faster), for what cannot hang."""

    def run(*extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        for name, value in {PASSWORD_ENV: PASSWORD, **env}.items():
            monkeypatch.setenv(name, value)
        args = ("sync-playlists", "--subsonic", server.url, "--subsonic-user", USER, *extra)
        done = invoke(*args)
        return subprocess.CompletedProcess(args, done.returncode, done.stdout, done.stderr)

    return run


def assert_no_secret(server: HostileServer, *texts: str) -> None:
    secrets = server.sent_secrets()
    assert len(secrets) > 2  # the client sent some: the check below means something
    for text in texts:
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, (leaked, text)


def echo_query(query: dict[str, str]) -> str:
    return f"bad request: {query['_raw']}"


def echo_values(query: dict[str, str]) -> str:
    return "rejected " + " ".join(query.get(key, "").removeprefix("enc:") for key in ("t", "s", "p"))


@pytest.mark.parametrize("echo", [echo_query, echo_values], ids=["query", "bare values"])
@pytest.mark.parametrize("fallback", [False, True], ids=["token", "password fallback"])
def test_an_error_that_echoes_the_credentials_shows_none(
    store_home: Path, server: HostileServer, sync_here: Callable[..., Any], echo: Callable[[dict[str, str]], str],
    fallback: bool,
) -> None:  # fmt: skip
    def ping(query: dict[str, str]) -> Reply:
        if fallback and "t" in query:
            return failed(41, "token authentication not supported")
        return failed(0, echo(query))

    server.answers["ping"] = ping
    before = dump_store(store_home)
    done = sync_here("--json")
    assert_one_error_line(done, "answered ping with error 0: ")
    assert ("p" in server.queries[-1]) is fallback
    assert_no_secret(server, done.stderr, done.stdout)
    assert dump_store(store_home) == before


def test_a_refused_download_that_echoes_the_credentials_shows_none(
    store_home: Path, server: HostileServer, sync_here: Callable[..., Any]
) -> None:
    server.answers["download"] = lambda q: failed(70, echo_query(q))
    done = sync_here("--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and [f["where"] for f in report["failed"]] == [report["without_audio_uris"][0]]
    assert "the server cannot stream it (bad request: id=s1&u=alice&t=***&s=***" in report["failed"][0]["reason"]
    assert_no_secret(server, done.stderr, done.stdout)


@pytest.mark.parametrize(
    "method,headers",
    [("ping", True), ("getPlaylists", False)],
    ids=["in the headers", "in the body"],
)
def test_a_trickling_call_stops_at_its_deadline(
    store_home: Path, server: HostileServer, method: str, headers: bool
) -> None:
    server.answers[method] = lambda q: trickle(headers)
    before = dump_store(store_home)
    done = sync(server, SIAMREC_CALL_DEADLINE="2")  # the subprocess timeout bounds the wall time
    assert_one_error_line(done, f"({method}) did not finish within 2 s")
    assert dump_store(store_home) == before


def _song_problem(done: Any) -> str:
    """The one failure of a `--json` sync whose only song was skipped: that song, and why; stderr holds nothing
    but progress bars (no traceback, no library's chatter)."""
    report = json.loads(done.stdout)
    assert done.returncode == 1 and [line for line in done.stderr.splitlines() if "━" not in line] == [], done.stderr
    ((failure,),) = [report["failed"]]
    assert failure["where"] == report["without_audio_uris"][0]
    return str(failure["reason"])


def _unchanged_but_the_new_song(store_home: Path, before: dict[str, Any]) -> None:
    """What was stored is as it was; the only addition is the server song's metadata, without a vector."""
    after = dump_store(store_home)
    assert {uri: after["tracks"][uri] for uri in before["tracks"]} == before["tracks"]
    assert after["playlists"] == {**before["playlists"], **{k: v for k, v in after["playlists"].items()
                                                             if k.startswith("subsonic:")}}  # fmt: skip
    added = set(after["tracks"]) - set(before["tracks"])
    assert len(added) == 1 and after["tracks"][added.pop()][0] == {}


def test_a_trickling_download_skips_that_song_at_its_deadline(store_home: Path, server: HostileServer) -> None:
    server.answers["download"] = lambda q: trickle()
    before = dump_store(store_home)
    done = sync(server, "--json", SIAMREC_DOWNLOAD_DEADLINE="2")  # the subprocess timeout bounds the wall time
    assert "the download did not finish within 2 s" in _song_problem(done)
    _unchanged_but_the_new_song(store_home, before)


@pytest.mark.parametrize(
    "song,reply,env,reason",
    [
        (SONG, flood(256 << 20), {}, "the download passed the 1.0 MiB allowed"),  # 40 kB declared: 1.25 x + 1 MiB
        (SONG, flood(256 << 20, declared=200 << 20), {}, "the server announced 200.0 MiB, more than the 1.0 MiB"),
        ({**SONG, "size": None}, flood(256 << 20), {}, "the download passed the 8.3 MiB allowed"),  # 4 s of PCM
        ({"id": "s1", "suffix": "ogg"}, flood(256 << 20), {"SIAMREC_MAX_SONG_BYTES": "3000000"},
         "the download passed the 2.9 MiB allowed"),
    ],
    ids=["past its declared size", "a declared length past the cap", "past its duration", "past the absolute cap"],
)  # fmt: skip
def test_a_download_past_its_cap_skips_that_song(
    store_home: Path, server: HostileServer, sync_here: Callable[..., Any], song: dict[str, Any], reply: Reply,
    env: dict[str, str], reason: str,
) -> None:  # fmt: skip
    server.answers["getPlaylist"] = lambda q: ok(playlist={"id": "p1", "name": "Hostile", "entry": [song]})
    server.answers["download"] = lambda q: reply
    before = dump_store(store_home)
    done = sync_here("--json", **env)
    assert reason in _song_problem(done)
    _unchanged_but_the_new_song(store_home, before)


def _videos(ids: Iterable[int]) -> list[dict[str, Any]]:
    """Library entries that are videos: paged like songs, never stored (so the paging alone is under test)."""
    return [{"id": f"v{n}", "title": f"clip {n}", "isVideo": True} for n in ids]


def _offset(query: dict[str, str]) -> int:
    return int(query.get("songOffset", "0"))


@pytest.mark.parametrize(
    "search,env,reason",
    [
        (lambda q: ok(searchResult3={"song": _videos(range(500))}), {}, "the server repeats its pages (offset 500"),
        (lambda q: ok(searchResult3={"song": _videos(range(_offset(q), _offset(q) + 500))}),
         {"SIAMREC_SUBSONIC_MAX_SONGS": "1500"}, "the library passes 1500 songs"),
    ],
    ids=["the same page forever", "new songs forever"],
)  # fmt: skip
def test_paging_forever_stops_in_one_line(
    store_home: Path, server: HostileServer, search: Callable[[dict[str, str]], Reply], env: dict[str, str],
    reason: str,
) -> None:  # fmt: skip
    server.answers["getPlaylists"] = lambda q: ok(playlists={})
    server.answers["search3"] = search
    before = dump_store(store_home)
    done = sync(server, "--subsonic-library", "--json", **env)
    report = json.loads(done.stdout)
    assert done.returncode == 1 and len(report["failed"]) == 1, done.stderr
    assert report["failed"][0]["where"] == "Subsonic library" and reason in report["failed"][0]["reason"]
    assert len([q for q in server.queries if "songOffset" in q]) <= 3
    assert dump_store(store_home) == before


# ---- answers of the wrong shape: refused in one line, or the broken items skipped ------------------------

REFUSED = {
    "error as a string": ("ping", document({"subsonic-response": {"status": "failed", "error": "boom"}})),
    "error as a list": ("ping", document({"subsonic-response": {"status": "failed", "error": [1, 2]}})),
    "no status": ("ping", document({"subsonic-response": {"version": "1.16.1"}})),
    "status not a word": ("ping", document({"subsonic-response": {"status": ["ok"]}})),
    "nested a million deep": ("ping", Reply([b"[" * 1_000_000 + b"]" * 1_000_000])),
    "playlists as a string": ("getPlaylists", ok(playlists="all of them")),
    "playlist list as a string": ("getPlaylists", ok(playlists={"playlist": "p1"})),
    "a playlist as a list": ("getPlaylist", ok(playlist=[{"id": "p1"}])),
    "entries as a string": ("getPlaylist", ok(playlist={"id": "p1", "entry": "s1"})),
}
MALFORMED = {"nested a million deep": "is not a Subsonic API server"}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_answer_of_the_wrong_shape_is_refused_in_one_line(
    store_home: Path, server: HostileServer, sync_here: Callable[..., Any], case: str
) -> None:
    method, reply = REFUSED[case]
    server.answers[method] = lambda q: reply
    before = dump_store(store_home)
    done = sync_here()
    expected = MALFORMED.get(case, f"answered {method} with a malformed response")
    assert_one_error_line(done, expected)
    assert dump_store(store_home) == before


SKIPPED = {
    "a playlist that is a string": (
        "getPlaylists", ok(playlists={"playlist": ["p0", {"id": "p1", "name": "Hostile"}]}), "1 unreadable playlists"),
    "a playlist without an id": (
        "getPlaylists", ok(playlists={"playlist": [{"name": "no id"}, {"id": "p1", "name": "Hostile"}]}),
        "1 unreadable playlists"),
    "a playlist id with a newline": (
        "getPlaylists", ok(playlists={"playlist": [{"id": "p\n2"}, {"id": "p1", "name": "Hostile"}]}),
        "1 unreadable playlists"),
    "songs that are strings, a list, null": (
        "getPlaylist", ok(playlist={"id": "p1", "name": "Hostile", "entry": ["s0", [1], None, SONG]}),
        "3 unreadable songs"),
    "a song without an id": (
        "getPlaylist", ok(playlist={"id": "p1", "name": "Hostile", "entry": [{"title": "x"}, SONG]}),
        "1 unreadable songs"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(SKIPPED))
def test_broken_items_are_skipped_and_the_rest_synced(
    store_home: Path, server: HostileServer, sync_here: Callable[..., Any], case: str
) -> None:
    method, reply, reason = SKIPPED[case]
    server.answers[method] = lambda q: reply
    before = dump_store(store_home)
    done = sync_here("--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [f["reason"].split(" (")[0] for f in report["failed"]] == [f"{reason} skipped"]
    assert (report["playlists"], report["embedded"]) == (1, 1)  # the good playlist and its song
    after = dump_store(store_home)
    assert {uri: after["tracks"][uri] for uri in before["tracks"]} == before["tracks"]
    assert {uri: after["playlists"][uri] for uri in before["playlists"]} == before["playlists"]


@pytest.mark.parametrize(
    "playlists,entries",
    [({"playlist": {"id": "p1", "name": "Hostile"}}, [SONG]), ({"playlist": [{"id": "p1", "name": "Hostile"}]}, SONG)],
    ids=["one playlist as an object", "one song as an object"],
)
def test_a_list_of_one_sent_as_an_object_is_read(
    store_home: Path, server: HostileServer, sync_here: Callable[..., Any], playlists: dict[str, Any], entries: Any
) -> None:
    """Some servers turn XML into JSON and send a list of one as the item itself: not an error."""
    server.answers["getPlaylists"] = lambda q: ok(playlists=playlists)
    server.answers["getPlaylist"] = lambda q: ok(playlist={"id": "p1", "name": "Hostile", "entry": entries})
    done = sync_here("--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["playlists"], report["embedded"], report["failed"]) == (1, 1, [])


def test_numbers_as_strings_and_odd_field_types_are_read_as_far_as_they_go(
    store_home: Path, server: HostileServer, sync_here: Callable[..., Any]
) -> None:
    odd = {"id": 7, "title": {"x": 1}, "artist": 12, "duration": "4", "size": "40000", "suffix": "ogg"}
    server.answers["getPlaylist"] = lambda q: ok(playlist={"id": "p1", "name": ["not", "text"], "entry": [odd]})
    done = sync_here("--json")
    assert done.returncode == 0, done.stderr
    stored = dump_store(store_home)
    tracks = {uri: record for uri, (_, record) in stored["tracks"].items() if uri.startswith("subsonic:")}
    ((uri, record),) = tracks.items()
    assert uri.endswith(":track:7") and (record["title"], record["artist"], record["duration_s"]) == ("", "12", 4.0)
    names = [record["name"] for uri, (_, record) in stored["playlists"].items() if uri.startswith("subsonic:")]
    assert names == ["Hostile"]  # the listing's name, where the playlist's own is not text
