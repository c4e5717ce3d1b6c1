"""The adapted metric in the store: fitted on stored playlists, kept in step by later writes, used by recommend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from siamrec.adapt import adapt_store, fit_store, refit_if_auto, switch_off
from siamrec.config import resolve_settings
from siamrec.errors import NotFoundError, StoreError
from siamrec.recommend import recommend_playlists, recommend_tracks
from siamrec.store import PlaylistRecord, Store, TrackRecord
from siamrec.store import adaptation as stored_adaptation
from siamrec.store.backend import Point
from siamrec.store.edge import EdgeBackend
from siamrec.whitening import TooFewPlaylistsError
from tests.cli import invoke

DIM = 8
PLAYLISTS = 4
META = stored_adaptation.META_COLLECTION


def library(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Playlists that differ on dims 1-4 and vary a lot within themselves on dim 0 (a nuisance direction the
    whitening should learn to ignore); two cold tracks per playlist."""
    rng = np.random.default_rng(seed)
    vectors: dict[str, np.ndarray] = {}
    playlists: dict[str, list[str]] = {}
    for p in range(PLAYLISTS):
        centre = np.zeros(DIM)
        centre[1 + p] = 1.0
        members = []
        for t in range(8):
            uri = f"t:{p}:{t}"
            v = centre + rng.normal(0, 0.05, DIM)
            v[0] += rng.normal(0, 2.0)
            vectors[uri] = (v / np.linalg.norm(v)).astype(np.float32)
            if t < 6:
                members.append(uri)
        playlists[f"pl:{p}"] = members
    return vectors, playlists


def fill(store: Store, seed: int = 0, playlists: int = PLAYLISTS) -> dict[str, np.ndarray]:
    vectors, members = library(seed)
    store.bind_model("synthetic", DIM)
    store.upsert_tracks([TrackRecord(uri, title=uri) for uri in vectors], list(vectors.values()))
    for uri, tracks in list(members.items())[:playlists]:
        store.save_playlist(PlaylistRecord(uri, uri.upper(), track_uris=tracks))
    return vectors


@pytest.fixture(params=["memory", "edge"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store = Store.memory() if request.param == "memory" else Store(EdgeBackend(tmp_path / "store"))
    yield store
    store.close()


def test_queries_stay_plain_until_adapted(store: Store) -> None:
    fill(store)
    assert store.use_metric("auto") == "plain"
    with pytest.raises(NotFoundError, match="siamrec adapt"):
        store.use_metric("adapted")


def test_adapted_vectors_rank_as_the_fitted_map_says(store: Store) -> None:
    vectors = fill(store)
    report = adapt_store(store)
    assert report.adaptation.ready and report.tracks_written == len(vectors) and report.playlists_written == PLAYLISTS
    assert (report.adaptation.whitening.playlists, report.adaptation.whitening.tracks) == (PLAYLISTS, 6 * PLAYLISTS)
    assert sorted(report.adaptation.playlist_uris) == [f"pl:{p}" for p in range(PLAYLISTS)]
    assert store.use_metric("auto") == "adapted"
    whitening = report.adaptation.whitening
    uris = list(vectors)
    adapted = whitening.apply(np.stack([vectors[u] for u in uris]))
    playlist = store.find_playlist("pl:0")
    seeds = adapted[[uris.index(u) for u in playlist.track_uris]]
    centroid = seeds.mean(axis=0) / np.linalg.norm(seeds.mean(axis=0))
    cold = [u for u in uris if not any(u in store.find_playlist(f"pl:{p}").track_uris for p in range(PLAYLISTS))]
    expected = sorted(cold, key=lambda u: -float(adapted[uris.index(u)] @ centroid))
    found = recommend_tracks(store, playlist, k=len(cold))
    assert [s.track.track_uri for s in found] == expected
    assert found[0].track.track_uri.startswith("t:0:")  # the cold tracks of playlist 0 come first
    assert found[0].score == pytest.approx(float(adapted[uris.index(expected[0])] @ centroid), abs=1e-3)
    # The plain metric is still there, and ranks differently (dim 0 dominates it).
    store.use_metric("plain")
    plain = recommend_tracks(store, playlist, k=len(cold))
    assert [s.track.track_uri for s in plain] != expected


def test_adapted_metric_finds_the_right_playlist_where_plain_does_not(store: Store) -> None:
    vectors = fill(store)
    adapt_store(store)
    store.use_metric("adapted")
    hits = [recommend_playlists(store, vectors[f"t:{p}:7"], k=1)[0].playlist.playlist_uri for p in range(PLAYLISTS)]
    assert hits == [f"pl:{p}" for p in range(PLAYLISTS)]


def test_later_writes_keep_the_adapted_twins_in_step(store: Store) -> None:
    fill(store)
    whitening = adapt_store(store).adaptation.whitening
    new = np.zeros(DIM, dtype=np.float32)
    new[[0, 2]] = (0.6, 0.8)
    store.upsert_tracks([TrackRecord("t:new", title="new")], [new])
    store.save_playlist(PlaylistRecord("pl:1", "PL:1", track_uris=[*store.find_playlist("pl:1").track_uris, "t:new"]))
    twin = store.get_tracks(["t:new"], with_vectors=True, using=store.adapted_vector)["t:new"].vector
    assert twin is not None
    np.testing.assert_allclose(twin, whitening.apply(new[None])[0], atol=1e-3)  # stored as float16
    store.use_metric("adapted")
    _, centroid = store.get_playlists(["pl:1"])["pl:1"]
    members = store.get_tracks(store.find_playlist("pl:1").track_uris, with_vectors=True, using=store.adapted_vector)
    expected = np.mean([t.vector for t in members.values()], axis=0)
    np.testing.assert_allclose(centroid, expected / np.linalg.norm(expected), atol=1e-3)


def test_an_adapted_store_reopens_with_the_same_rankings(tmp_path: Path) -> None:
    store = Store(EdgeBackend(tmp_path / "store"))
    fill(store)
    adapt_store(store)
    store.use_metric("auto")
    before = [(s.track.track_uri, round(s.score, 5)) for s in recommend_tracks(store, store.find_playlist("pl:2"))]
    store.close()
    again = Store(EdgeBackend(tmp_path / "store"))
    again.bind_stored_model()
    assert again.use_metric("auto") == "adapted"
    after = [(s.track.track_uri, round(s.score, 5)) for s in recommend_tracks(again, again.find_playlist("pl:2"))]
    again.close()
    assert after == before


def test_too_few_playlists_keep_the_plain_metric(store: Store) -> None:
    fill(store, playlists=2)
    with pytest.raises(TooFewPlaylistsError, match="plain metric stays"):
        adapt_store(store)
    assert store.adaptation() is None and store.use_metric("auto") == "plain"


def test_an_unfinished_adaptation_is_not_used_and_a_rerun_finishes_it(store: Store) -> None:
    fill(store)
    store.save_adaptation(fit_store(store))  # what an interrupted `adapt` leaves: a map, not ready
    assert store.use_metric("auto") == "plain"
    adapt_store(store)
    assert store.use_metric("auto") == "adapted"
    assert switch_off(store) and store.adaptation() is None and store.use_metric("auto") == "plain"
    assert not switch_off(store)


def test_cli_adapt_then_recommend(home: Path) -> None:
    with Store.open(resolve_settings()) as store:
        fill(store, playlists=2)
    short = invoke("adapt")
    assert short.returncode == 1 and short.stderr.count("\n") == 1 and "plain metric stays" in short.stderr
    with Store.open(resolve_settings()) as store:
        fill(store)
    report = json.loads(invoke("adapt", "--json", check=True).stdout)
    assert (report["metric"], report["playlists"], report["tracks_written"]) == ("adapted", PLAYLISTS, 32)
    found = json.loads(invoke("recommend", "--playlist", "PL:0", "-k", "2", "--json", check=True).stdout)
    assert found["metric"] == "adapted" and all(r["track_uri"].startswith("t:0:") for r in found["results"])
    plain = json.loads(invoke("recommend", "--playlist", "PL:0", "--metric", "plain", "--json", check=True).stdout)
    assert plain["metric"] == "plain"
    assert json.loads(invoke("adapt", "--off", "--json", check=True).stdout) == {"metric": "plain", "removed": True}
    refused = invoke("recommend", "--playlist", "PL:0", "--metric", "adapted")
    assert refused.returncode != 0 and "siamrec adapt" in refused.stderr


def test_auto_refits_after_playlist_changes_only_when_switched_on(store: Store) -> None:
    vectors = fill(store)
    adapt_store(store)
    assert refit_if_auto(store, playlists_changed=True) is None  # auto is off by default
    adapt_store(store, auto=True)
    assert refit_if_auto(store, playlists_changed=False) is None
    store.save_playlist(PlaylistRecord("pl:mix", "MIX", track_uris=["t:0:6", "t:1:6", "t:2:6"]))
    refit = refit_if_auto(store, playlists_changed=True)
    assert refit is not None and refit["playlists"] == PLAYLISTS + 1 and refit["auto"] is True
    assert "pl:mix" in store.adaptation().playlist_uris
    twin = store.get_tracks(["t:0:7"], with_vectors=True, using=store.adapted_vector)["t:0:7"].vector
    np.testing.assert_allclose(twin, store.adaptation().whitening.apply(vectors["t:0:7"][None])[0], atol=1e-3)


def reopened(store: Store) -> Store:
    """A fresh Store over the same backend (nothing cached from the writes), bound to the stored model."""
    fresh = Store(store.backend)
    fresh.bind_stored_model()
    return fresh


def test_the_summary_is_read_without_the_map_and_a_lost_map_is_refused(store: Store) -> None:
    fill(store)
    adapted = adapt_store(store).adaptation
    store.backend.delete(META, [stored_adaptation.arrays_id("synthetic")])
    fresh = reopened(store)
    assert fresh.adaptation_summary() == adapted.summary()  # what info and recommend --playlist read
    assert fresh.use_metric("auto") == "adapted"
    with pytest.raises(StoreError, match="damaged .*re-run `siamrec adapt`"):
        fresh.adaptation()  # a write or a query by audio needs the map itself


def test_a_save_cut_between_map_and_summary_is_found(store: Store) -> None:
    fill(store)
    first = adapt_store(store).adaptation
    second = fit_store(store, shrinkage=0.9)  # another map, its arrays written, its summary never
    other = stored_adaptation.arrays_payload("synthetic", second.whitening)
    store.backend.upsert(META, [Point(stored_adaptation.arrays_id("synthetic"), {}, other)])
    fresh = reopened(store)
    assert fresh.adaptation_summary() == first.summary()
    with pytest.raises(StoreError, match="not the one its summary names"):
        fresh.adaptation()
    adapt_store(fresh)  # a re-run mends it
    assert reopened(store).adaptation() is not None


def test_a_map_stored_inside_its_summary_still_reads(store: Store) -> None:
    """Stores adapted before the map moved to a point of its own keep it in the summary point."""
    vectors = fill(store)
    adapted = adapt_store(store).adaptation
    old = {k: v for k, v in stored_adaptation.to_payload("synthetic", adapted, "").items() if k != "arrays_sha1"}
    old.update({k: v for k, v in stored_adaptation.arrays_payload("synthetic", adapted.whitening).items() if k in
                stored_adaptation.ARRAYS})  # fmt: skip
    store.backend.delete(META, [stored_adaptation.arrays_id("synthetic")])
    store.backend.upsert(META, [Point(stored_adaptation.adaptation_id("synthetic"), {}, old)])
    fresh = reopened(store)
    assert fresh.adaptation_summary() == adapted.summary()
    found = fresh.adaptation()
    assert found is not None and found.summary() == adapted.summary()
    np.testing.assert_array_equal(found.whitening.transform, adapted.whitening.transform)
    fresh.save_adaptation(replace(found, auto=True))  # the next save writes the map apart
    again = reopened(store)
    assert again.adaptation_summary() == {**adapted.summary(), "auto": True}
    again.use_metric("adapted")
    expected = adapted.whitening.apply(vectors["t:0:7"][None])[0]
    np.testing.assert_allclose(again.to_query_space(vectors["t:0:7"]), expected, atol=1e-6)


@pytest.mark.parametrize("summed", [20_000, 2])
def test_adapt_writes_each_centroid_as_the_mean_of_its_members_twins(
    store: Store, monkeypatch: pytest.MonkeyPatch, summed: int
) -> None:
    """Centroids summed during the rewrite (and, past SUMMED_PLAYLISTS, refreshed whole) match the stored twins;
    a playlist whose members lost their vectors keeps no adapted centroid from an earlier map."""
    monkeypatch.setattr("siamrec.store.metric.SUMMED_PLAYLISTS", summed)
    vectors = fill(store)
    store.save_playlist(PlaylistRecord("pl:twice", "TWICE", track_uris=["t:0:0", "t:1:0", "t:0:0", "t:0:7"]))
    store.save_playlist(PlaylistRecord("pl:bare", "BARE", track_uris=["t:3:7"]))
    adapt_store(store)
    assert store.get_playlists(["pl:bare"])["pl:bare"][1] is not None
    store.upsert_tracks([TrackRecord("t:3:7", title="t:3:7", playlists=["pl:bare"])], [None])  # its vector is gone
    report = adapt_store(store)
    assert report.tracks_written == len(vectors) and report.playlists_written == PLAYLISTS + 2
    store.use_metric("adapted")
    for record, centroid in store.get_playlists([f"pl:{p}" for p in range(PLAYLISTS)] + ["pl:twice"]).values():
        members = store.get_tracks(record.track_uris, with_vectors=True, using=store.adapted_vector)
        expected = np.mean([t.vector for t in members.values()], axis=0)
        np.testing.assert_allclose(centroid, expected / np.linalg.norm(expected), atol=1e-3)
    assert store.get_playlists(["pl:bare"])["pl:bare"][1] is None
