"""The playlist-adapted metric: within-playlist whitening fitted on playlists' tracks.

Tracks of one playlist differ along directions that playlists do not care about (loudness, a melody's key, a
crop's content); the pooled within-playlist covariance measures those directions. Multiplying every vector by
the inverse square root of that covariance (shrunk toward a multiple of the identity, since a store holds
far fewer playlist tracks than the covariance has entries) flattens them, so cosine similarity then weighs
what separates playlists. Pure numpy: the same map serves the store, `recommend` and `bench`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from siamrec.errors import SiamrecError
from siamrec.vectors import l2_normalise

ADAPT_VERSION = 1
# Below these a within-playlist covariance is mostly noise: keep the plain metric.
MIN_PLAYLISTS = 3  # playlists with at least two tracks
MIN_TRACKS = 12  # tracks in those playlists
EIGEN_FLOOR = 1e-9  # relative to the largest eigenvalue: guards the inverse square root


class TooFewPlaylistsError(SiamrecError):
    """Not enough playlist tracks to estimate a within-playlist covariance; the plain metric stays."""


@dataclass(frozen=True)
class Whitening:
    """x → (x − mean) · transform, then L2-normalised: the adapted vector."""

    mean: np.ndarray  # D
    transform: np.ndarray  # D x D, symmetric
    shrinkage: float
    playlists: int
    tracks: int
    version: int = ADAPT_VERSION

    @property
    def dim(self) -> int:
        return len(self.mean)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Adapted, L2-normalised vectors `[N, D]` (cosine on them is the adapted metric)."""
        vectors = np.asarray(vectors, dtype=np.float64)
        if vectors.shape[-1] != self.dim:
            raise SiamrecError(f"the adaptation was fitted on {self.dim}-d vectors, not {vectors.shape[-1]}-d")
        return l2_normalise((vectors - self.mean) @ self.transform)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists of floats) for storing beside the collection."""
        return {
            "version": self.version,
            "mean": self.mean.tolist(),
            "transform": self.transform.tolist(),
            "shrinkage": self.shrinkage,
            "playlists": self.playlists,
            "tracks": self.tracks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Whitening:
        if data.get("version") != ADAPT_VERSION:
            raise SiamrecError(f"stored adaptation version {data.get('version')} is not {ADAPT_VERSION}: re-run adapt")
        return cls(
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["transform"], dtype=np.float64),
            float(data["shrinkage"]),
            int(data["playlists"]),
            int(data["tracks"]),
        )


def ledoit_wolf_shrinkage(residuals: np.ndarray) -> float:
    """Ledoit & Wolf (2004)'s shrinkage toward μ·I for centred rows `[n, D]` (sklearn's formula)."""
    n, dim = residuals.shape
    covariance = residuals.T @ residuals / n
    mu = np.trace(covariance) / dim
    delta = ((covariance - mu * np.eye(dim)) ** 2).sum() / dim
    squares = residuals**2
    beta = ((squares.T @ squares).sum() / n - (covariance**2).sum()) / (dim * n)
    return float(min(beta, delta) / delta) if delta > 0 else 1.0


def within_residuals(vectors: np.ndarray, groups: Sequence[np.ndarray]) -> tuple[np.ndarray, int, int]:
    """Each group's rows minus the group mean (groups with under two rows give none); playlists, tracks used."""
    parts, used, tracks = [], 0, set()
    for rows in groups:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        rows = rows[rows >= 0]
        if len(rows) < 2:
            continue
        block = vectors[rows]
        parts.append(block - block.mean(axis=0))
        used += 1
        tracks.update(rows.tolist())
    dim = vectors.shape[1]
    return (np.concatenate(parts) if parts else np.zeros((0, dim))), used, len(tracks)


def fit_whitening(vectors: np.ndarray, groups: Sequence[np.ndarray], shrinkage: float | None = None) -> Whitening:
    """Fit on the rows of `vectors` that `groups` (playlists as row indices) name, and only those.

    `shrinkage` in [0, 1]: weight of the identity target; None estimates it (Ledoit-Wolf). The vectors are
    L2-normalised first, as cosine sees them.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    residuals, playlists, tracks = within_residuals(vectors, groups)
    if playlists < MIN_PLAYLISTS or tracks < MIN_TRACKS:
        raise TooFewPlaylistsError(
            f"adapting needs at least {MIN_PLAYLISTS} playlists with two or more tracks and {MIN_TRACKS} such "
            f"tracks; there are {playlists} and {tracks}: the plain metric stays"
        )
    rows = np.unique(np.concatenate([np.asarray(g, dtype=np.int64) for g in groups]))
    mean = vectors[rows[rows >= 0]].mean(axis=0)
    alpha = ledoit_wolf_shrinkage(residuals) if shrinkage is None else float(shrinkage)
    dof = max(1, len(residuals) - playlists)
    covariance = residuals.T @ residuals / dof
    target = np.trace(covariance) / covariance.shape[0]
    shrunk = (1.0 - alpha) * covariance + alpha * target * np.eye(covariance.shape[0])
    values, basis = np.linalg.eigh(shrunk)
    values = np.maximum(values, EIGEN_FLOOR * values.max())
    transform = (basis / np.sqrt(values)) @ basis.T
    return Whitening(mean, transform, alpha, playlists, tracks)
