"""`siamrec bench --feedback ROUNDS`: does a listener's feedback make the next recommendations better?

On each split of the masked protocol (siamrec.bench) a simulated listener looks at the first k recommendations of
every playlist, accepts the masked songs among them and rejects the others, round after round. Two listeners
page through the same draws:
- with feedback: accepted songs join the seeds, rejected ones are excluded and pull the query away from them
  (`mean`: siamrec.recommend.steer; `best-score`: Qdrant's best_score with negative examples);
- without feedback (`no_feedback`): the same first ranking, paged on (songs already shown are excluded, nothing
  else changes).
After each round both are scored on the masked songs that listener has not found yet (R = how many are left;
playlists with none left drop out of that round's mean), so what was accepted is never counted twice and the two
columns differ only by what the answers taught the ranker. `found` is the share of masked songs accepted so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siamrec.bench.measures import ranks_of_relevant
from siamrec.bench.protocol import SCORE_CHUNK_ELEMENTS, Split, Splits, fit_on_split, normalise_rows
from siamrec.bench.run import ADAPTED_SUFFIX
from siamrec.errors import ConfigError
from siamrec.recommend import steer
from siamrec.vectors import l2_normalise
from siamrec.whitening import TooFewPlaylistsError

MAX_ROUNDS = 20
MAX_K = 1000
FIGURES = ("r_precision", "reward", "found")
LISTENERS = (("feedback", True), ("no_feedback", False))


@dataclass
class Listener:
    """One listener's state over a split: positives (seeds + accepted) and negatives (rejected), -1 padded."""

    positives: np.ndarray  # P x (m + rounds·k)
    negatives: np.ndarray  # P x rounds·k
    found: np.ndarray  # P x n: masked songs accepted so far
    learns: bool  # False: answers only page the list on
    n_seeds: int  # the split's seed columns, first in `positives`
    answered: int = 0  # rounds answered so far

    @classmethod
    def start(cls, split: Split, rounds: int, k: int, learns: bool) -> Listener:
        n_rows = len(split.masked)
        room = np.full((n_rows, rounds * k), -1, dtype=np.int64)
        positives = np.concatenate([split.seeds, room], axis=1)
        return cls(positives, room.copy(), np.zeros(split.masked.shape, bool), learns, split.seeds.shape[1])


def check_feedback(rounds: int, k: int) -> None:
    if not 1 <= rounds <= MAX_ROUNDS:
        raise ConfigError(f"--feedback {rounds}: run from 1 to {MAX_ROUNDS} rounds")
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"--feedback-k {k}: the listener looks at 1 to {MAX_K} recommendations")


def _centroids(unit: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Unit centroid of each playlist's rows `[p, w]` (-1 padded) → `[p, D]`; a playlist without rows gets 0."""
    valid = rows >= 0
    return l2_normalise((unit[np.where(valid, rows, 0)] * valid[:, :, None]).sum(axis=1))


def _best(unit: np.ndarray, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Best cosine of each candidate to any of a playlist's rows `[p, C]` (-inf where a playlist has none)."""
    valid = rows >= 0
    scores = (unit[np.where(valid, rows, 0)] @ candidates.T).reshape(*rows.shape, -1)
    scores[~valid] = -np.inf
    return scores.max(axis=1) if rows.shape[1] else np.full((len(rows), len(candidates)), -np.inf, np.float32)


def _scores(unit: np.ndarray, listener: Listener, block: slice, candidates: np.ndarray, strategy: str) -> np.ndarray:
    """The ranking scores `[p, C]` of one block of playlists, as the store's query would rank them."""
    if not listener.learns:  # the first ranking, from the seeds alone
        seeds = listener.positives[block, : listener.n_seeds]
        return _centroids(unit, seeds) @ candidates.T if strategy == "mean" else _best(unit, seeds, candidates)
    positives, negatives = listener.positives[block], listener.negatives[block]
    if strategy == "mean":
        return steer(_centroids(unit, positives), _centroids(unit, negatives)) @ candidates.T
    best_positive = _best(unit, positives, candidates)
    best_negative = _best(unit, negatives, candidates)
    # Qdrant's best_score: sigmoid(best positive) where it beats the best negative, else -sigmoid(best negative);
    # only the order matters here, so the same order in plain cosines: every "positive wins" above every other.
    return np.where(best_positive > best_negative, 2.0 + best_positive, -best_negative)


def _excluded(split: Split, listener: Listener) -> np.ndarray:
    """Rows never ranked for each playlist `[P, W]`: its non-masked members, and every song shown so far."""
    is_masked = (split.members[:, :, None] == split.masked[:, None, :]).any(axis=2)
    known = np.where(is_masked, -1, split.members)
    shown = listener.positives[:, listener.n_seeds :]
    return np.concatenate([known, shown, listener.negatives], axis=1)


def _round(unit: np.ndarray, split: Split, listener: Listener, strategy: str, k: int | None) -> dict[str, float]:
    """Score one listener's current ranking on the masked songs it has not found; then, when `k`, let it answer
    the first k. Returns the round's figures (means over playlists with songs left)."""
    position = np.full(len(unit), -1, dtype=np.int64)
    position[split.candidates] = np.arange(len(split.candidates))
    candidates = unit[split.candidates]
    never = _excluded(split, listener)
    excluded = np.where(never >= 0, position[np.maximum(never, 0)], -1)
    relevant = position[split.masked]
    width = listener.positives.shape[1] + listener.negatives.shape[1] if strategy == "best-score" else 1
    step = max(1, SCORE_CHUNK_ELEMENTS // max(1, width * len(split.candidates)))
    ranks = np.empty(split.masked.shape, dtype=np.int64)
    answers = []
    for start in range(0, len(split.masked), step):
        block = slice(start, start + step)
        scores = _scores(unit, listener, block, candidates, strategy).astype(np.float32)
        rows, cols = np.nonzero(excluded[block] >= 0)
        scores[rows, excluded[block][rows, cols]] = -np.inf
        ranks[block] = ranks_of_relevant(scores, relevant[block])
        if k is not None:
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            shown = np.take_along_axis(scores, top, axis=1) > -np.inf
            answers.append(np.where(shown, split.candidates[top], -1))
    left = ~listener.found
    n_left = left.sum(axis=1)
    alive = n_left > 0
    hits = (left & (ranks < n_left[:, None])).sum(axis=1)
    gains = np.where(left, 1.0 / (ranks // np.maximum(n_left, 1)[:, None] + 1), 0.0).sum(axis=1)
    figures = {
        "r_precision": float((hits[alive] / n_left[alive]).mean()) if alive.any() else 1.0,
        "reward": float((100.0 * gains[alive] / n_left[alive]).mean()) if alive.any() else 100.0,
        "found": float(listener.found.mean()),
    }
    if k is not None:
        _answer(split, listener, np.concatenate(answers))
    return figures


def _answer(split: Split, listener: Listener, shown: np.ndarray) -> None:
    """The listener accepts the shown songs `[P, k]` that are masked for the playlist and rejects the rest; each
    round's answers fill the next k columns of the positives (after the seeds) and of the negatives."""
    hit = (shown[:, :, None] == split.masked[:, None, :]) & (shown[:, :, None] >= 0)
    accepted = hit.any(axis=2)
    listener.found |= hit.any(axis=1)
    k = shown.shape[1]
    start = listener.answered * k
    seeds = listener.n_seeds
    listener.positives[:, seeds + start : seeds + start + k] = np.where(accepted, shown, -1)
    listener.negatives[:, start : start + k] = np.where(~accepted & (shown >= 0), shown, -1)
    listener.answered += 1


def feedback_method(
    vectors: np.ndarray, splits: Splits, strategy: str, rounds: int, k: int, adapted: bool = False
) -> dict[str, np.ndarray]:
    """For each listener (`feedback`, `no_feedback`) and figure: its value per draw and round `[draws, rounds + 1]`.

    `adapted`: each draw ranks with the whitening fitted on its seeds (as siamrec.bench.score_method does).
    """
    check_feedback(rounds, k)
    unit = normalise_rows(vectors)
    out: dict[str, list[list[float]]] = {}
    for split in splits.draws:
        view = fit_on_split(unit, split).apply(unit) if adapted else unit
        for name, learns in LISTENERS:
            listener = Listener.start(split, rounds, k, learns)
            per_round = [_round(view, split, listener, strategy, k if r < rounds else None) for r in range(rounds + 1)]
            for figure in FIGURES:
                out.setdefault(f"{name}:{figure}", []).append([found[figure] for found in per_round])
    return {key: np.array(values) for key, values in out.items()}


def summarise_rounds(per_draw: dict[str, np.ndarray]) -> dict[str, list[tuple[float, float]]]:
    """listener:figure → (mean, std over draws) per round; std 0 for one draw."""
    return {
        key: [(float(column.mean()), float(column.std(ddof=1)) if len(column) > 1 else 0.0) for column in values.T]
        for key, values in per_draw.items()
    }


def score_feedback(
    methods: dict[str, np.ndarray], splits: Splits, strategy: str, metric: str, rounds: int, k: int, notes: list[str]
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Every method (plain and/or adapted, as `metric` asks) through the rounds, on the same draws."""
    scored = {}
    for name, vectors in methods.items():
        if metric in ("plain", "both"):
            scored[name] = summarise_rounds(feedback_method(vectors, splits, strategy, rounds, k))
        if metric in ("adapted", "both"):
            try:
                per_draw = feedback_method(vectors, splits, strategy, rounds, k, adapted=True)
            except TooFewPlaylistsError as exc:
                notes.append(f"{name}: no adapted feedback rounds for {splits.max_seeds}/{splits.n_masked} ({exc})")
                continue
            scored[name + ADAPTED_SUFFIX] = summarise_rounds(per_draw)
    return scored
