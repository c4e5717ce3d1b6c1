"""`siamrec bench --feedback`: a simulated listener's rounds, ranked as the store ranks, lifting where it should."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from siamrec.bench.feedback import Listener, _scores, feedback_method
from siamrec.bench.protocol import evaluate_vectors, make_splits
from siamrec.config import resolve_settings
from siamrec.feedback import give_feedback
from siamrec.recommend import recommend_tracks
from siamrec.store import PlaylistRecord, Store, TrackRecord
from tests.cli import run_siamrec


def twins(n_pairs: int = 4, size: int = 12, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Playlists in pairs around a shared direction, each with a weaker direction of its own: the first ranking
    mixes a pair's songs, and rejecting the twin's songs is what tells them apart."""
    rng = np.random.default_rng(seed)
    vectors: list[np.ndarray] = []
    playlists = []
    for _ in range(n_pairs):
        base = rng.standard_normal(dim)
        for _ in range(2):
            own = base + rng.standard_normal(dim)
            playlists.append(np.arange(len(vectors), len(vectors) + size))
            vectors += list(own + 0.8 * rng.standard_normal((size, dim)))
    return np.array(vectors, dtype=np.float32), playlists


def test_rounds_of_feedback_lift_r_precision_where_it_is_built_in() -> None:
    vectors, playlists = twins()
    splits = make_splits(playlists, len(vectors), 6, 6, 5, "masked", 0)
    rounds = feedback_method(vectors, splits, "mean", 2, 6)
    with_fb, without = rounds["feedback:r_precision"].mean(axis=0), rounds["no_feedback:r_precision"].mean(axis=0)
    # round 0 is the plain protocol on the same draws
    plain = evaluate_vectors(vectors, playlists, n_masked=6, max_seeds=6, seeds=5)["r_precision"][0]
    assert with_fb[0] == without[0] == pytest.approx(plain)
    assert with_fb[1] > without[1] + 0.2, (with_fb, without)
    found = rounds["feedback:found"].mean(axis=0)
    assert found[0] == 0 and 0 < found[1] <= found[2] <= 1


@pytest.mark.parametrize("strategy", ["mean", "best-score"])
def test_the_simulated_listener_ranks_as_the_store_does(strategy: str) -> None:
    """The bench's scores with negatives give the order recommend_tracks gets from Qdrant with stored feedback."""
    rng = np.random.default_rng(5)
    unit = rng.standard_normal((30, 8)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    seeds, rejected = [0, 1, 2], [3, 4]
    store = Store.memory()
    try:
        store.bind_model("fake", 8, create=True)
        records = [TrackRecord(f"local:track:{i}") for i in range(len(unit))]
        store.upsert_tracks(records, list(unit))
        store.save_playlist(PlaylistRecord("local:playlist:p", "p", track_uris=[f"local:track:{i}" for i in seeds]))
        give_feedback(store, "local:playlist:p", reject=[f"local:track:{i}" for i in rejected])
        found = recommend_tracks(store, store.find_playlist("p"), k=30, strategy=strategy, include_warm=True)
    finally:
        store.close()
    listener = Listener(np.array([seeds]), np.array([rejected]), np.zeros((1, 1), bool), True, 3)
    candidates = np.arange(5, 30)
    scores = _scores(unit, listener, slice(0, 1), unit[candidates], strategy)[0]
    assert [s.track.track_uri for s in found] == [f"local:track:{i}" for i in candidates[np.argsort(-scores)]]


def fill(home: Path) -> None:
    vectors, playlists = twins()
    with Store.open(resolve_settings(home=str(home))) as store:
        store.bind_model("fake", vectors.shape[1], create=True)
        store.upsert_tracks([TrackRecord(f"local:track:{i}") for i in range(len(vectors))], list(vectors))
        for p, rows in enumerate(playlists):
            uris = [f"local:track:{i}" for i in rows]
            store.save_playlist(PlaylistRecord(f"local:playlist:{p}", f"list {p}", track_uris=uris))


def bench(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIAMREC_HOME": str(home), "COLUMNS": "80"}
    env.pop("SIAMREC_MODEL", None)
    return run_siamrec("bench", "--mask", "6/6", "--seeds", "3", "--baseline", "none", *args, env=env)


def test_cli_bench_feedback_reports_every_round(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill(home)
    result = bench(home, "--metric", "plain", "--feedback", "2", "--feedback-k", "6", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["feedback"] == {"rounds": 2, "k": 6}
    rounds = report["splits"][0]["feedback"]["fake (store)"]
    with_fb = [r["mean"] for r in rounds["feedback"]["r_precision"]]
    without = [r["mean"] for r in rounds["no_feedback"]["r_precision"]]
    assert len(with_fb) == len(without) == 3 and with_fb[0] == without[0]
    assert with_fb[1] > without[1], rounds
    assert {"found", "reward"} <= set(rounds["feedback"])
    text = bench(home, "--feedback", "1", "--feedback-k", "6")
    assert text.returncode == 0, text.stderr
    assert "no fb" in text.stdout and "fake, adapted" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80
    refused = bench(home, "--feedback", "0")
    assert refused.returncode == 2 and "--feedback" in refused.stderr and "Traceback" not in refused.stderr
