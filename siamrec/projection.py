"""The projection a model ships: pooled track vectors → the space its training playlists taught (issue 22).

A within-playlist whitening fitted on the training corpus's playlists (`siamrec.whitening`) is a linear map;
stored in the model's metadata it applies to every track vector, so the plain metric already weighs what
separates playlists for a user with none of their own, and `adapt` starts from it. When the whitening keeps
only the directions the playlists' centroids differ along, the stored matrix has that many columns and the
track vector shrinks to that size (cosine similarity is the same in those coordinates).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import numpy as np

from siamrec.errors import ModelError
from siamrec.vectors import l2_normalise
from siamrec.whitening import Whitening

FORMAT = 1


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: object, size: int, what: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ModelError(f"the model's projection has no {what}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as error:
        raise ModelError(f"the model's projection {what} is not base64: {error}") from None
    if len(raw) != 4 * size:
        raise ModelError(f"the model's projection {what} holds {len(raw) // 4} numbers, not {size}")
    array = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(array).all():
        raise ModelError(f"the model's projection {what} holds NaN or infinite values")
    return array


@dataclass(frozen=True)
class Projection:
    """pooled → L2-normalised (pooled − mean) · matrix: the track vector the store holds."""

    mean: np.ndarray  # pooled dim
    matrix: np.ndarray  # pooled dim × track dim

    @property
    def pooled_dim(self) -> int:
        return self.matrix.shape[0]

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def apply(self, pooled: np.ndarray) -> np.ndarray:
        return l2_normalise((np.asarray(pooled, np.float32) - self.mean) @ self.matrix).astype(np.float32)

    @classmethod
    def from_whitening(cls, whitening: Whitening) -> Projection:
        """The whitening's map with as many columns as it has rank: a projected whitening (rank k) becomes k
        coordinates; the dropped right factor is orthonormal, so cosine similarity does not change."""
        transform = np.asarray(whitening.transform, np.float64)
        if whitening.projected:
            left, values, _ = np.linalg.svd(transform, full_matrices=False)
            transform = left[:, : whitening.projected] * values[: whitening.projected]
        scale = np.abs(transform).max()  # unit-scale numbers: float32 keeps them exact enough
        return cls(whitening.mean.astype(np.float32), (transform / scale).astype(np.float32))

    def to_metadata(self) -> str:
        return json.dumps(
            {"format": FORMAT, "shape": list(self.matrix.shape), "mean": _encode(self.mean),
             "matrix": _encode(self.matrix)}  # fmt: skip
        )

    @classmethod
    def from_metadata(cls, text: str) -> Projection:
        """Parsed and checked (shape, finite numbers); anything else is a ModelError."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelError(f"the model's projection is not JSON: {error.msg}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"the model's projection is not format {FORMAT}: update siamrec")
        shape = data.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(type(n) is int and n > 0 for n in shape)):
            raise ModelError("the model's projection has no valid shape")
        mean = _decode(data.get("mean"), shape[0], "mean")
        matrix = _decode(data.get("matrix"), shape[0] * shape[1], "matrix").reshape(shape)
        return cls(mean, matrix)
