"""`siamrec publish`, the one write-back path, in real processes: to Spotify against the local Spotify-like API,
to a real Supysonic; `recommend --to-spotify` and `--to-subsonic` are shortcuts that land on the same playlist."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from siamrec.config import resolve_settings
from siamrec.connectors.spotify import WRITE_SCOPE, SpotifySource
from siamrec.connectors.subsonic.client import PASSWORD_ENV
from siamrec.store import PlaylistRecord, Store, TrackRecord
from tests.cli import assert_one_error_line, run_siamrec
from tests.servers import FakePlaylist, SpotifyServer, fake_track
from tests.supysonic_server import PASSWORD, USER, Supysonic, sync_args

SONGS = [fake_track(f"Artist {i % 5}", f"Song {i}") for i in range(14)]
NAME = "Seed · siamrec"


@pytest.fixture
def spotify(tmp_path: Path) -> Iterator[tuple[SpotifyServer, dict[str, str]]]:
    """The API, a user signed in with the write scope (the token spotipy caches), and a store whose playlist
    'Seed' holds three Spotify tracks, beside eleven more Spotify tracks and one local file."""
    home = tmp_path / "home"
    home.mkdir()
    token = {"access_token": "user-token", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "r",
             "scope": WRITE_SCOPE, "expires_at": int(time.time()) + 3600}  # fmt: skip
    (home / "spotify-token.json").write_text(json.dumps(token))
    tracks = [TrackRecord(track_uri=t["uri"], title=t["name"], artist=t["artists"][0]["name"]) for t in SONGS]
    tracks.append(TrackRecord(track_uri="local:track:abc", title="A local file"))
    with Store.open(resolve_settings(home=str(home))) as store:
        store.bind_model("test-model", 8, create=True)
        vectors = np.random.default_rng(0).normal(size=(len(tracks), 8)).astype(np.float32)
        store.upsert_tracks(tracks, list(vectors))
        store.save_playlist(PlaylistRecord("local:playlist:seed", "Seed", track_uris=[t.track_uri for t in tracks[:3]]))
    server = SpotifyServer([], users={"me": []})
    server.user_tokens.add("user-token")
    with server:
        env = {**os.environ, **server.env(), "SIAMREC_HOME": str(home),
               "SPOTIPY_REDIRECT_URI": "http://127.0.0.1:8888/callback"}  # fmt: skip
        yield server, env


def written(playlist: FakePlaylist) -> list[str]:
    return [t["uri"] for t in playlist.tracks if t]


def publish(env: dict[str, str], *extra: str) -> dict:
    result = run_siamrec("publish", "--to", "spotify", "--playlist", "Seed", "--json", *extra, env=env, check=True)
    document = json.loads(result.stdout)
    assert document["to"] == "spotify" and document["skipped"] == []
    return document["playlists"][0]


def test_publish_to_spotify_creates_then_updates_one_private_playlist(
    spotify: tuple[SpotifyServer, dict[str, str]],
) -> None:
    server, env = spotify
    theirs = FakePlaylist(NAME, [fake_track("Them", "Theirs")], owner="someone-else")
    server.playlists[theirs.id] = theirs
    server.users["me"].append(theirs.id)  # followed, not owned: never a target

    created = publish(env, "-k", "4")
    assert created["action"] == "create" and created["name"] == NAME
    mine = server.playlists[created["spotify_playlist_id"]]
    assert mine.owner == server.me_id and mine.description.startswith("siamrec:")
    assert written(mine) == created["track_uris"] == [s["track_uri"] for s in created["songs"]]
    assert len(written(mine)) == 4 and all(uri.startswith("spotify:track:") for uri in written(mine))
    assert not set(written(mine)) & {t["uri"] for t in SONGS[:3]}  # the playlist's own tracks are not news

    dry = publish(env, "-k", "6", "--dry-run")
    assert dry["action"] == "update" and len(dry["track_uris"]) == 6 and len(written(mine)) == 4

    updated = publish(env, "-k", "6")
    assert (updated["action"], updated["spotify_playlist_id"]) == ("update", mine.id)
    assert written(mine) == updated["track_uris"] and len(written(mine)) == 6
    assert written(theirs) == [theirs.tracks[0]["uri"]]  # type: ignore[index]
    assert sorted(p.owner for p in server.playlists.values() if p.name == NAME) == sorted([server.me_id, theirs.owner])


def test_recommend_to_spotify_is_a_shortcut_for_publish(spotify: tuple[SpotifyServer, dict[str, str]]) -> None:
    server, env = spotify
    first = publish(env, "-k", "3")
    shortcut = run_siamrec("recommend", "--playlist", "Seed", "--to-spotify", "-k", "5", "--json", env=env, check=True)
    on_spotify = json.loads(shortcut.stdout)["spotify"]
    assert (on_spotify["action"], on_spotify["spotify_playlist_id"]) == ("update", first["spotify_playlist_id"])
    assert [p.name for p in server.playlists.values()] == [NAME]
    assert written(server.playlists[first["spotify_playlist_id"]]) == on_spotify["track_uris"]
    assert len(on_spotify["track_uris"]) == 5


def test_a_published_playlist_is_not_synced_back(
    spotify: tuple[SpotifyServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--spotify-user me` lists the playlist siamrec wrote: read back, it would be published as '… · siamrec'
    again on the next publish of all playlists."""
    server, env = spotify
    mine = FakePlaylist("Mine", [SONGS[0]], owner=server.me_id)
    server.playlists[mine.id] = mine
    server.users["me"].append(mine.id)
    created = publish(env, "-k", "3")
    assert created["spotify_playlist_id"] in server.users["me"]
    for key in (*server.env(), "SPOTIPY_REDIRECT_URI"):
        monkeypatch.setenv(key, env[key])
    source = SpotifySource(users=["me"], cache_dir=Path(env["SIAMREC_HOME"]))
    assert [playlist.name for playlist in source.playlists()] == ["Mine"]


def test_publish_to_spotify_without_credentials_is_one_line(
    spotify: tuple[SpotifyServer, dict[str, str]],
) -> None:
    _, env = spotify
    env = {key: value for key, value in env.items() if not key.startswith("SPOTIPY_")}
    assert_one_error_line(run_siamrec("publish", "--to", "spotify", env=env), "Spotify credentials missing")


@pytest.fixture
def subsonic(tmp_path: Path, excerpts: Path, home: Path) -> Iterator[tuple[Supysonic, dict[str, str]]]:
    """A Supysonic with alice's playlist 'Forest', synced (library included) into the store under `home`."""
    server = Supysonic(tmp_path / "supysonic", excerpts).start()
    try:
        server.create_playlist("Forest", [s["id"] for s in server.songs() if s["path"].startswith("hedgewars/")])
        env = {**os.environ, PASSWORD_ENV: PASSWORD}
        run_siamrec(*sync_args(server, "--subsonic-library"), env=env, check=True)
        yield server, env
    finally:
        server.stop()


def test_recommend_to_subsonic_is_a_shortcut_for_publish(subsonic: tuple[Supysonic, dict[str, str]]) -> None:
    server, env = subsonic
    shortcut = run_siamrec("recommend", "--playlist", "Forest", "--to-subsonic", "-k", "3", "--subsonic", server.url,
                           "--subsonic-user", USER, "--json", env=env, check=True)  # fmt: skip
    on_server = json.loads(shortcut.stdout)["subsonic"]
    assert on_server["action"] == "create" and len(on_server["songs"]) == 3
    args = ["publish", "--subsonic", server.url, "--subsonic-user", USER, "--playlist", "Forest", "-k", "3", "--json"]
    again = json.loads(run_siamrec(*args, env=env, check=True).stdout)
    assert again["to"] == "subsonic"
    assert [(p["action"], p["server_playlist_id"]) for p in again["playlists"]] == [
        ("unchanged", on_server["server_playlist_id"])
    ]
    assert [p["name"] for p in server.playlists()].count("Forest · siamrec") == 1
