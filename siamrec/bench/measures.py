"""Playlist-continuation metrics, computed from the ranks of each playlist's masked songs, and their chance levels.

Everything starts from `ranks`: `[P, n]` 0-based positions of each playlist's n masked (relevant) songs in that
playlist's ranking of its candidates by DESCENDING similarity (rank 0 = most similar). The SiamRec paper's
reference code sorted ascending, which ranks the least similar songs first; `ranks_of_relevant` is where that
is decided, and tests pin it.

Definitions (per playlist, then averaged over playlists):
- reward (paper Eq. 3 as intended): (1/n) Σ_masked 1/(⌊r/n⌋ + 1); the paper sums it over playlists, and we
  report it per 100 playlists (100 × the mean), so the maximum is 100.
- R-precision (RecSys Challenge 2018): |relevant in the top n| / n.
- NDCG (the challenge's evaluation code): DCG over the top RECSYS_LIST with 1/log2(position + 1), 1-based,
  divided by the ideal DCG of min(n, RECSYS_LIST) relevant songs ranked first.
- clicks (the challenge's "recommended songs clicks"): ⌊r_first / 10⌋, or CLICKS_MISS when no relevant song is
  in the top RECSYS_LIST.
- hit rate@k: 1 when a relevant song is in the top k; MRR: 1/(r_first + 1) over the whole ranking.

Chance levels are exact expectations under a uniformly random ranking of the same number of candidates with the
same number of relevant songs, computed from the distribution of ranks (no simulation).
"""

from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np

RECSYS_LIST = 500  # RecSys Challenge 2018: 500 recommendations per playlist
CLICKS_PAGE = 10  # the recommended-songs feature shows 10 tracks per click
CLICKS_MISS = 51  # clicks when no relevant track is in the 500
HIT_K = 10
# Comparison budget (elements) per chunk when ranking: keeps temporaries around 16 MB.
RANK_CHUNK_ELEMENTS = 1 << 24

METRICS = ("reward", "r_precision", "ndcg", "clicks", f"hit_rate@{HIT_K}", "mrr")
# Direction of each metric, for tables and plots.
LOWER_IS_BETTER = frozenset({"clicks"})


def ordered_keys(scores: np.ndarray) -> np.ndarray:
    """int64 keys that sort like (score descending, column ascending): one comparison ranks with ties broken.

    Scores are compared as float32 (the vectors' precision): the float's bits, made order-preserving for
    negatives, fill the high 32 bits and the reversed column index the low 32 bits, so no two keys are equal.
    """
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.int32)
    halves = np.empty((*bits.shape, 2), dtype=np.int32)  # little-endian int64 = (low half, high half)
    halves[..., 0] = np.arange(bits.shape[-1] - 1, -1, -1, dtype=np.int32)
    np.bitwise_xor(bits, (bits >> 31) & np.int32(0x7FFFFFFF), out=halves[..., 1])  # flips negatives' order
    keys = halves.view(np.int64)[..., 0]
    return keys if sys.byteorder == "little" else ((halves[..., 1].astype(np.int64) << 32) | halves[..., 0])


def ranks_of_relevant(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """0-based rank of each relevant column in its row's ranking by descending score.

    scores `[p, C]`, relevant `[p, n]` column indices → `[p, n]` int64. rank = number of candidates scoring
    higher + number scoring the same that sit in an earlier column: ties break by column order, so callers that
    shuffle the candidates break ties at random (a constant model then scores chance, not perfection).
    Candidates scored -inf (excluded) never outrank a finite score.
    """
    relevant = np.asarray(relevant, dtype=np.int64)
    n_rows, n_candidates = np.shape(scores)
    step = max(1, RANK_CHUNK_ELEMENTS // max(1, n_candidates))
    out = np.empty(relevant.shape, dtype=np.int64)
    for start in range(0, n_rows, step):
        keys = ordered_keys(scores[start : start + step])  # p x C
        targets = np.take_along_axis(keys, relevant[start : start + step], axis=1)  # p x n
        for j in range(relevant.shape[1]):  # n is small: one [p, C] comparison per masked position
            out[start : start + step, j] = np.count_nonzero(keys > targets[:, j : j + 1], axis=1)
    return out


def reward_per_playlist(ranks: np.ndarray) -> np.ndarray:
    """Paper Eq. 3's summand: (1/n) Σ 1/(⌊r/n⌋ + 1) for each playlist `[P]` (1 = its masked songs ranked first)."""
    n = ranks.shape[1]
    return (1.0 / (ranks // n + 1)).mean(axis=1)


def reward_score(ranks: np.ndarray) -> float:
    """Paper Eq. 3: the sum over playlists (maximum |P|; chance ≈ H_|P|)."""
    return float(reward_per_playlist(ranks).sum())


def _discount(ranks: np.ndarray) -> np.ndarray:
    """NDCG gain of a relevant song at a 0-based rank: 1/log2(rank + 2), 0 beyond the RECSYS_LIST."""
    ranks = np.asarray(ranks)
    return np.where(ranks < RECSYS_LIST, 1.0 / np.log2(ranks + 2.0), 0.0)


def ideal_dcg(n_relevant: int) -> float:
    return float(_discount(np.arange(min(n_relevant, RECSYS_LIST))).sum())


def clicks_from_first(first: np.ndarray) -> np.ndarray:
    """Recommended-songs clicks from the 0-based rank of the first relevant song."""
    first = np.asarray(first)
    return np.where(first < RECSYS_LIST, first // CLICKS_PAGE, CLICKS_MISS).astype(np.float64)


def playlist_metrics(ranks: np.ndarray, hit_k: int = HIT_K) -> dict[str, np.ndarray]:
    """Every metric for each playlist `[P]` from the masked songs' ranks `[P, n]` (reward scaled per 100)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    n = ranks.shape[1]
    first = ranks.min(axis=1)
    return {
        "reward": 100.0 * reward_per_playlist(ranks),
        "r_precision": np.count_nonzero(ranks < n, axis=1) / n,
        "ndcg": _discount(ranks).sum(axis=1) / ideal_dcg(n),
        "clicks": clicks_from_first(first),
        f"hit_rate@{hit_k}": (first < hit_k).astype(np.float64),
        "mrr": 1.0 / (first + 1.0),
    }


@lru_cache(maxsize=4)
def _log_factorials(upto: int) -> np.ndarray:
    """log(k!) for k = 0..upto (cached: every playlist of a bench shares it)."""
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, upto + 1, dtype=np.float64)))])


def first_rank_distribution(n_candidates: int, n_relevant: int) -> np.ndarray:
    """P(first relevant song at rank j), j = 0..C-1, for n relevant among C randomly ranked candidates.

    P(first ≥ j) = C(C-j, n) / C(C, n), in log-factorials so that C = 100k stays exact to float precision.
    """
    c, n = n_candidates, n_relevant
    log_fact = _log_factorials(c)
    free = np.arange(c, -1, -1)  # candidates at or after rank j = 0..C
    alive = free >= n
    log_survival = log_fact[free] - log_fact[np.where(alive, free - n, 0)] + (log_fact[c - n] - log_fact[c])
    survival = np.where(alive, np.exp(log_survival), 0.0)
    return survival[:-1] - survival[1:]


def chance_metrics(n_candidates: int, n_relevant: int, hit_k: int = HIT_K) -> dict[str, float]:
    """Exact expected value of every metric for one playlist under a uniformly random ranking.

    Each relevant song's rank is marginally uniform over 0..C-1 (so reward and NDCG are means over ranks); the
    first relevant rank follows `first_rank_distribution`.
    """
    return dict(_chance_metrics(int(n_candidates), int(n_relevant), int(hit_k)))


@lru_cache(maxsize=4096)
def _chance_metrics(c: int, n: int, hit_k: int) -> tuple[tuple[str, float], ...]:
    if not 1 <= n <= c:
        raise ValueError(f"need 1 <= relevant ({n}) <= candidates ({c})")
    ranks = np.arange(c)
    first = first_rank_distribution(c, n)
    levels = {
        "reward": 100.0 * float(np.mean(1.0 / (ranks // n + 1))),
        "r_precision": n / c,
        "ndcg": n * float(_discount(ranks).mean()) / ideal_dcg(n),
        "clicks": float(first @ clicks_from_first(ranks)),
        f"hit_rate@{hit_k}": float(first[:hit_k].sum()),
        "mrr": float(first @ (1.0 / (ranks + 1.0))),
    }
    return tuple(levels.items())


def chance_per_playlist(n_candidates: np.ndarray, n_relevant: int, hit_k: int = HIT_K) -> dict[str, np.ndarray]:
    """`chance_metrics` for each playlist `[P]`, computed once per distinct candidate count."""
    distinct, inverse = np.unique(np.asarray(n_candidates, dtype=np.int64), return_inverse=True)
    levels = [chance_metrics(int(c), n_relevant, hit_k) for c in distinct]
    return {name: np.array([level[name] for level in levels])[inverse] for name in levels[0]}


def harmonic(n: int) -> float:
    """H_n: the paper's reward at chance for n playlists with candidates = all masked songs."""
    return float(np.sum(1.0 / np.arange(1, n + 1)))
