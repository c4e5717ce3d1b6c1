"""siamrec as a Subsonic plugin, against a real Supysonic on 127.0.0.1 serving the example excerpts."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from siamrec.config import resolve_settings
from siamrec.connectors.subsonic.client import PASSWORD_ENV, SubsonicClient, server_id
from siamrec.store import Store
from siamrec.testing import noise, write_audio
from tests.cli import invoke, run_until_killed
from tests.servers import LocalServer
from tests.stores import snapshot
from tests.supysonic_server import OTHER_USER, PASSWORD, PER_FOLDER, USER, Supysonic, sync_args

SONGS = 4 * PER_FOLDER


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, excerpts: Path) -> Iterator[Supysonic]:
    """One Supysonic for the module's read-mostly tests, with two playlists of alice's and one of bob's."""
    instance = Supysonic(tmp_path_factory.mktemp("supysonic"), excerpts).start()
    songs = instance.songs()
    by_folder: dict[str, list[str]] = {}
    for song in songs:
        by_folder.setdefault(song["path"].split("/")[0], []).append(song["id"])
    instance.create_playlist("Arcade", by_folder["aba-games"])
    instance.create_playlist("Forest", by_folder["hedgewars"])
    instance.create_playlist("Bob's", by_folder["wesnoth"][:3], user=OTHER_USER, password=PASSWORD + "-bob")
    yield instance
    instance.stop()


@pytest.fixture
def own_server(tmp_path: Path, excerpts: Path) -> Iterator[Supysonic]:
    """A Supysonic of the test's own, for tests that break it (files removed, server stopped)."""
    instance = Supysonic(tmp_path / "supysonic", excerpts).start()
    yield instance
    instance.stop()


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {**os.environ, PASSWORD_ENV: PASSWORD}


def test_full_sync_then_a_second_that_does_nothing(server: Supysonic, home: Path, env: dict[str, str]) -> None:
    first = invoke(*sync_args(server, "--subsonic-library"), env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["playlists"], report["tracks"], report["fetched"], report["embedded"]) == (2, SONGS, SONGS, SONGS)
    assert report["with_audio"] == SONGS and report["failed"] == []

    sid = server_id(server.url)
    with Store.open(resolve_settings()) as store:
        store.bind_stored_model()
        tracks = {t.record.track_uri: t for t in store.iter_tracks()}
        playlists = {p.name: p for p in store.iter_playlists()}
    assert len(tracks) == SONGS and all(t.vector is not None for t in tracks.values())
    assert set(playlists) == {"Arcade", "Forest"}  # bob's playlist is not alice's to read
    song = next(s for s in server.songs() if s["path"].startswith("hedgewars/"))
    stored = tracks[f"subsonic:{sid}:track:{song['id']}"].record
    assert (stored.title, stored.artist, stored.album) == (song["title"], song["artist"], song["album"])
    assert stored.duration_s == song["duration"] and stored.source == "subsonic"
    assert playlists["Forest"].track_uris[0].startswith(f"subsonic:{sid}:track:")

    again = json.loads(invoke(*sync_args(server, "--subsonic-library"), env=env).stdout)
    assert (again["tracks_written"], again["playlists_written"], again["fetched"], again["embedded"]) == (0, 0, 0, 0)


def test_one_playlist_by_name_without_the_cache(server: Supysonic, home: Path, env: dict[str, str]) -> None:
    done = invoke(*sync_args(server, "--subsonic-playlist", "Forest", "--no-audio-cache"), env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    forest = PER_FOLDER
    assert (report["playlists"], report["tracks"], report["embedded"]) == (1, forest, forest)
    assert not list((home / "cache" / "audio").glob("subsonic*"))
    missing = invoke(*sync_args(server, "--subsonic-playlist", "Nope"), env=env)
    failed = json.loads(missing.stdout)["failed"]
    assert missing.returncode == 1
    assert failed == [{"where": "--subsonic-playlist Nope", "reason": "no such playlist on the server"}]


def test_killed_then_resumed_to_the_same_store(
    server: Supysonic, home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    args = sync_args(server, "--subsonic-library")
    reference_home = tmp_path / "reference"
    assert invoke(*args, env={**env, "SIAMREC_HOME": str(reference_home)}).returncode == 0
    paused = {**env, "SIAMREC_SYNC_BATCH": "8", "SIAMREC_SYNC_PAUSE": "0.3"}
    for marker in ("fetch batch 2", "embed batch 1"):
        run_until_killed(args, paused, f"sync: {marker} done")
    final = invoke(*args, env=env)
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["with_audio"] == SONGS and summary["failed"] == []
    assert summary["fetched"] < SONGS  # what the killed runs downloaded was not downloaded again
    with Store.open(resolve_settings(home=str(reference_home))) as store:
        expected = snapshot(store, relative_to=reference_home)
    with Store.open(resolve_settings()) as store:
        assert snapshot(store, relative_to=home) == expected


def test_publish_creates_then_updates_one_playlist(server: Supysonic, home: Path, env: dict[str, str]) -> None:
    assert invoke(*sync_args(server, "--subsonic-library"), env=env).returncode == 0
    publish = ["publish", "--subsonic", server.url, "--subsonic-user", USER, "--playlist", "Forest", "--json"]
    dry = json.loads(invoke(*publish, "-k", "5", "--dry-run", env=env).stdout)
    assert [p["action"] for p in dry["playlists"]] == ["create"]
    assert not [p for p in server.playlists() if p["name"] == "Forest · siamrec"]

    created = json.loads(invoke(*publish, "-k", "5", env=env).stdout)["playlists"][0]
    ours = [p for p in server.playlists() if p["name"] == "Forest · siamrec"]
    assert len(ours) == 1 and created["action"] == "create"
    held = server.playlist(ours[0]["id"])
    assert [e["id"] for e in held["entry"]] == [s["track_uri"].rsplit(":", 1)[1] for s in created["songs"]]
    assert len(held["entry"]) == 5 and held["comment"].startswith("siamrec:")
    forest = {
        e["id"] for e in server.playlist(next(p["id"] for p in server.playlists() if p["name"] == "Forest"))["entry"]
    }
    assert not forest & {e["id"] for e in held["entry"]}

    same = json.loads(invoke(*publish, "-k", "5", env=env).stdout)["playlists"][0]
    assert same["action"] == "unchanged"
    updated = json.loads(invoke(*publish, "-k", "8", env=env).stdout)["playlists"][0]
    assert updated["action"] == "update" and updated["server_playlist_id"] == ours[0]["id"]
    assert len(server.playlist(ours[0]["id"])["entry"]) == 8
    assert len([p for p in server.playlists() if p["name"] == "Forest · siamrec"]) == 1

    server.api("deletePlaylist", id=ours[0]["id"])
    recreated = json.loads(invoke(*publish, "-k", "8", env=env).stdout)["playlists"][0]
    assert recreated["action"] == "create" and recreated["server_playlist_id"] != ours[0]["id"]
    bobs = server.playlists(OTHER_USER, PASSWORD + "-bob")
    assert [p["name"] for p in bobs if p["owner"] == OTHER_USER] == ["Bob's"]
    # siamrec's own playlists are not read back as playlists of the library
    resync = json.loads(invoke(*sync_args(server), env=env).stdout)
    assert resync["playlists"] == 2


@pytest.fixture
def tls_url(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server whose certificate is self-signed (so not trusted), made with the openssl command."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with LocalServer() as plain:
        plain.httpd.socket = context.wrap_socket(plain.httpd.socket, server_side=True)
        yield plain.base.replace("http:", "https:")


def test_wrong_password_and_wrong_addresses_are_one_line(
    server: Supysonic, home: Path, env: dict[str, str], tls_url: str
) -> None:
    cases = {
        "wrong username or password": (server.url, {**env, PASSWORD_ENV: "not-it"}),
        "cannot reach the Subsonic server": ("http://127.0.0.1:9", env),
        "is not a Subsonic API server": (server.url + "/nothing-here", env),
        "TLS error": (tls_url, env),
    }
    for message, (url, environment) in cases.items():
        done = invoke("sync-playlists", "--subsonic", url, "--subsonic-user", USER, env=environment)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and message in lines[0], done.stderr
    done = invoke(*sync_args(server), env={k: v for k, v in env.items() if k != PASSWORD_ENV})
    assert done.returncode == 1 and PASSWORD_ENV in done.stderr  # no terminal to ask in: told how to give it


def test_a_vanished_file_is_one_failed_song(own_server: Supysonic, home: Path, env: dict[str, str]) -> None:
    gone = next(own_server.music.rglob("*.ogg"))
    gone.unlink()
    done = invoke(*sync_args(own_server, "--subsonic-library"), env=env)
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["embedded"] == SONGS - 1
    assert len(report["failed"]) == 1 and "cannot stream" in report["failed"][0]["reason"]


@pytest.mark.slow
def test_server_stopped_mid_sync_then_the_next_run_finishes(
    own_server: Supysonic, home: Path, env: dict[str, str]
) -> None:
    args = sync_args(own_server, "--subsonic-library")
    process = subprocess.Popen([sys.executable, "-m", "siamrec", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**env, "SIAMREC_SYNC_BATCH": "8", "SIAMREC_SYNC_PAUSE": "1"})  # fmt: skip
    for line in process.stderr or []:
        if "fetch batch 1 done" in line:
            own_server.stop()
            break
    rest = (process.stderr.read() if process.stderr else "").strip().splitlines()
    assert process.wait(120) == 1
    errors = [line for line in rest if line.startswith("siamrec: error:")]
    assert len(errors) == 1 and "cannot reach the Subsonic server" in errors[0], rest
    with Store.open(resolve_settings()) as store:
        store.bind_stored_model()
        assert len(list(store.iter_tracks())) == SONGS  # the metadata stored before the server went stays
    own_server.start()
    final = json.loads(invoke(*args, env=env).stdout)
    assert final["with_audio"] == SONGS and final["fetched"] == SONGS - 8 and final["failed"] == []


def test_recommend_for_a_server_song_and_add_it_to_the_best_playlist(
    server: Supysonic, home: Path, env: dict[str, str]
) -> None:
    assert invoke(*sync_args(server, "--subsonic-library"), env=env).returncode == 0
    song = next(s for s in server.songs() if s["path"].startswith("widelands/"))
    uri = f"subsonic:{server_id(server.url)}:track:{song['id']}"
    shown = json.loads(invoke("recommend", "--track", uri, "--json", env=env).stdout)
    assert [r["name"] for r in shown["results"]][:2] in (["Arcade", "Forest"], ["Forest", "Arcade"])
    added = invoke("recommend", "--track", uri, "--to-subsonic", "--subsonic", server.url,
                    "--subsonic-user", USER, "--json", env=env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    best = shown["results"][0]["name"]
    playlist = next(p for p in server.playlists() if p["name"] == best)
    assert song["id"] in [e["id"] for e in server.playlist(playlist["id"])["entry"]]


def test_the_password_never_leaves_a_trace(server: Supysonic, home: Path, env: dict[str, str], tmp_path: Path) -> None:
    outputs = [
        invoke(*sync_args(server, "--subsonic-library"), env=env),
        invoke("sync-playlists", "--subsonic", server.url + "/x", "--subsonic-user", USER, env=env),
        invoke("sync-playlists", "--subsonic", "http://127.0.0.1:9", "--subsonic-user", USER, env=env),
        invoke("publish", "--subsonic", server.url, "--subsonic-user", USER, "--dry-run", env=env),
    ]
    secrets = [PASSWORD, PASSWORD.encode().hex()]
    for done in outputs:
        for secret in secrets:
            assert secret not in done.stdout and secret not in done.stderr
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(secret.encode() in data for secret in secrets), path


def test_token_auth_then_password_fallback(server: Supysonic) -> None:
    """Supysonic (API 1.12) refuses tokens: the client falls back to the password form once and stays there."""
    client = SubsonicClient(server.url, USER, PASSWORD)
    assert client._token_auth
    client.ping()
    assert not client._token_auth
    assert {"Arcade", "Forest"} <= {p.name for p in client.playlists()}


def test_a_song_changed_on_the_server_is_fetched_and_embedded_again(
    own_server: Supysonic, home: Path, env: dict[str, str]
) -> None:
    assert invoke(*sync_args(own_server, "--subsonic-library"), env=env).returncode == 0
    files = sorted(own_server.music.rglob("*.ogg"))
    write_audio(files[0], noise(4.0, seed=41))  # new audio under the same path: the same song id, a new file
    own_server.cli("folder", "scan", "music")
    again = json.loads(invoke(*sync_args(own_server, "--subsonic-library"), env=env).stdout)
    assert (again["fetched"], again["embedded"]) == (1, 1)
    assert json.loads(invoke(*sync_args(own_server, "--subsonic-library"), env=env).stdout)["embedded"] == 0
