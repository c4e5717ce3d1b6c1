"""Learning from the player, against a real Supysonic on 127.0.0.1: the listener's edits of a playlist siamrec
published there (songs removed, songs moved into the source playlist) become feedback on the next sync or publish.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siamrec import constants as C
from siamrec.config import resolve_settings
from siamrec.connectors.subsonic.client import PASSWORD_ENV, playlist_uri, server_id, track_uri
from siamrec.connectors.subsonic.learn import PUBLISHED
from siamrec.feedback import get_feedback
from siamrec.store import Store
from siamrec.uris import point_id
from tests.cli import invoke
from tests.stores import full_dump
from tests.supysonic_server import PASSWORD, USER, Supysonic, sync_args

PUBLISHED_NAME = "Forest · siamrec"


@pytest.fixture
def server(tmp_path: Path, excerpts: Path) -> Iterator[Supysonic]:
    """A Supysonic of the test's own (its playlists are edited) with alice's playlists Arcade and Forest."""
    instance = Supysonic(tmp_path / "supysonic", excerpts).start()
    by_folder: dict[str, list[str]] = {}
    for song in instance.songs():
        by_folder.setdefault(song["path"].split("/")[0], []).append(song["id"])
    instance.create_playlist("Arcade", by_folder["aba-games"])
    instance.create_playlist("Forest", by_folder["hedgewars"])
    yield instance
    instance.stop()


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {**os.environ, PASSWORD_ENV: PASSWORD}


def _id(server: Supysonic, name: str) -> str:
    return str(next(p["id"] for p in server.playlists() if p["name"] == name))


def _song_ids(server: Supysonic, name: str) -> list[str]:
    return [entry["id"] for entry in server.playlist(_id(server, name)).get("entry", [])]


def _remove(server: Supysonic, name: str, *song_ids: str) -> None:
    """What a player does when the listener removes songs: updatePlaylist songIndexToRemove."""
    held = _song_ids(server, name)
    server.api("updatePlaylist", playlistId=_id(server, name), songIndexToRemove=[held.index(s) for s in song_ids])


def _publish(server: Supysonic, env: dict[str, str], *extra: str) -> dict[str, Any]:
    args = ["publish", "--subsonic", server.url, "--subsonic-user", USER, "--playlist", "Forest", "--json", *extra]
    done = invoke(*args, env=env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["playlists"][0])


def _stored_payload(uri: str) -> dict[str, Any]:
    """The playlist's whole payload, the publish record beside the record and the feedback."""
    with Store.open(resolve_settings()) as store:
        return dict(store.backend.retrieve(C.PLAYLISTS_COLLECTION, [point_id(uri)])[0].payload)


def test_removed_and_moved_songs_become_feedback(server: Supysonic, home: Path, env: dict[str, str]) -> None:
    assert invoke(*sync_args(server, "--subsonic-library"), env=env).returncode == 0
    sid = server_id(server.url)
    forest = playlist_uri(sid, _id(server, "Forest"))
    offered = [song["track_uri"] for song in _publish(server, env, "-k", "5")["songs"]]
    ids = [uri.rsplit(":", 1)[1] for uri in offered]
    assert _song_ids(server, PUBLISHED_NAME) == ids

    # the listener moves the first song into Forest and removes the next two
    server.api("updatePlaylist", playlistId=_id(server, "Forest"), songIdToAdd=ids[0])
    _remove(server, PUBLISHED_NAME, *ids[:3])
    done = invoke(*sync_args(server), env=env)
    assert done.returncode == 0, done.stderr
    learned = json.loads(done.stdout)["learned"]
    assert learned == {
        "playlists": 1,
        "accepted": 1,
        "rejected": 2,
        "by_playlist": [
            {"playlist_uri": forest, "name": "Forest", "accepted": [offered[0]], "rejected": sorted(offered[1:3])}
        ],
    }
    payload = _stored_payload(forest)
    assert payload[PUBLISHED] == [
        {"server": sid, "playlist_uri": playlist_uri(sid, _id(server, PUBLISHED_NAME)), "track_uris": offered[3:]}
    ]
    assert offered[0] in payload["track_uris"]

    # learned once: the same sync again learns nothing; a further removal is told in the text summary
    again = json.loads(invoke(*sync_args(server), env=env).stdout)["learned"]
    assert (again["playlists"], again["accepted"], again["rejected"]) == (0, 0, 0)
    _remove(server, PUBLISHED_NAME, ids[3])
    text = invoke(*sync_args(server)[:-1], env=env)
    assert text.returncode == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if "learned from the player" in line)
    assert "0 accepted, 1 rejected, for 1 playlist" in row

    # publish learns before it rewrites the playlist, so a removal made since the last sync is not overwritten
    _remove(server, PUBLISHED_NAME, ids[4])
    republished = _publish(server, env, "-k", "5")
    assert republished["learned"] == {"accepted": [], "rejected": [offered[4]]}
    rejected = set(offered[1:])
    assert not rejected & {song["track_uri"] for song in republished["songs"]}

    with Store.open(resolve_settings()) as store:
        feedback = get_feedback(store, forest)
    assert (feedback.accepted, feedback.rejected) == ([offered[0]], sorted(rejected))
    recommended = invoke("recommend", "--playlist", "Forest", "-k", "100", "--json", env=env)
    assert recommended.returncode == 0, recommended.stderr
    results = {result["track_uri"] for result in json.loads(recommended.stdout)["results"]}
    assert results and not results & (rejected | {offered[0]})


def test_a_deleted_published_playlist_teaches_nothing(server: Supysonic, home: Path, env: dict[str, str]) -> None:
    """Deleting the whole playlist is not a rejection of each song: the record is dropped, no feedback."""
    assert invoke(*sync_args(server, "--subsonic-library"), env=env).returncode == 0
    forest = playlist_uri(server_id(server.url), _id(server, "Forest"))
    _publish(server, env, "-k", "3")
    server.api("deletePlaylist", id=_id(server, PUBLISHED_NAME))
    learned = json.loads(invoke(*sync_args(server), env=env).stdout)["learned"]
    assert (learned["playlists"], learned["accepted"], learned["rejected"]) == (0, 0, 0)
    assert _stored_payload(forest)[PUBLISHED] == []
    with Store.open(resolve_settings()) as store:
        assert get_feedback(store, forest).rejected == []


def test_accepted_songs_join_the_server_copy(server: Supysonic, home: Path, env: dict[str, str]) -> None:
    """`siamrec feedback --accept … --to-subsonic`: the songs join the playlist in the store and on the server (once),
    so the next sync keeps them; a playlist that did not come from that server is refused before anything is stored."""
    assert invoke(*sync_args(server, "--subsonic-library"), env=env).returncode == 0
    sid = server_id(server.url)
    new = [track_uri(sid, s["id"]) for s in server.songs() if s["path"].startswith("wesnoth/")][:2]
    held = _song_ids(server, "Forest")
    to_server = ["--to-subsonic", "--subsonic", server.url, "--subsonic-user", USER, "--json"]
    accept = ["feedback", "Forest", "--accept", new[0], "--accept", new[1], "--accept", track_uri(sid, held[0])]
    first = invoke(*accept, *to_server, env=env)
    assert first.returncode == 0, first.stderr
    assert (json.loads(first.stdout)["added_on_subsonic"], json.loads(first.stdout)["added_to_playlist"]) == (new, new)
    assert _song_ids(server, "Forest") == [*held, *(uri.rsplit(":", 1)[1] for uri in new)]
    again = json.loads(invoke(*accept, *to_server, env=env).stdout)
    assert (again["added_on_subsonic"], again["changed"]) == ([], False)
    assert len(_song_ids(server, "Forest")) == len(held) + 2
    assert invoke(*sync_args(server), env=env).returncode == 0
    forest = playlist_uri(sid, _id(server, "Forest"))
    assert set(new) <= set(_stored_payload(forest)["track_uris"])

    assert invoke("playlist", "create", "Mine", track_uri(sid, held[0]), env=env).returncode == 0
    before = full_dump(home)
    refused = invoke("feedback", "Mine", "--accept", new[0], *to_server, env=env)
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("siamrec: error: playlist 'local:playlist:")
    assert f"did not come from {server.url}" in refused.stderr
    assert full_dump(home) == before


def test_a_playlist_of_another_source_learns_rejections(server: Supysonic, home: Path, env: dict[str, str]) -> None:
    """A playlist made in siamrec (source local) published on the server: a removed song is a rejection, told by
    the sync (--json) and by publish (text), which learns before it rewrites."""
    assert invoke(*sync_args(server, "--subsonic-library"), env=env).returncode == 0
    sid = server_id(server.url)
    created = invoke("playlist", "create", "Mine", *(track_uri(sid, s) for s in _song_ids(server, "Forest")), env=env)
    assert created.returncode == 0, created.stderr
    publish = ["publish", "--subsonic", server.url, "--subsonic-user", USER, "--playlist", "Mine", "-k", "4"]
    offered = [
        song["track_uri"] for song in json.loads(invoke(*publish, "--json", env=env).stdout)["playlists"][0]["songs"]
    ]
    ids = [uri.rsplit(":", 1)[1] for uri in offered]
    _remove(server, "Mine · siamrec", ids[0])
    by_playlist = json.loads(invoke(*sync_args(server), env=env).stdout)["learned"]["by_playlist"]
    assert [(p["name"], p["accepted"], p["rejected"]) for p in by_playlist] == [("Mine", [], [offered[0]])]
    assert by_playlist[0]["playlist_uri"].startswith("local:playlist:")

    _remove(server, "Mine · siamrec", ids[1])
    text = invoke(*publish, env=env)
    assert text.returncode == 0, text.stderr
    assert "learned from the player: 0 accepted, 1 rejected, for 1 playlist" in text.stdout
    with Store.open(resolve_settings()) as store:
        assert get_feedback(store, by_playlist[0]["playlist_uri"]).rejected == sorted(offered[:2])
    assert not set(offered[:2]) & {track_uri(sid, s) for s in _song_ids(server, "Mine · siamrec")}
