"""The playlist-adapted metric: within-playlist whitening fitted on playlists' tracks.

Tracks of one playlist differ along directions that playlists do not care about (loudness, a melody's key, a
crop's content); the pooled within-playlist covariance measures those directions. Multiplying every vector by
the inverse square root of that covariance (shrunk toward a multiple of the identity, since a store holds
far fewer playlist tracks than the covariance has entries) flattens them, so cosine similarity then weighs
what separates playlists. When a store holds fewer playlists than the vector has dimensions, the map can also
keep only the directions in which the playlists' whitened centroids differ (a linear discriminant projection).

How much to shrink, and whether to project, is chosen by cross-validation on the playlists themselves: tracks
held out of each playlist must rank first for that playlist, among all held-out tracks. Nothing else is read,
so in `bench` (fitted on each split's seed tracks) no masked song reaches the choice. Pure numpy: the same
map serves the store, `recommend` and `bench`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from siamrec.errors import SiamrecError
from siamrec.vectors import l2_normalise

ADAPT_VERSION = 2  # 2: shrinkage chosen by cross-validation, optional projection; 1 still reads
READABLE_VERSIONS = (1, 2)
# Below these a within-playlist covariance is mostly noise: keep the plain metric.
MIN_PLAYLISTS = 3  # playlists with at least two tracks
MIN_TRACKS = 12  # tracks in those playlists
EIGEN_FLOOR = 1e-9  # relative to the largest eigenvalue: guards the inverse square root
SPAN_FLOOR = 1e-6  # relative singular value under which centroids do not differ along a direction
GRAM_FLOOR = 1e-10  # relative: smaller eigenvalues of the residuals' Gram matrix count as 0 (below EIGEN_FLOOR)
# The shrinkage and the projection are chosen by how well playlists find their own held-out tracks.
SHRINKAGE_GRID = (0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 0.9, 0.95, 0.99)
CV_FOLDS = 3
CV_MIN_TRACKS = 3  # a playlist lends held-out tracks to the choice from this many tracks
CV_TRACKS = 10_000  # the choice is made on whole playlists up to this many tracks (memory and time bound)


class TooFewPlaylistsError(SiamrecError):
    """Not enough playlist tracks to estimate a within-playlist covariance; the plain metric stays."""


@dataclass(frozen=True)
class Whitening:
    """x → (x − mean) · transform, then L2-normalised: the adapted vector.

    `transform` (D×D) whitens the within-playlist covariance (shrunk by `shrinkage`) and, when `projected`
    is above 0, keeps only the `projected` directions in which the fitted playlists' centroids differ.
    """

    mean: np.ndarray  # D
    transform: np.ndarray  # D x D
    shrinkage: float
    playlists: int
    tracks: int
    version: int = ADAPT_VERSION
    projected: int = 0  # rank of the centroid projection, 0 when none
    chosen_by: str = "given"  # how the shrinkage and projection were chosen: cross-validation, ledoit-wolf, given

    @property
    def dim(self) -> int:
        return len(self.mean)

    def apply(self, vectors: np.ndarray, single: bool = False) -> np.ndarray:
        """Adapted, L2-normalised vectors `[N, D]` (cosine on them is the adapted metric). `single`: in float32,
        a third of the product's cost, where the result is stored as float16 anyway (the store's adapted twins)."""
        mean, transform = self._single if single else (self.mean, self.transform)
        vectors = np.asarray(vectors, dtype=transform.dtype)
        if vectors.shape[-1] != self.dim:
            raise SiamrecError(f"the adaptation was fitted on {self.dim}-d vectors, not {vectors.shape[-1]}-d")
        return l2_normalise((vectors - mean) @ transform)

    @cached_property
    def _single(self) -> tuple[np.ndarray, np.ndarray]:
        """The map in float32, converted once (a store applies it to every chunk it writes)."""
        return self.mean.astype(np.float32), self.transform.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists of floats) for storing beside the collection."""
        return {
            "version": self.version,
            "mean": self.mean.tolist(),
            "transform": self.transform.tolist(),
            "shrinkage": self.shrinkage,
            "playlists": self.playlists,
            "tracks": self.tracks,
            "projected": self.projected,
            "chosen_by": self.chosen_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Whitening:
        if data.get("version") not in READABLE_VERSIONS:
            raise SiamrecError(f"stored adaptation version {data.get('version')} is not {ADAPT_VERSION}: re-run adapt")
        return cls(
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["transform"], dtype=np.float64),
            float(data["shrinkage"]),
            int(data["playlists"]),
            int(data["tracks"]),
            int(data["version"]),
            int(data.get("projected", 0)),
            str(data.get("chosen_by", "given")),
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
    """Each group's rows minus the group mean (groups with under two rows give none); playlists, tracks used.

    Written into one array made up front: a store's 50k playlist tracks are 0.5 GB of float64, and every fresh
    array that size costs the process its page faults again."""
    kept = []
    for rows in groups:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        rows = rows[rows >= 0]
        if len(rows) >= 2:
            kept.append(rows)
    residuals = np.empty((sum(len(rows) for rows in kept), vectors.shape[1]), dtype=np.result_type(vectors, 0.0))
    start = 0
    for rows in kept:
        block = vectors[rows]
        np.subtract(block, block.mean(axis=0), out=residuals[start : start + len(rows)])
        start += len(rows)
    return residuals, len(kept), len(np.unique(np.concatenate(kept))) if kept else 0


def _clean(groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    cleaned = [np.unique(np.asarray(g, dtype=np.int64)) for g in groups]
    return [g[g >= 0] for g in cleaned]


@dataclass(frozen=True)
class _Spectrum:
    """The pooled within-playlist covariance as its non-zero eigenpairs; every other direction has eigenvalue 0.

    A store's (or a bench split's) playlists hold a few hundred tracks while vectors have over a thousand
    dimensions, so the covariance has low rank: its eigenpairs come from the residuals' own span (an n×n
    problem) instead of a D×D eigendecomposition. The whitening it gives is the full-rank one up to a rotation,
    which cosine similarity cannot see.
    """

    values: np.ndarray  # r eigenvalues
    basis: np.ndarray  # D x r, orthonormal columns
    dim: int  # D: the other D − r eigenvalues are 0

    @classmethod
    def of(cls, residuals: np.ndarray, playlists: int) -> _Spectrum:
        dof = max(1, len(residuals) - playlists)
        squares, basis = _row_space(residuals, GRAM_FLOOR)
        return cls(squares / dof, basis, residuals.shape[1])

    def scales(self, shrinkage: float) -> tuple[np.ndarray, float]:
        """1/√ of the eigenvalues shrunk toward their mean (the identity target): along `basis`, and elsewhere."""
        mean = float(self.values.sum()) / self.dim
        shrunk = (1.0 - shrinkage) * self.values + shrinkage * mean
        rest = shrinkage * mean  # every eigenvalue outside the basis is 0 before shrinking
        largest = max(float(shrunk.max(initial=0.0)), rest if self.dim > len(self.values) else 0.0)
        floor = EIGEN_FLOOR * max(largest, EIGEN_FLOOR)
        return 1.0 / np.sqrt(np.maximum(shrunk, floor)), 1.0 / np.sqrt(max(rest, floor))

    def transform(self, shrinkage: float) -> np.ndarray:
        """D×D: x − mean ↦ whitened (the symmetric inverse square root of the shrunk covariance)."""
        along, rest = self.scales(shrinkage)
        return rest * np.eye(self.dim) + (self.basis * (along - rest)) @ self.basis.T


class _Whitener:
    """Whitened rows for many shrinkages at the cost of one projection: [coordinates along the basis | the
    remainder], an isometric picture of the whitened vectors (dot products, centroids, spans all preserved)."""

    def __init__(self, spectrum: _Spectrum, centred: np.ndarray) -> None:
        self.spectrum = spectrum
        self.along = centred @ spectrum.basis
        full = spectrum.basis.shape[1] == spectrum.dim  # nothing lies outside the basis
        self.remainder = None if full else centred - self.along @ spectrum.basis.T

    def __call__(self, shrinkage: float) -> np.ndarray:
        along, rest = self.spectrum.scales(shrinkage)
        if self.remainder is None:
            return self.along * along
        return np.concatenate([self.along * along, self.remainder * rest], axis=1)


def _row_space(matrix: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Squared singular values of `matrix` [n, D] and their right singular vectors [D, k], from the smaller of
    its two Gram matrices (n×n when there are fewer rows than columns: a bench split's few hundred seeds).
    Values under `floor` × the largest are left out, except when the D×D problem returns every direction."""
    if len(matrix) >= matrix.shape[1]:
        values, vectors = np.linalg.eigh(matrix.T @ matrix)
        return np.maximum(values, 0.0), vectors
    _, values, to_space = _gram_space(matrix, floor)
    return values, matrix.T @ to_space


def _gram_space(matrix: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n×n Gram matrix of `matrix` [n, D], its eigenvalues over `floor` × the largest, and the map [n, k]
    from a vector's dot products with the rows to its coordinates in their row space (orthonormal basis)."""
    gram = matrix @ matrix.T
    values, left = np.linalg.eigh(gram)
    keep = values > floor * max(float(values.max(initial=0.0)), floor)
    return gram, values[keep], left[:, keep] / np.sqrt(values[keep])


def _group_means(vectors: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """`[G, D]`: each non-empty group's mean row. The maps here are affine, so a map of these is the mean of the
    mapped rows: centroids are whitened as G rows, never as every row of the groups."""
    return np.stack([vectors[g].mean(axis=0) for g in groups if len(g)])


def _centroid_span(centroids: np.ndarray) -> np.ndarray | None:
    """Orthonormal basis `[D, k]` of the directions the groups' whitened centroids `[G, D]` differ along (None
    when they span every direction anyway, so projecting would change nothing)."""
    squares, directions = _row_space(centroids - centroids.mean(axis=0), SPAN_FLOOR**2)
    keep = squares > squares.max() * SPAN_FLOOR**2 if squares.size and squares.max() > 0 else np.zeros(0, bool)
    if keep.sum() >= centroids.shape[1] or not keep.any():
        return None
    return directions[:, keep]


def _retrieval_precision(centroids: np.ndarray, held: np.ndarray, owners: np.ndarray) -> float:
    """How well each playlist's centroid `[P, D]` (from its training tracks) ranks its own held-out tracks first
    among all held-out tracks `held` `[N, D]` (held[j] belongs to playlist owners[j]), by cosine: mean average
    precision over the playlists that hold some out (the task `recommend` serves)."""
    return _ranked_precision(centroids @ l2_normalise(held).T, owners)


def _ranked_precision(scores: np.ndarray, owners: np.ndarray) -> float:
    """`_retrieval_precision` from the scores `[P, N]` of every held-out track for every playlist.

    Only each held-out track's rank in its own playlist's list matters: it is counted (tracks scoring higher,
    ties broken by position as a stable sort would), never found by sorting every playlist's whole list.
    """
    positions = np.arange(scores.shape[1])
    total, playlists = 0.0, 0
    for playlist in np.unique(owners):
        mine = positions[owners == playlist]  # ascending
        row, own = scores[playlist], scores[playlist, mine][:, None]
        ranks = (row > own).sum(axis=1) + ((row == own) & (positions < mine[:, None])).sum(axis=1)
        ranks = np.sort(ranks)  # best first: the k-th of its own tracks is found at rank ranks[k - 1]
        total += float((np.arange(1, len(ranks) + 1) / (ranks + 1)).sum() / len(ranks))
        playlists += 1
    return total / playlists if playlists else 0.0


def _both_precisions(centroids: np.ndarray, held: np.ndarray, owners: np.ndarray) -> tuple[float, float]:
    """`_retrieval_precision` of whitened centroids `[P, D]` and held-out tracks `[N, D]`, as they are and projected
    on the span of the centroids' differences (`_centroid_span`), from one product of the two.

    With fewer playlists than dimensions the span's basis is `Cc.T @ L / sqrt(v)` (eigenpairs of the centred
    centroids' Gram `Cc @ Cc.T`), so the held-out tracks' coordinates in it follow from their dot products with
    the centroids, `centroids @ held.T`, which the unprojected scores need anyway: the held-out tracks' D columns
    are read once, not twice.
    """
    if len(centroids) >= centroids.shape[1]:  # as many playlists as dimensions: the span in D×D, as in the fit
        plain = _retrieval_precision(centroids, held, owners)
        span = _centroid_span(centroids)
        return plain, plain if span is None else _retrieval_precision(centroids @ span, held @ span, owners)
    raw = centroids @ held.T  # P x N
    plain = _ranked_precision(raw / np.maximum(np.linalg.norm(held, axis=1), 1e-12), owners)
    middle = centroids.mean(axis=0)
    centred = centroids - middle
    gram, values, to_span = _gram_space(centred, SPAN_FLOOR**2)  # to_span: P x k
    if not values.size:
        return plain, plain
    inner = centred @ middle  # centroid i · middle: (Cc_i + middle) · Cc_j = G_ij + middle · Cc_j
    in_span = (gram + inner[None, :]) @ to_span
    held_in_span = (raw - raw.mean(axis=0)).T @ to_span  # held_j · Cc_i = raw_ij − held_j · middle
    return plain, _ranked_precision(in_span @ l2_normalise(held_in_span).T, owners)


def choose_by_cross_validation(
    vectors: np.ndarray, groups: list[np.ndarray], shrinkage: float | None = None, seed: int = 0
) -> tuple[float, bool] | None:
    """(shrinkage, project) with which the playlists best find their own held-out tracks.

    Each of CV_FOLDS folds holds out every CV_FOLDS-th track of each playlist (in a seeded order), fits on the
    rest, and scores how each playlist's centroid ranks the held-out tracks (mean average precision). Only
    `groups` rows are read.
    None when too few playlists have CV_MIN_TRACKS tracks to hold some out.
    """
    usable = [g for g in groups if len(g) >= CV_MIN_TRACKS]
    if len(usable) < MIN_PLAYLISTS:
        return None
    kept, budget = [], CV_TRACKS
    for g in usable:  # whole playlists, up to the budget: bounded time and memory for any store
        if len(g) <= budget:
            kept.append(g)
            budget -= len(g)
    usable = kept if len(kept) >= MIN_PLAYLISTS else usable[:MIN_PLAYLISTS]
    rows = np.unique(np.concatenate(usable))  # only these rows are read: index them compactly
    vectors = vectors[rows]
    usable = [np.searchsorted(rows, g) for g in usable]
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(g) for g in usable]
    grid = SHRINKAGE_GRID if shrinkage is None else (shrinkage,)
    scores = np.zeros((len(grid), 2))
    for fold in range(CV_FOLDS):
        test = [g[np.arange(len(g)) % CV_FOLDS == fold] for g in orders]
        train = [g[np.arange(len(g)) % CV_FOLDS != fold] for g in orders]
        spectrum = _Spectrum.of(*within_residuals(vectors, train)[:2])
        mean = vectors[np.concatenate(train)].mean(axis=0)
        held = np.concatenate([rows for rows in test if len(rows)])
        owners = np.concatenate([np.full(len(rows), i) for i, rows in enumerate(test) if len(rows)])
        # Only the training centroids and the held-out tracks are scored: whiten those rows alone.
        whiten = _Whitener(spectrum, np.concatenate([_group_means(vectors, train), vectors[held]]) - mean)
        for i, alpha in enumerate(grid):
            whitened = whiten(alpha)
            scores[i] += _both_precisions(whitened[: len(train)], whitened[len(train) :], owners)
    best = np.unravel_index(int(np.argmax(scores)), scores.shape)  # first best: least shrinkage, no projection
    return float(grid[best[0]]), bool(best[1])


def fit_whitening(
    vectors: np.ndarray, groups: Sequence[np.ndarray], shrinkage: float | None = None, project: bool | None = None
) -> Whitening:
    """Fit on the rows of `vectors` that `groups` (playlists as row indices) name, and only those.

    `shrinkage` in [0, 1]: weight of the identity target; `project`: keep only the directions the playlists'
    centroids differ along. None chooses them by cross-validation on the playlists' own tracks (Ledoit-Wolf
    shrinkage and no projection when the playlists are too small to hold tracks out). The vectors are
    L2-normalised first, as cosine sees them.
    """
    groups = _clean(groups)
    # Only the playlists' rows are read: work on them alone (a bench over a whole library passes every vector).
    rows = np.unique(np.concatenate(groups)) if groups else np.zeros(0, np.int64)
    vectors = np.asarray(vectors)
    every_row = len(rows) == len(vectors) and (not len(rows) or rows[-1] == len(rows) - 1)  # rows are 0..N-1
    # One new float64 copy, normalised in place: each fresh array of 50k 1,296-d rows costs 0.6-1.5 s in page faults
    vectors = vectors.astype(np.float64) if every_row else np.asarray(vectors[rows], dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    groups = [np.searchsorted(rows, g) for g in groups]
    residuals, playlists, tracks = within_residuals(vectors, groups)
    if playlists < MIN_PLAYLISTS or tracks < MIN_TRACKS:
        raise TooFewPlaylistsError(
            f"adapting needs at least {MIN_PLAYLISTS} playlists with two or more tracks and {MIN_TRACKS} such "
            f"tracks; there are {playlists} and {tracks}: the plain metric stays"
        )
    chosen_by = "given"
    if project is None or shrinkage is None:
        choice = choose_by_cross_validation(vectors, groups, shrinkage)
        if choice is not None:
            chosen_by = "cross-validation"
            shrinkage = choice[0] if shrinkage is None else shrinkage
            project = choice[1] if project is None else project
    if shrinkage is None:
        chosen_by = "ledoit-wolf"
        shrinkage = ledoit_wolf_shrinkage(residuals)
    mean = vectors.mean(axis=0)
    transform = _Spectrum.of(residuals, playlists).transform(shrinkage)  # x → (x − mean) · transform
    span = _centroid_span((_group_means(vectors, groups) - mean) @ transform) if project else None
    if span is not None:
        transform = transform @ span @ span.T
    rank = span.shape[1] if span is not None else 0
    return Whitening(mean, transform, float(shrinkage), playlists, tracks, ADAPT_VERSION, rank, chosen_by)
