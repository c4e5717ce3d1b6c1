"""Metrics: a hand-worked example to the digit, exact chance levels, and the paper's ascending-sort bug pinned."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from siamrec.bench.measures import (
    CLICKS_MISS,
    chance_metrics,
    chance_per_playlist,
    clicks_from_first,
    harmonic,
    playlist_metrics,
    ranks_of_relevant,
    reward_score,
)

# Three playlists A, B, C; two masked songs each; the six masked songs are the candidates (columns 0..5).
# A's songs are columns 0, 1; B's 2, 3; C's 4, 5. Rows: each playlist's similarity to every candidate.
SCORES = np.array(
    [
        [0.9, 0.1, 0.8, 0.7, 0.2, 0.3],  # A ranks c0 c2 c3 c5 c4 c1: its songs at ranks 0 and 5
        [0.5, 0.4, 0.3, 0.9, 0.6, 0.1],  # B ranks c3 c4 c0 c1 c2 c5: its songs at ranks 4 (c2) and 0 (c3)
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # C ranks c0 … c5: its songs at ranks 4 and 5
    ]
)
RELEVANT = np.array([[0, 1], [2, 3], [4, 5]])
RANKS = np.array([[0, 5], [4, 0], [4, 5]])


def test_ranks_of_the_hand_worked_example() -> None:
    np.testing.assert_array_equal(ranks_of_relevant(SCORES, RELEVANT), RANKS)


def test_most_similar_songs_rank_first_not_last() -> None:
    """The paper's reference code sorted ascending; here rank 0 is the MOST similar candidate."""
    scores = np.array([[0.1, 0.2, 0.95, 0.3, 0.9]])
    ranks = ranks_of_relevant(scores, np.array([[2, 4]]))
    np.testing.assert_array_equal(ranks, [[0, 1]])  # an ascending sort gives [[4, 3]]
    assert reward_score(ranks) == 1.0  # the maximum; ascending would give (1/3 + 1/2) / 2
    assert playlist_metrics(ranks)["r_precision"][0] == 1.0


def test_every_metric_of_the_hand_worked_example() -> None:
    per_playlist = playlist_metrics(RANKS, hit_k=1)
    # reward (n = 2): A (1/1 + 1/3)/2 = 2/3, B (1/3 + 1/1)/2 = 2/3, C (1/3 + 1/3)/2 = 1/3 → Eq. 3 sum 5/3.
    assert reward_score(RANKS) == pytest.approx(1.666667, abs=1e-6)
    np.testing.assert_allclose(per_playlist["reward"], [66.666667, 66.666667, 33.333333], atol=1e-6)
    # R-precision: songs in the top 2 → A 1/2, B 1/2, C 0.
    np.testing.assert_allclose(per_playlist["r_precision"], [0.5, 0.5, 0.0])
    # NDCG: gains 1/log2(rank + 2); ideal 1 + 1/log2 3 = 1.630930. A (1 + 1/log2 7) = 1.356207 → 0.831555;
    # B (1/log2 6 + 1) = 1.386853 → 0.850345; C (1/log2 6 + 1/log2 7) = 0.743060 → 0.455605.
    np.testing.assert_allclose(per_playlist["ndcg"], [0.831555, 0.850345, 0.455605], atol=1e-6)
    # First relevant ranks 0, 0, 4: clicks ⌊r/10⌋ = 0; hit@1 1, 1, 0; MRR 1, 1, 1/5.
    np.testing.assert_allclose(per_playlist["clicks"], [0, 0, 0])
    np.testing.assert_allclose(per_playlist["hit_rate@1"], [1, 1, 0])
    np.testing.assert_allclose(per_playlist["mrr"], [1.0, 1.0, 0.2])
    assert playlist_metrics(RANKS)["hit_rate@10"].tolist() == [1.0, 1.0, 1.0]


def test_chance_of_the_hand_worked_example() -> None:
    chance = chance_metrics(6, 2, hit_k=1)
    # reward: mean over ranks 0..5 of 1/(⌊r/2⌋+1) = (1+1+1/2+1/2+1/3+1/3)/6 = 11/18; × 3 playlists = H_3.
    assert chance["reward"] == pytest.approx(100 * 11 / 18)
    assert 3 * chance["reward"] / 100 == pytest.approx(harmonic(3))
    assert chance["r_precision"] == pytest.approx(2 / 6)
    assert chance["hit_rate@1"] == pytest.approx(2 / 6)
    # MRR: P(first = j) = C(5 - j, 1) / C(6, 2) = (5 - j)/15 → Σ (5 - j) / (15 (j + 1)) = 0.522222.
    assert chance["mrr"] == pytest.approx(sum((5 - j) / (15 * (j + 1)) for j in range(5)))


def test_ties_break_by_column_order() -> None:
    """Equal scores never all share rank 0: a constant model would otherwise look perfect."""
    ranks = ranks_of_relevant(np.zeros((1, 6)), np.array([[4, 1]]))
    np.testing.assert_array_equal(ranks, [[4, 1]])


def test_excluded_candidates_never_outrank() -> None:
    scores = np.array([[np.inf * -1, 0.5, -np.inf, 0.1]])
    np.testing.assert_array_equal(ranks_of_relevant(scores, np.array([[3]])), [[1]])


def test_clicks_follow_the_recsys_definition() -> None:
    np.testing.assert_array_equal(clicks_from_first(np.array([0, 9, 10, 499, 500, 10_000])), [0, 0, 1, 49, 51, 51])
    assert CLICKS_MISS == 51


def test_perfect_ranks_score_the_maximum() -> None:
    ranks = np.tile(np.arange(5), (100, 1))
    per_playlist = playlist_metrics(ranks)
    assert reward_score(ranks) == 100
    for name, best in {"reward": 100, "r_precision": 1, "ndcg": 1, "clicks": 0, "hit_rate@10": 1, "mrr": 1}.items():
        np.testing.assert_allclose(per_playlist[name], best)


@pytest.mark.parametrize(("n_candidates", "n_relevant"), [(6, 2), (25, 3), (23, 1)])
def test_chance_is_the_exact_expectation(n_candidates: int, n_relevant: int) -> None:
    """Average over every possible set of relevant positions (all rankings, equally likely)."""
    positions = np.array(list(itertools.combinations(range(n_candidates), n_relevant)))
    enumerated = {name: values.mean() for name, values in playlist_metrics(positions, hit_k=3).items()}
    chance = chance_metrics(n_candidates, n_relevant, hit_k=3)
    assert chance.keys() == enumerated.keys()
    for name, value in chance.items():
        assert value == pytest.approx(enumerated[name], abs=1e-12), name


def test_paper_chance_level_is_the_harmonic_number() -> None:
    """100 playlists × 5 masked songs, candidates = the 500 masked songs: reward at chance = H_100 ≈ 5.19."""
    assert chance_metrics(500, 5)["reward"] == pytest.approx(harmonic(100))
    assert harmonic(100) == pytest.approx(5.187378, abs=1e-6)


def test_chance_of_large_libraries_stays_finite() -> None:
    chance = chance_metrics(100_000, 10)
    assert all(math.isfinite(v) for v in chance.values())
    assert chance["clicks"] == pytest.approx(CLICKS_MISS, rel=0.1)  # the first hit is far beyond 500


def test_chance_per_playlist_groups_candidate_counts() -> None:
    levels = chance_per_playlist(np.array([6, 25, 6]), 2)
    assert levels["mrr"][0] == levels["mrr"][2] == pytest.approx(chance_metrics(6, 2)["mrr"])
    assert levels["mrr"][1] == pytest.approx(chance_metrics(25, 2)["mrr"])
