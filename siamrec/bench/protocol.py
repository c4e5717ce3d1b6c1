"""The masked-playlist protocol of the SiamRec paper, scored right, with vectorised numpy.

A split masks n songs of each playlist at random and keeps up to m of the others as seeds (the query). The
playlist's query is built from its seeds' vectors (`mean`: cosine to the seeds' mean; `best-score`: the best
cosine to any seed, which is Qdrant's RecommendStrategy.BEST_SCORE with positive examples only), and every
candidate is ranked by it. Candidates are all masked songs of all playlists (the paper) or every track
(`library`, the realistic case); a playlist's own non-masked tracks are never its candidates. Splits are drawn
from the playlists alone, so every method is scored on the same splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from siamrec.bench.measures import METRICS, chance_per_playlist, playlist_metrics, ranks_of_relevant
from siamrec.constants import STRATEGIES
from siamrec.errors import ConfigError, SiamrecError
from siamrec.vectors import l2_normalise
from siamrec.whitening import Whitening, fit_whitening

CANDIDATE_SETS = ("masked", "library")
MIN_SEEDS = 1
# Similarity budget (elements) per chunk of playlists: best-score holds [p, m, C] scores at once.
SCORE_CHUNK_ELEMENTS = 1 << 24
MAX_DRAWS = 1000  # random splits per setting: beyond this the std no longer moves, only the run time does
MAX_MASK = 100_000  # seeds or masked songs per playlist: far beyond any real playlist (MPD's longest: 250)


@dataclass(frozen=True)
class Split:
    """One random split of the eligible playlists (row indices into the vectors; -1 pads)."""

    masked: np.ndarray  # P x n: the songs to find
    seeds: np.ndarray  # P x m: the query songs, -1 where a playlist has fewer than m others
    members: np.ndarray  # P x L: every song of the playlist (its non-masked ones are not candidates)
    candidates: np.ndarray  # C: rows ranked for every playlist, in random order so that ties break at random


@dataclass(frozen=True)
class Splits:
    """The splits of one protocol setting, shared by every method."""

    n_masked: int
    max_seeds: int
    used: np.ndarray  # indices of the playlists used
    skipped: int  # playlists too short for n masked + MIN_SEEDS seeds
    draws: list[Split]


def pad_playlists(playlists: Sequence[np.ndarray]) -> np.ndarray:
    """Playlists (row indices, duplicates allowed) → `[P, L]` distinct rows per playlist, -1 padded."""
    lengths = np.array([len(p) for p in playlists], dtype=np.int64)
    rows = np.repeat(np.arange(len(playlists)), lengths)
    flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in playlists]) if len(rows) else rows
    order = np.lexsort((flat, rows))
    rows, flat = rows[order], flat[order]
    keep = np.ones(len(flat), dtype=bool)
    keep[1:] = (rows[1:] != rows[:-1]) | (flat[1:] != flat[:-1])
    rows, flat = rows[keep], flat[keep]
    counts = np.bincount(rows, minlength=len(playlists))
    columns = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    padded = np.full((len(playlists), max(1, int(counts.max(initial=0)))), -1, dtype=np.int64)
    padded[rows, columns] = flat
    return padded


def make_splits(
    playlists: Sequence[np.ndarray],
    n_tracks: int,
    n_masked: int,
    max_seeds: int,
    seeds: int,
    candidates: str = "masked",
    rng_seed: int = 0,
) -> Splits:
    """`seeds` random splits: n songs masked per playlist, up to m of the rest kept as seeds."""
    check_setting(n_masked, max_seeds, seeds, candidates)
    members = pad_playlists(playlists)
    lengths = np.count_nonzero(members >= 0, axis=1)
    used = np.flatnonzero(lengths >= n_masked + MIN_SEEDS)
    members = members[used]
    max_seeds = min(max_seeds, members.shape[1])  # seeds beyond the longest playlist would be padding only
    rng = np.random.default_rng(rng_seed)
    draws = [_draw(members, n_tracks, n_masked, max_seeds, candidates, rng) for _ in range(seeds if len(used) else 0)]
    return Splits(n_masked, max_seeds, used, len(playlists) - len(used), draws)


def check_setting(n_masked: int, max_seeds: int, seeds: int, candidates: str) -> None:
    if n_masked < 1:
        raise ConfigError(f"mask at least one song per playlist (got {n_masked})")
    if max_seeds < MIN_SEEDS:
        raise ConfigError(f"keep at least {MIN_SEEDS} seed song per playlist (got {max_seeds})")
    if seeds < 1 or seeds > MAX_DRAWS:
        raise ConfigError(f"run from 1 to {MAX_DRAWS} random splits (got {seeds})")
    if n_masked > MAX_MASK or max_seeds > MAX_MASK:
        raise ConfigError(f"--mask {max_seeds}/{n_masked}: at most {MAX_MASK} seeds or masked songs per playlist")
    if candidates not in CANDIDATE_SETS:
        raise ConfigError(f"unknown candidate set {candidates!r}: choose {' or '.join(CANDIDATE_SETS)}")


def _draw(members: np.ndarray, n_tracks: int, n_masked: int, max_seeds: int, candidates: str,
          rng: np.random.Generator) -> Split:  # fmt: skip
    """Shuffle each playlist (padding sorts last), mask the first n, keep the next m as seeds."""
    keys = np.where(members >= 0, rng.random(members.shape), 2.0)
    shuffled = np.take_along_axis(members, np.argsort(keys, axis=1), axis=1)
    if shuffled.shape[1] < n_masked + max_seeds:
        shuffled = np.pad(shuffled, ((0, 0), (0, n_masked + max_seeds - shuffled.shape[1])), constant_values=-1)
    masked = shuffled[:, :n_masked]
    pool = np.unique(masked) if candidates == "masked" else np.arange(n_tracks)
    return Split(masked, shuffled[:, n_masked : n_masked + max_seeds], members, rng.permutation(pool))


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity is a dot product of L2-normalised rows (Qdrant's cosine distance does the same)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise SiamrecError("the vectors hold NaN or infinite values: the model or features are broken")
    return l2_normalise(vectors)


def _query_scores(unit: np.ndarray, seeds: np.ndarray, candidate_vectors: np.ndarray, strategy: str) -> np.ndarray:
    """Similarity of every candidate to each playlist's seeds `[p, C]`."""
    valid = seeds >= 0
    seed_vectors = unit[np.where(valid, seeds, 0)] * valid[:, :, None]  # p x m x D
    if strategy == "mean":
        return seed_vectors.sum(axis=1) @ candidate_vectors.T  # the mean's direction: same ranking as its cosine
    if strategy == "best-score":
        flat = seed_vectors.reshape(-1, seed_vectors.shape[-1]) @ candidate_vectors.T  # one BLAS call, not p
        scores = flat.reshape(*seeds.shape, -1)  # p x m x C
        scores[~valid] = -np.inf
        return scores.max(axis=1)
    raise ConfigError(f"unknown strategy {strategy!r}: choose {' or '.join(STRATEGIES)}")


def score_split(unit: np.ndarray, split: Split, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of the masked songs `[P, n]` and each playlist's number of candidates `[P]`."""
    n_rows, n_masked = split.masked.shape
    position = np.full(len(unit), -1, dtype=np.int64)
    position[split.candidates] = np.arange(len(split.candidates))
    candidate_vectors = unit[split.candidates]
    # Non-masked members (seeds and the rest) are known to be in the playlist: excluded from its candidates.
    is_masked = (split.members[:, :, None] == split.masked[:, None, :]).any(axis=2)
    excluded = np.where((split.members >= 0) & ~is_masked, position[split.members], -1)
    n_candidates = len(split.candidates) - np.count_nonzero(excluded >= 0, axis=1)
    relevant = position[split.masked]
    width = split.seeds.shape[1] if strategy == "best-score" else 1
    step = max(1, SCORE_CHUNK_ELEMENTS // max(1, width * len(split.candidates)))
    ranks = np.empty((n_rows, n_masked), dtype=np.int64)
    for start in range(0, n_rows, step):
        block = slice(start, start + step)
        scores = _query_scores(unit, split.seeds[block], candidate_vectors, strategy)
        rows, cols = np.nonzero(excluded[block] >= 0)
        scores[rows, excluded[block][rows, cols]] = -np.inf
        ranks[block] = ranks_of_relevant(scores, relevant[block])
    return ranks, n_candidates


def seed_groups(split: Split) -> list[np.ndarray]:
    """Each playlist's seed rows, less any song masked anywhere in the split: all that an adapted metric sees."""
    masked = np.unique(split.masked[split.masked >= 0])
    return [row[(row >= 0) & ~np.isin(row, masked)] for row in split.seeds]


def fit_on_split(unit: np.ndarray, split: Split) -> Whitening:
    """The within-playlist whitening of one split, fitted on its seed tracks only (never a masked song)."""
    return fit_whitening(unit, seed_groups(split))


def score_method(
    vectors: np.ndarray, splits: Splits, strategy: str = "mean", adapted: bool = False
) -> dict[str, np.ndarray]:
    """Every metric (mean over playlists) for each draw `[seeds]`, and its exact chance level.

    `adapted`: each draw ranks with a whitening fitted on that draw's seeds (TooFewPlaylistsError if it can't).
    """
    unit = normalise_rows(vectors)
    per_draw: dict[str, list[float]] = {}
    for split in splits.draws:
        view = fit_on_split(unit, split).apply(unit) if adapted else unit
        ranks, n_candidates = score_split(view, split, strategy)
        found = playlist_metrics(ranks)
        chance = chance_per_playlist(n_candidates, splits.n_masked)
        for name in METRICS:
            per_draw.setdefault(name, []).append(float(found[name].mean()))
            per_draw.setdefault(f"{name}_chance", []).append(float(chance[name].mean()))
    return {name: np.array(values) for name, values in per_draw.items()}


def summarise(per_draw: dict[str, np.ndarray], splits: Splits) -> dict[str, tuple[float, float]]:
    """name → (mean, std over draws; sample std, 0 for one draw), plus the playlists used and skipped."""
    summary = {
        name: (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
        for name, values in per_draw.items()
    }
    summary["playlists_used"] = (float(len(splits.used)), 0.0)
    summary["playlists_skipped"] = (float(splits.skipped), 0.0)
    return summary


def require_playlists(splits: Splits, label: str) -> None:
    """A split no playlist is long enough for is an input error, not a row of zeros."""
    if len(splits.used) == 0:
        raise ConfigError(
            f"--mask {label}: no playlist has the {splits.n_masked + MIN_SEEDS} tracks it needs "
            f"({splits.n_masked} masked + {MIN_SEEDS} seed); mask fewer songs"
        )


def evaluate_vectors(
    vectors: np.ndarray,
    playlists: list[np.ndarray],
    n_masked: int = 5,
    max_seeds: int = 10,
    seeds: int = 10,
    strategy: str = "mean",
    rng_seed: int = 0,
    candidates: str = "masked",
    adapted: bool = False,
) -> dict[str, tuple[float, float]]:
    """The protocol on in-memory vectors `[N, D]` and playlists (row indices): metric → (mean, std over seeds).

    Keys: METRICS (reward per 100 playlists), each with a `_chance` twin (its exact chance level for the same
    splits), and playlists_used / playlists_skipped. `adapted`: the metric fitted on each split's seeds.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}: choose {' or '.join(STRATEGIES)}")
    splits = make_splits(playlists, len(vectors), n_masked, max_seeds, seeds, candidates, rng_seed)
    require_playlists(splits, f"{max_seeds}/{n_masked}")
    return summarise(score_method(vectors, splits, strategy, adapted), splits)
