"""Small vector and batching helpers every layer shares (one implementation each)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

import numpy as np

T = TypeVar("T")
# How a track's window embeddings become one vector: their mean, or their mean beside their spread (std).
POOLINGS = ("mean", "mean+std")
# The weight of the spread beside the mean in `mean+std`: outside this range one block would swamp the other.
MIN_SPREAD_WEIGHT, MAX_SPREAD_WEIGHT = 0.05, 20.0


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to unit length, as float32; an all-zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items (Python 3.12's itertools.batched, as lists)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, max(1, size))):
        yield chunk


def _track_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per track, the mean of its consecutive rows (`counts[i]` rows each); a track's NaN/inf stays in its row."""
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    with np.errstate(all="ignore"):
        return np.add.reduceat(values, offsets, axis=0) / counts[:, None]


def window_moments(embeddings: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per track, the mean and the std over its consecutive window embeddings (`counts[i]` rows each), float64."""
    counts = np.asarray(counts, dtype=np.int64)
    values = np.asarray(embeddings, dtype=np.float64)
    means, squares = _track_means(values, counts), _track_means(values**2, counts)
    with np.errstate(all="ignore"):
        return means, np.sqrt(np.maximum(squares - means**2, 0.0))


def pool_windows(
    embeddings: np.ndarray,
    counts: np.ndarray,
    pooling: str = "mean",
    spread_mean: np.ndarray | None = None,
    spread_scale: np.ndarray | None = None,
    spread_weight: float = 1.0,
) -> np.ndarray:
    """Track vectors from consecutive window embeddings `[sum(counts), D]` (`counts[i]` rows per track).

    `mean`: the L2-normalised mean `[T, D]`. `mean+std`: [unit mean | w · unit spread] / √(1 + w²) `[T, 2D]`,
    where the spread is each dimension's std over the track's windows (how the track changes over time), centred
    and scaled by what training tracks showed (`spread_mean`, `spread_scale`), so that cosine compares how a
    track varies, not how much every track varies; w (`spread_weight`) is how much that counts beside what the
    track sounds like on average. A track's NaN stays in its own row.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}")
    if pooling == "mean+std" and (spread_mean is None or spread_scale is None):
        raise ValueError("mean+std pooling needs the training tracks' spread_mean and spread_scale")
    if pooling == "mean":  # the mean alone: no squares on the add-track path of a mean-pooled model
        return l2_normalise(_track_means(np.asarray(embeddings, dtype=np.float64), np.asarray(counts, np.int64)))
    means, spread = window_moments(embeddings, counts)
    with np.errstate(all="ignore"):
        spread = (spread - spread_mean) * spread_scale
    return l2_normalise(np.concatenate([l2_normalise(means), spread_weight * l2_normalise(spread)], axis=1))
