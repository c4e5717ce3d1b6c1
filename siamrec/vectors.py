"""Small vector and batching helpers every layer shares (one implementation each)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

import numpy as np

T = TypeVar("T")


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
