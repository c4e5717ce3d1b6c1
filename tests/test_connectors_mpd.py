"""Million Playlist Dataset slices as the dump writes them: order, selection, challenge set, bad files."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from siamrec.connectors.mpd import MpdSelection, MpdSource, slice_files
from siamrec.errors import ConnectorError
from tests.servers import mpd_playlist, mpd_track, write_mpd_slices

N_PLAYLISTS = 12


def dump_playlists(seed: int = 7) -> list[dict]:
    """Twelve playlists over a shared pool of tracks, with seeded follower counts (some tied)."""
    rng = random.Random(seed)
    pool = [mpd_track(f"spotify:track:t{i:02d}", f"Song {i}", f"Artist {i % 4}", 150_000 + i * 1000) for i in range(30)]
    followers = [rng.choice([1, 2, 3, 5, 8, 13, 40, 40]) for _ in range(N_PLAYLISTS)]
    names = ["Chill", "Workout", "Road trip", "chill vibes", "Party", "Sleep", "Focus", "Rock", "Jazz", "CHILL"]
    names += ["Sad", "Happy"]
    return [mpd_playlist(pid, names[pid], rng.sample(pool, 2 + pid % 5), followers[pid]) for pid in range(N_PLAYLISTS)]


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    write_mpd_slices(tmp_path / "mpd", dump_playlists(), per_slice=2)  # six slices: 0-1, 2-3, …, 10-11
    return tmp_path / "mpd"


def pids(source: MpdSource) -> list[int]:
    return [int(p.uri.rsplit(":", 1)[1]) for p in source.playlists()]


def test_slices_are_read_in_pid_order_not_name_order(dump: Path) -> None:
    names = [path.name for path in slice_files(dump)]
    assert names[-1] == "mpd.slice.10-11.json" and sorted(names)[1] == "mpd.slice.10-11.json"
    assert pids(MpdSource([dump])) == list(range(N_PLAYLISTS))


def test_playlists_keep_the_dump_fields(dump: Path) -> None:
    first = next(iter(MpdSource([dump]).playlists()))
    raw = dump_playlists()[0]
    assert (first.uri, first.name, first.source, first.followers) == (
        "mpd:playlist:0",
        "Chill",
        "mpd",
        raw["num_followers"],
    )
    assert [t.uri for t in first.tracks] == [t["track_uri"] for t in raw["tracks"]]
    track, raw_track = first.tracks[0], raw["tracks"][0]
    assert (track.title, track.artist, track.album) == (
        raw_track["track_name"],
        raw_track["artist_name"],
        raw_track["album_name"],
    )
    assert track.duration_s == raw_track["duration_ms"] / 1000


def test_top_followers_across_slices(dump: Path) -> None:
    raw = dump_playlists()
    expected = sorted(raw, key=lambda p: (-p["num_followers"], p["pid"]))[:4]
    chosen = list(MpdSource([dump], MpdSelection(top_followers=4)).playlists())
    assert [p.uri for p in chosen] == [f"mpd:playlist:{p['pid']}" for p in expected]
    assert [p.followers for p in chosen] == sorted((p["num_followers"] for p in raw), reverse=True)[:4]


def test_filters_combine_before_top_n(dump: Path) -> None:
    chill = MpdSelection(name_pattern=re.compile("chill", re.IGNORECASE))
    assert pids(MpdSource([dump], chill)) == [0, 3, 9]
    assert pids(MpdSource([dump], MpdSelection(pids=frozenset({5, 10})))) == [5, 10]
    long_ones = MpdSelection(min_tracks=6)
    assert pids(MpdSource([dump], long_ones)) == [p["pid"] for p in dump_playlists() if p["num_tracks"] >= 6]
    top_chill = MpdSelection(top_followers=1, name_pattern=re.compile("chill", re.IGNORECASE))
    best = max((p for p in dump_playlists() if p["pid"] in (0, 3, 9)), key=lambda p: (p["num_followers"], -p["pid"]))
    assert pids(MpdSource([dump], top_chill)) == [best["pid"]]


def test_pid_selection_skips_slices_that_cannot_hold_them(dump: Path) -> None:
    (dump / "data" / "mpd.slice.6-7.json").write_text("{ not json")
    source = MpdSource([dump], MpdSelection(pids=frozenset({1})))
    assert pids(source) == [1] and source.problems == []


def test_a_single_slice_file(dump: Path) -> None:
    assert pids(MpdSource([dump / "data" / "mpd.slice.4-5.json"])) == [4, 5]


def test_corrupt_slice_is_reported_and_the_rest_read(dump: Path) -> None:
    path = dump / "data" / "mpd.slice.2-3.json"
    path.write_text(path.read_text()[:500])  # truncated mid-download
    source = MpdSource([dump])
    assert pids(source) == [0, 1, 4, 5, 6, 7, 8, 9, 10, 11]
    (problem,) = source.problems
    assert problem.where == str(path) and "not valid JSON" in problem.reason


def test_missing_fields_skip_only_what_they_break(dump: Path) -> None:
    path = dump / "data" / "mpd.slice.0-1.json"
    document = json.loads(path.read_text())
    del document["playlists"][0]["pid"]
    del document["playlists"][1]["tracks"][0]["track_uri"]
    path.write_text(json.dumps(document))
    (dump / "data" / "mpd.slice.4-5.json").write_text(json.dumps({"info": {}, "items": []}))
    source = MpdSource([dump])
    playlists = {int(p.uri.rsplit(":", 1)[1]): p for p in source.playlists()}
    assert sorted(playlists) == [1, 2, 3, 6, 7, 8, 9, 10, 11]
    assert len(playlists[1].tracks) == dump_playlists()[1]["num_tracks"] - 1
    assert {str(p) for p in source.problems} == {
        "mpd.slice.0-1.json: playlist #0: missing or malformed 'pid'; playlist skipped",
        "mpd.slice.0-1.json: playlist 1 track #0: missing 'track_uri'; track skipped",
        f"{dump / 'data' / 'mpd.slice.4-5.json'}: no 'playlists' list: not a Million Playlist Dataset slice",
    }


def test_challenge_set(tmp_path: Path) -> None:
    seeds = [mpd_track(f"spotify:track:s{i}", f"Seed {i}", "Someone") for i in range(5)]
    challenge = {
        "date": "2018-01-16 08:47:28.198015",
        "version": "v1",
        "name": "challenge_set",
        "playlists": [
            {
                "name": "spanish playlist",
                "num_holdouts": 11,
                "pid": 1000002,
                "num_samples": 0,
                "num_tracks": 11,
                "tracks": [],
            },
            {"num_holdouts": 20, "pid": 1000003, "num_samples": 5, "num_tracks": 25, "tracks": seeds},
            {
                "name": "old school",
                "num_holdouts": 5,
                "pid": 1000004,
                "num_samples": 1,
                "num_tracks": 6,
                "tracks": seeds[:1],
            },
        ],
    }
    path = tmp_path / "challenge_set.json"
    path.write_text(json.dumps(challenge))
    source = MpdSource([path])
    playlists = list(source.playlists())
    assert [(p.uri, p.name, len(p.tracks)) for p in playlists] == [
        ("mpd:playlist:1000003", "challenge playlist 1000003", 5),
        ("mpd:playlist:1000004", "old school", 1),
    ]
    assert playlists[0].description == "challenge set: 5 of 25 tracks given" and source.problems == []


def test_no_dump_here(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="no such Million Playlist Dataset folder"):
        MpdSource([tmp_path / "nowhere"])
    with pytest.raises(ConnectorError, match="no slice files"):
        list(MpdSource([tmp_path]).playlists())
