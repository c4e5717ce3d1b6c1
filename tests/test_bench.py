"""The protocol (splits, strategies, candidates), the bench over a store, and the CLI's answers to bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from siamrec.bench.methods import AudioMethod, embed_audio_methods
from siamrec.bench.protocol import Split, evaluate_vectors, make_splits, normalise_rows, pad_playlists, score_split
from siamrec.bench.run import PAPER_SPLITS, parse_masks, run_protocol
from siamrec.config import resolve_settings
from siamrec.errors import ConfigError, SiamrecError
from siamrec.store import PlaylistRecord, Store, TrackRecord
from tests.cli import assert_one_error_line, invoke

BEST = {"reward": 100.0, "r_precision": 1.0, "ndcg": 1.0, "clicks": 0.0, "hit_rate@10": 1.0, "mrr": 1.0}


def clustered(n_playlists: int, size: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Perfect embeddings: each playlist a tight cluster of its own."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_playlists, dim))
    vectors = np.repeat(centres, size, axis=0) + 1e-3 * rng.standard_normal((n_playlists * size, dim))
    return vectors, [np.arange(p * size, (p + 1) * size) for p in range(n_playlists)]


@pytest.mark.parametrize("strategy", ["mean", "best-score"])
@pytest.mark.parametrize("candidates", ["masked", "library"])
def test_perfect_embeddings_score_the_maximum(strategy: str, candidates: str) -> None:
    vectors, playlists = clustered(30, 12)
    result = evaluate_vectors(vectors, playlists, 5, 5, seeds=3, strategy=strategy, candidates=candidates)
    for name, best in BEST.items():
        assert result[name] == pytest.approx((best, 0.0)), name
    assert result["playlists_used"] == (30.0, 0.0)


def test_random_embeddings_score_chance() -> None:
    """Fresh random vectors per run (a fixed draw of vectors has its own lucky structure)."""
    rng = np.random.default_rng(1)
    playlists = [np.arange(p * 12, (p + 1) * 12) for p in range(20)]
    runs = [evaluate_vectors(rng.standard_normal((240, 16)), playlists, 5, 5, 4, rng_seed=k) for k in range(40)]
    for name in BEST:
        values = np.array([run[name][0] for run in runs])
        chance = runs[0][f"{name}_chance"][0]
        assert abs(values.mean() - chance) < 4 * values.std() / np.sqrt(len(values)) + 1e-9, name


def test_a_constant_model_scores_exactly_chance() -> None:
    """All scores tie; ties break in the candidates' random order, not in the model's favour."""
    playlists = [np.arange(p * 10, (p + 1) * 10) for p in range(100)]
    result = evaluate_vectors(np.ones((1000, 4)), playlists, 5, 5, seeds=2)
    assert result["reward"][0] == pytest.approx(result["reward_chance"][0])
    assert result["reward_chance"][0] == pytest.approx(5.187378, abs=1e-6)  # H_100 for 100 playlists


def test_short_playlists_are_skipped_and_counted() -> None:
    vectors, playlists = clustered(4, 8)
    playlists[0] = playlists[0][:5]  # 5 tracks: too short for 5 masked + 1 seed
    result = evaluate_vectors(vectors, playlists, 5, 10, seeds=2)
    assert result["playlists_used"] == (3.0, 0.0) and result["playlists_skipped"] == (1.0, 0.0)
    with pytest.raises(ConfigError, match="no playlist"):
        evaluate_vectors(vectors, playlists, 8, 10, seeds=2)


def test_broken_vectors_are_refused() -> None:
    vectors, playlists = clustered(3, 8)
    vectors[2, 0] = np.nan
    with pytest.raises(SiamrecError, match="NaN"):
        evaluate_vectors(vectors, playlists, 2, 2, seeds=1)


def test_splits_mask_n_keep_up_to_m_and_repeat_by_seed() -> None:
    playlists = [np.array([0, 1, 2, 3, 4, 5, 6, 7, 3]), np.array([8, 9, 10]), np.array([11, 12, 13, 14])]
    splits = make_splits(playlists, 15, n_masked=2, max_seeds=4, seeds=3, rng_seed=7)
    assert splits.used.tolist() == [0, 1, 2] and splits.skipped == 0
    for split in splits.draws:
        for masked, seeds, members in zip(split.masked, split.seeds, split.members, strict=True):
            kept = seeds[seeds >= 0]
            assert len(set(masked) | set(kept)) == len(masked) + len(kept)  # disjoint, no duplicates
            assert set(masked) | set(kept) <= set(members[members >= 0])
            assert len(kept) == min(4, np.count_nonzero(members >= 0) - 2)
        assert sorted(split.candidates) == sorted(np.unique(split.masked))
    again = make_splits(playlists, 15, n_masked=2, max_seeds=4, seeds=3, rng_seed=7)
    np.testing.assert_array_equal(again.draws[2].masked, splits.draws[2].masked)


def test_pad_playlists_drops_duplicates() -> None:
    padded = pad_playlists([np.array([3, 1, 3]), np.array([], dtype=np.int64), np.array([2])])
    assert padded.tolist() == [[1, 3], [-1, -1], [2, -1]]


def _unit(degrees: list[float]) -> np.ndarray:
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_score_split_by_hand() -> None:
    """Rows 0-2 are seeds at 0°, 95°, 180°; rows 3-8 the masked songs at 10°, 100° | 80°, 200° | 170°, 300°.

    Angular distances to A's seed (0°): 10, 100, 80, 160, 170, 60 → A's songs (10°, 100°) rank 0 and 3.
    To B's (95°): 85, 5, 15, 105, 75, 155 → B's songs (80°, 200°) rank 1 and 4.
    To C's (180°): 170, 80, 100, 20, 10, 120 → C's songs (170°, 300°) rank 0 and 4.
    """
    unit = _unit([0, 95, 180, 10, 100, 80, 200, 170, 300])
    masked = np.array([[3, 4], [5, 6], [7, 8]])
    split = Split(masked, np.array([[0], [1], [2]]), np.hstack([masked, [[0], [1], [2]]]), np.arange(3, 9))
    for strategy in ("mean", "best-score"):
        ranks, n_candidates = score_split(unit, split, strategy)
        np.testing.assert_array_equal(ranks, [[0, 3], [1, 4], [0, 4]])
        np.testing.assert_array_equal(n_candidates, [6, 6, 6])


def test_a_playlists_own_songs_are_not_its_candidates() -> None:
    """Library candidates: A's seeds and its extra song (row 9, at 1°) are excluded from A's ranking only."""
    unit = _unit([0, 95, 180, 10, 100, 80, 200, 170, 300, 1])
    masked = np.array([[3, 4], [5, 6], [7, 8]])
    members = np.array([[3, 4, 0, 9], [5, 6, 1, -1], [7, 8, 2, -1]])
    split = Split(masked, np.array([[0], [1], [2]]), members, np.arange(10))
    ranks, n_candidates = score_split(unit, split, "mean")
    np.testing.assert_array_equal(n_candidates, [8, 9, 9])
    assert ranks[0].tolist() == [0, 4]  # 10°, then 300°, 80°, 95°, 100°: row 9 (1°) is not in A's way


def test_best_score_is_qdrants_best_score_with_positives_only() -> None:
    rng = np.random.default_rng(3)
    unit = normalise_rows(rng.standard_normal((40, 8)))
    seeds = np.array([[0, 1, 2, -1]])
    candidates = np.arange(3, 40)  # every point but the three examples Qdrant leaves out
    split = Split(np.array([[4]]), seeds, np.array([[4, 0, 1, 2]]), candidates)
    from siamrec.bench.protocol import _query_scores

    ours = _query_scores(unit, seeds, unit[candidates], "best-score")[0]
    client = QdrantClient(location=":memory:")
    client.create_collection("t", vectors_config=qm.VectorParams(size=8, distance=qm.Distance.COSINE))
    client.upsert("t", [qm.PointStruct(id=i, vector=v.tolist()) for i, v in enumerate(unit)])
    query = qm.RecommendQuery(recommend=qm.RecommendInput(positive=[0, 1, 2], strategy=qm.RecommendStrategy.BEST_SCORE))
    points = client.query_points("t", query=query, limit=len(candidates)).points
    client.close()
    assert [p.id for p in points] == candidates[np.argsort(-ours)].tolist()  # same ranking (Qdrant rescales scores)
    assert score_split(unit, split, "best-score")[0][0, 0] == int(np.flatnonzero(candidates[np.argsort(-ours)] == 4)[0])


def test_mask_parsing() -> None:
    assert parse_masks("15/5") == [(15, 5)]
    assert parse_masks("10/5, 18/2") == [(10, 5), (18, 2)]
    assert parse_masks("all") == list(PAPER_SPLITS) == [(10, 10), (13, 7), (15, 5), (18, 2)]
    for bad in ("20/0", "0/5", "15", "a/b", "5/-1"):
        with pytest.raises(ConfigError, match="--mask"):
            parse_masks(bad)


def test_methods_share_the_same_splits() -> None:
    """Two names for the same vectors score identically; a split no playlist fits is left out with a note."""
    vectors, playlists = clustered(6, 6)
    noisy = vectors + np.random.default_rng(0).standard_normal(vectors.shape)
    results, notes = run_protocol({"a": noisy, "b": noisy.copy()}, playlists, [(3, 2), (10, 10)], seeds=3)
    assert [r.label for r in results] == ["3/2"] and "10/10" in notes[0]
    assert results[0].methods["a"] == results[0].methods["b"]


class CountingMethod:
    """Window count per track as a 1-D 'embedding', counting the tracks it was asked to embed."""

    def __init__(self) -> None:
        self.embedded = 0

    def __call__(self, windows_per_track: list[np.ndarray]) -> np.ndarray:
        self.embedded += len(windows_per_track)
        return np.array([[len(w)] for w in windows_per_track], dtype=np.float32)


def test_audio_methods_are_cached_and_failures_listed(tmp_path: Path, library_files: dict[str, Path]) -> None:
    records = [TrackRecord(f"local:track:{name}", path=str(path)) for name, path in sorted(library_files.items())]
    records.append(TrackRecord("local:track:gone", path=str(tmp_path / "gone.wav")))
    counter = CountingMethod()
    method = AudioMethod("count", "count-v1", counter)
    vectors, failed = embed_audio_methods(records, [method], tmp_path / "cache")
    assert counter.embedded == len(library_files)
    assert list(failed) == ["local:track:gone"] and "not found" in failed["local:track:gone"]
    assert np.isnan(vectors["count"][-1]).all() and (vectors["count"][:-1] == 1).all()  # 4 s: one window
    again, _ = embed_audio_methods(records, [method], tmp_path / "cache")
    assert counter.embedded == len(library_files)  # nothing re-embedded
    np.testing.assert_array_equal(again["count"][:-1], vectors["count"][:-1])


# ---- the CLI on a store filled in a temporary SIAMREC_HOME ---------------------------------------------------


@pytest.fixture
def bench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIAMREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIAMREC_MODEL", raising=False)
    monkeypatch.delenv("SIAMREC_MUSICNN", raising=False)
    return tmp_path / "home"


def fill_store(n_playlists: int, size: int, paths: list[Path] | None = None) -> None:
    """Clustered vectors of a model 'fake' with playlists of `size` tracks (audio paths when given)."""
    vectors, playlists = clustered(n_playlists, size, dim=8)
    records = [
        TrackRecord(f"local:track:{i}", path=str(paths[i % len(paths)]) if paths else None) for i in range(len(vectors))
    ]
    with Store.open(resolve_settings()) as store:
        store.bind_model("fake", 8, create=True)
        store.upsert_tracks(records, vectors)
        for p, rows in enumerate(playlists):
            uris = [records[i].track_uri for i in rows]
            store.save_playlist(PlaylistRecord(f"local:playlist:{p}", f"list {p}", track_uris=uris))


def test_cli_bench_json_and_plot(bench_home: Path, tmp_path: Path) -> None:
    fill_store(5, 6)
    plot = tmp_path / "bench.png"
    done = invoke("bench", "--mask", "3/2,4/5", "--seeds", "3", "--baseline", "random", "--plot", str(plot), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [s["mask"] for s in report["splits"]] == ["3/2", "4/5"]
    first = report["splits"][0]
    # --metric both (the default): each method plain and adapted; 4/5 leaves one seed per playlist, too few to fit.
    assert set(first["methods"]) == {"fake (store)", "random", "fake (store), adapted", "random, adapted"}
    assert set(report["splits"][1]["methods"]) == {"fake (store)", "random"}
    assert any("no adapted metric for 4/5" in note for note in report["notes"])
    assert first["methods"]["fake (store)"]["r_precision"] == {"mean": 1.0, "std": 0.0}
    assert first["chance"]["reward"] == pytest.approx(100 * sum(1 / k for k in range(1, 6)) / 5)  # H_5 per 100
    assert first["playlists_used"] == 5 and plot.stat().st_size > 0
    done = invoke("bench", "--mask", "3/2", "--seeds", "2", "--baseline", "none")
    assert done.returncode == 0 and "chance (exact)" in done.stdout
    assert "feedback" not in done.stdout  # no --feedback, no (empty) feedback table


def test_cli_bench_bad_input(bench_home: Path, tmp_path: Path) -> None:
    done = invoke("bench", "--baseline", "random")
    assert_one_error_line(done, "the store is empty")
    fill_store(3, 4)
    done = invoke("bench", "--mask", "20/0")
    assert_one_error_line(done, "--mask 20/0")
    done = invoke("bench", "--mask", "15/5", "--baseline", "random")
    assert_one_error_line(done, "no playlist has the 6 tracks")
    done = invoke("bench", "--baseline", "mfcc,lyrics")
    assert_one_error_line(done, "unknown baseline lyrics")
    done = invoke("bench", "--baseline", "musicnn", "--musicnn", "gone.onnx")
    assert done.returncode == 2  # click's check: the file exists
    assert_one_error_line(done, "'--musicnn'")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    done = invoke("bench", "--compare-model", str(garbage))
    assert_one_error_line(done, "cannot load model")


def test_cli_refuses_an_onnx_file_without_the_siamrec_contract(bench_home: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    fill_store(3, 4)
    done = invoke("bench", "--mask", "2/2", "--compare-model", str(path))
    assert_one_error_line(done, "is not a siamrec model")


def test_cli_bench_with_audio_methods_and_map(
    bench_home: Path,
    tmp_path: Path,
    tiny_model: Path,
    library_files: dict[str, Path],
) -> None:
    """Another siamrec model (any name/dimension) and mfcc embedded from the tracks' audio, cached by hash."""
    fill_store(3, 4, paths=sorted(library_files.values()))
    args = ("bench", "--mask", "2/2", "--seeds", "2", "--baseline", "mfcc", "--compare-model", str(tiny_model))
    args = (*args, "--json")
    done = invoke(*args)
    assert done.returncode == 0, done.stderr
    methods = json.loads(done.stdout)["splits"][0]["methods"]
    assert set(methods) == {"fake (store)", "mfcc", f"tiny ({tiny_model.name})"}
    cached = sorted(p.parent.parent.name for p in (bench_home / "cache" / "bench").rglob("*.npy"))
    assert len(cached) == 2 * len(library_files)  # one vector per audio file (not per track) and method
    done = invoke("map", "--png", str(tmp_path / "map.png"), "--method", "pca")
    assert done.returncode == 0 and (tmp_path / "map.png").stat().st_size > 0, done.stderr


def test_library_subset_renumbers_playlists() -> None:
    from siamrec.bench.methods import Library

    records = [TrackRecord(f"t{i}") for i in range(5)]
    library = Library(
        ("m", 2), records, np.arange(10.0).reshape(5, 2), [np.array([0, 2, 4]), np.array([1, 3])], ["a", "b"]
    )
    kept = library.subset(np.array([True, True, False, True, True]))
    assert [r.track_uri for r in kept.records] == ["t0", "t1", "t3", "t4"]
    assert [p.tolist() for p in kept.playlists] == [[0, 3], [1, 2]]
    np.testing.assert_array_equal(kept.vectors[2], [6.0, 7.0])
