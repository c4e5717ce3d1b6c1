from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from siamrec import constants as C
from siamrec.errors import ModelError, NotFoundError, StoreError
from siamrec.recommend import recommend_playlists, recommend_tracks
from siamrec.store import PlaylistRecord, Store, TrackRecord
from siamrec.store.backend import Where
from siamrec.store.edge import EdgeBackend

F16 = 1e-3  # track vectors are stored as float16 (siamrec.store.layout): centroids of them agree to ~1e-4


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def hand_store(any_store: Store) -> Store:
    """Two playlists around the x and y axes, cold tracks placed by hand, one warm track."""
    store = any_store
    store.bind_model("hand", 3)
    tracks = {
        "x1": unit(1, 0.1, 0),
        "x2": unit(1, -0.1, 0),  # playlist X
        "y1": unit(0.1, 1, 0),
        "y2": unit(-0.1, 1, 0),  # playlist Y
        "near_x": unit(1, 0.03, 0.15),  # the cold track nearest to X
        "mid": unit(1, 1, 0.3),  # cold, in between
        "far": unit(0, 0, 1),  # cold, far from both
        "warm_x": unit(1, 0, 0),  # nearest of all to X, but already in playlist Y: warm
    }
    store.upsert_tracks([TrackRecord(track_uri=u, title=u) for u in tracks], list(tracks.values()))
    store.save_playlist(PlaylistRecord("pl:x", "X", track_uris=["x1", "x2"]))
    store.save_playlist(PlaylistRecord("pl:y", "Y", track_uris=["y1", "y2", "warm_x"]))
    return store


@pytest.mark.parametrize("strategy", ["mean", "best-score"])
def test_recommend_ranks_the_nearest_cold_track_first(hand_store: Store, strategy: str) -> None:
    playlist = hand_store.find_playlist("X")
    results = recommend_tracks(hand_store, playlist, k=10, strategy=strategy)
    uris = [r.track.track_uri for r in results]
    assert uris[0] == "near_x"
    assert not {"x1", "x2"} & set(uris)  # never the playlist's own tracks
    assert "warm_x" not in uris and set(uris) == {"near_x", "mid", "far"}  # cold only by default
    assert {r.track_uri for r in results[0].because_of} == {"x1", "x2"}


@pytest.mark.parametrize("strategy", ["mean", "best-score"])
def test_include_warm_widens_the_candidates(hand_store: Store, strategy: str) -> None:
    results = recommend_tracks(hand_store, hand_store.find_playlist("X"), k=10, strategy=strategy, include_warm=True)
    uris = [r.track.track_uri for r in results]
    assert uris[0] == "warm_x" and "x1" not in uris and "y1" in uris


def test_recommend_playlists_for_a_track(hand_store: Store) -> None:
    results = recommend_playlists(hand_store, unit(0.05, 1, 0.1))
    assert [r.playlist.name for r in results] == ["Y", "X"]
    assert results[0].because_of[0].track_uri in {"y1", "y2"}
    stored = hand_store.get_tracks(["warm_x"], with_vectors=True)["warm_x"]
    names = [r.playlist.name for r in recommend_playlists(hand_store, stored.vector, exclude_track_uri="warm_x")]
    assert names == ["X"]  # the playlist that already holds the track is left out


def test_same_track_twice_is_one_point_and_keeps_membership(hand_store: Store) -> None:
    before = hand_store.count_tracks()
    hand_store.upsert_tracks([TrackRecord(track_uri="x1", title="x1 again")], [unit(1, 0.1, 0)])
    assert hand_store.count_tracks() == before
    record = hand_store.get_tracks(["x1"])["x1"].record
    assert record.title == "x1 again" and record.playlists == ["pl:x"]


def test_playlist_membership_and_centroid_follow_edits(hand_store: Store) -> None:
    hand_store.save_playlist(PlaylistRecord("pl:x", "X", track_uris=["x1", "near_x"]))
    tracks = hand_store.get_tracks(["x2", "near_x"])
    assert tracks["x2"].record.playlists == [] and tracks["near_x"].record.playlists == ["pl:x"]
    centroid = hand_store.get_playlists(["pl:x"])["pl:x"][1]
    expected = unit(*(unit(1, 0.1, 0) + unit(1, 0.03, 0.15)))
    assert np.allclose(centroid, expected, atol=F16)


def test_a_different_model_is_refused(hand_store: Store) -> None:
    with pytest.raises(ModelError, match="holds vectors of model 'hand' \\(dim 3\\)"):
        hand_store.bind_model("other", 3)
    with pytest.raises(ModelError):
        hand_store.bind_model("hand", 4)


def test_unknown_playlist_and_empty_store(memory_store: Store, hand_store: Store) -> None:
    with pytest.raises(NotFoundError, match="no playlist named 'Z'"):
        hand_store.find_playlist("Z")
    hand_store.backend.drop("tracks")
    with pytest.raises(NotFoundError, match="store is empty"):
        hand_store.bind_model("hand", 3, create=False)


def test_adding_audio_later_fills_the_playlist_centroid(memory_store: Store, tiny_model, library_files) -> None:
    from siamrec.audio_items import AudioItem
    from siamrec.embed import TrackEncoder
    from siamrec.library import add_audio

    encoder = TrackEncoder(tiny_model)
    memory_store.bind_model(encoder.name, encoder.dim)
    memory_store.save_playlist(PlaylistRecord("pl:later", "Later", track_uris=["spotify:track:a"]))
    assert memory_store.get_playlists(["pl:later"])["pl:later"][1] is None  # no audio yet: no centroid
    item = AudioItem(library_files["chord_a.wav"], overrides={"track_uri": "spotify:track:a"})
    report = add_audio(memory_store, encoder, [item])
    assert report.added + report.updated == ["spotify:track:a"] and not report.failed
    track = memory_store.get_tracks(["spotify:track:a"], with_vectors=True)["spotify:track:a"]
    assert track.record.playlists == ["pl:later"]
    centroid = memory_store.get_playlists(["pl:later"])["pl:later"][1]
    assert centroid is not None and np.allclose(centroid, track.vector, atol=1e-5)
    again = add_audio(memory_store, encoder, [item])
    assert again.updated == ["spotify:track:a"] and again.added == []


def test_names_are_found_through_the_index_whatever_their_case(hand_store: Store) -> None:
    assert hand_store.find_playlist("x").playlist_uri == "pl:x"
    hand_store.save_playlist(PlaylistRecord("pl:x2", "x", track_uris=["near_x"]))
    with pytest.raises(NotFoundError, match="2 playlists are named 'X'"):
        hand_store.find_playlist("X")


def test_playlists_holding_a_track_come_from_its_payload(hand_store: Store) -> None:
    assert hand_store.playlists_holding("warm_x") == ["pl:y"]
    assert hand_store.playlists_holding("far") == [] and hand_store.playlists_holding("unknown") == []


def test_deleting_tracks_updates_their_playlists(hand_store: Store) -> None:
    hand_store.delete_tracks(["x2"])
    assert hand_store.get_tracks(["x2"]) == {}
    record, centroid = hand_store.get_playlists(["pl:x"])["pl:x"]
    assert record.track_uris == ["x1"] and np.allclose(centroid, unit(1, 0.1, 0), atol=F16)


def test_a_derived_vector_sits_beside_the_model_vector(hand_store: Store) -> None:
    # The adapted metric's slot is made with the collection (a Qdrant server cannot add one later).
    assert hand_store.backend.vectors("tracks") == {"hand": 3, "hand+adapted": 3}
    assert hand_store.derived_vector("adapted", 3) == "hand+adapted"
    if not isinstance(hand_store.backend, EdgeBackend):
        with pytest.raises(StoreError, match="cannot add the vector"):  # a server collection is recreated instead
            hand_store.derived_vector("other", 2)
        return
    name = hand_store.derived_vector("other", 2)
    assert name == "hand+other" and hand_store.stored_model() == ("hand", 3)
    assert hand_store.derived_vector("other", 2) == name  # idempotent


def test_no_engine_types_outside_the_store_package() -> None:
    root = Path(__file__).resolve().parents[1]
    engine_import = re.compile(r"^\s*(from|import) qdrant", re.MULTILINE)
    offenders = [
        str(path.relative_to(root))
        for path in (root / "siamrec").rglob("*.py")
        if path.parent.name != "store" and engine_import.search(path.read_text())
    ]
    assert offenders == []


def test_tracks_under_a_folder_are_its_local_files_at_any_depth_and_no_others(any_store: Store) -> None:
    """The keyword index's prefix match (the embedded engine) and the server backend's own test of the payloads
    give the same tracks: a sibling whose name starts like the folder, and a synced track, are not under it."""
    any_store.bind_model("hand", 3)
    paths = {
        "local:track:a": ("/m/lib/album1/a.ogg", "local"),
        "local:track:b": ("/m/lib/album1/disc 2/b.flac", "local"),
        "local:track:c": ("/m/lib/album10/c.ogg", "local"),
        "local:track:d": ("/m/lib/album1", "local"),
        "mpd:track:e": ("/m/lib/album1/e.ogg", "mpd"),
    }
    records = [TrackRecord(uri, source=source, path=path) for uri, (path, source) in paths.items()]
    any_store.upsert_tracks(records, np.tile(unit(1, 0, 0), (len(records), 1)))
    for folder in ("/m/lib/album1", "/m/lib/album1/"):
        assert sorted(r.track_uri for r in any_store.tracks_under(folder)) == ["local:track:a", "local:track:b"]
    assert len(list(any_store.tracks_under("/m"))) == 4
    assert list(any_store.tracks_under("/m/lib/album2")) == []
    # The backend itself applies the prefix (the engine through its index), not only the facade's check.
    hits = any_store.backend.scroll(C.TRACKS_COLLECTION, Where(prefix={"path": "/m/lib/album1/"}))
    assert sorted(hit.payload["track_uri"] for hit in hits) == ["local:track:a", "local:track:b", "mpd:track:e"]


def test_a_sample_of_tracks_is_bounded_and_draws_only_tracks_with_a_vector(any_store: Store) -> None:
    any_store.bind_model("hand", 3)
    rng = np.random.default_rng(5)
    records = [TrackRecord(f"local:track:{i}") for i in range(30)]
    any_store.upsert_tracks(records[:25], rng.normal(size=(25, 3)).astype(np.float32))
    any_store.upsert_tracks(records[25:], [None] * 5)  # metadata only: no vector to place
    total, drawn = any_store.sample_tracks(10)
    assert total == 25 and len(drawn) == 10 and len({t.record.track_uri for t in drawn}) == 10
    assert all(t.vector is not None and int(t.record.track_uri.split(":")[-1]) < 25 for t in drawn)
    assert [t.record.track_uri for t in any_store.sample_tracks(10)[1]] == [t.record.track_uri for t in drawn]
    for seed in range(10):  # some start so late that the draw goes on from the first id
        assert len({t.record.track_uri for t in any_store.sample_tracks(10, seed)[1]}) == 10
    total, every = any_store.sample_tracks(25)
    assert total == 25 and sorted(t.record.track_uri for t in every) == sorted(r.track_uri for r in records[:25])


def test_uris_with_vectors_are_the_stored_tracks_whose_audio_was_embedded(hand_store: Store) -> None:
    """Asked of the indexes: a member not added yet (a metadata-only point), an unknown URI and repeats."""
    hand_store.save_playlist(PlaylistRecord("pl:z", "Z", track_uris=["x1", "spotify:track:later"]))
    assert hand_store.get_tracks(["spotify:track:later"])  # stored, without a vector
    asked = ["x1", "spotify:track:later", "nowhere", "x1", "far"]
    assert hand_store.uris_with_vectors(asked) == {"x1", "far"}
    assert hand_store.uris_with_vectors([]) == set()
