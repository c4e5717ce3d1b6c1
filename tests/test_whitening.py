"""The playlist-adapted metric: the whitening itself, and bench fitting it on seed tracks only."""

from __future__ import annotations

import numpy as np
import pytest

from siamrec import whitening
from siamrec.bench import protocol
from siamrec.bench.protocol import evaluate_vectors, fit_on_split, make_splits, seed_groups
from siamrec.bench.run import run_protocol
from siamrec.whitening import SHRINKAGE_GRID, TooFewPlaylistsError, Whitening, fit_whitening, ledoit_wolf_shrinkage


def nuisance_playlists(n_playlists: int = 12, size: int = 15, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Playlists separated along 4 weak dimensions, buried under 12 loud dimensions that vary within each one."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_playlists, 16))
    centres[:, :4] = rng.standard_normal((n_playlists, 4))
    vectors = np.repeat(centres, size, axis=0)
    vectors[:, 4:] += 2.0 * rng.standard_normal((len(vectors), 12))  # loud, playlist-blind
    vectors[:, :4] += 0.3 * rng.standard_normal((len(vectors), 4))
    return vectors, [np.arange(p * size, (p + 1) * size) for p in range(n_playlists)]


def test_whitening_flattens_within_playlist_spread() -> None:
    vectors, playlists = nuisance_playlists()
    whitening = fit_whitening(vectors, playlists, shrinkage=0.0, project=False)
    adapted = whitening.apply(vectors)
    assert adapted.shape == vectors.shape
    assert np.allclose(np.linalg.norm(adapted, axis=1), 1.0, atol=1e-5)
    assert (whitening.playlists, whitening.tracks) == (12, 180)
    # The transform is the inverse square root of the pooled within-playlist covariance.
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    residuals = np.concatenate([unit[p] - unit[p].mean(axis=0) for p in playlists])
    covariance = residuals.T @ residuals / (len(residuals) - len(playlists))
    assert np.allclose(whitening.transform.T @ covariance @ whitening.transform, np.eye(16), atol=1e-6)
    assert whitening.projected == 0 and whitening.chosen_by == "given"


def test_adapted_metric_beats_plain_when_the_loud_dimensions_are_noise() -> None:
    vectors, playlists = nuisance_playlists()
    plain = evaluate_vectors(vectors, playlists, 5, 10, seeds=4)
    adapted = evaluate_vectors(vectors, playlists, 5, 10, seeds=4, adapted=True)
    assert adapted["r_precision"][0] > plain["r_precision"][0] + 0.15
    assert adapted["r_precision_chance"] == plain["r_precision_chance"]  # same splits, same chance


def test_shrinkage_is_estimated_in_range_and_stored_round_trip() -> None:
    vectors, playlists = nuisance_playlists(n_playlists=4, size=5)
    residuals = np.random.default_rng(1).standard_normal((20, 16))
    assert 0.0 <= ledoit_wolf_shrinkage(residuals) <= 1.0
    whitening = fit_whitening(vectors, playlists)
    assert 0.0 < whitening.shrinkage <= 1.0 and whitening.chosen_by == "cross-validation"
    again = Whitening.from_dict(whitening.to_dict())
    assert np.array_equal(again.apply(vectors), whitening.apply(vectors))
    assert (again.shrinkage, again.projected, again.chosen_by) == (
        whitening.shrinkage, whitening.projected, whitening.chosen_by
    )  # fmt: skip
    # playlists too small to hold tracks out: Ledoit-Wolf's shrinkage, no projection
    pairs = [np.array([2 * i, 2 * i + 1]) for i in range(8)]
    small = fit_whitening(vectors, pairs)
    assert small.chosen_by == "ledoit-wolf" and small.projected == 0 and 0.0 <= small.shrinkage <= 1.0


def test_cross_validation_projects_onto_the_playlists_directions_when_that_ranks_better(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five playlists that differ along 2 of 40 dimensions under noise in all 40 (whitening cannot flatten
    noise that is the same in every direction): keeping only the directions their centroids span (rank ≤
    playlists − 1) lets held-out tracks find their playlist; a given choice is kept as given."""
    rng = np.random.default_rng(5)
    centres = np.zeros((5, 40))
    centres[:, :2] = rng.standard_normal((5, 2))
    vectors = np.repeat(centres, 15, axis=0) + 0.5 * rng.standard_normal((75, 40))
    vectors[:, 2] += 3.0  # away from the origin, so L2-normalising keeps the geometry
    playlists = [np.arange(p * 15, (p + 1) * 15) for p in range(5)]
    chosen = fit_whitening(vectors, playlists)
    assert chosen.chosen_by == "cross-validation" and 0 < chosen.projected <= 4
    adapted = chosen.apply(vectors)
    assert np.linalg.matrix_rank(adapted - adapted.mean(axis=0), tol=1e-6) <= chosen.projected + 1
    plain = fit_whitening(vectors, playlists, project=False)
    assert plain.projected == 0 and plain.shrinkage in SHRINKAGE_GRID
    given = fit_whitening(vectors, playlists, shrinkage=0.3, project=True)
    assert (given.shrinkage, given.chosen_by) == (0.3, "given") and given.projected == 4
    # in bench (fitted on each split's seeds), the chosen map ranks masked songs better than whitening alone
    chosen_map = evaluate_vectors(vectors, playlists, 5, 8, seeds=4, adapted=True)["r_precision"][0]
    whitening_only = lambda unit, split: fit_whitening(unit, seed_groups(split), None, False)  # noqa: E731
    monkeypatch.setattr(protocol, "fit_on_split", whitening_only)
    whitened_only = evaluate_vectors(vectors, playlists, 5, 8, seeds=4, adapted=True)["r_precision"][0]
    assert chosen_map > whitened_only


def test_cross_validation_reads_only_the_playlists_tracks() -> None:
    vectors, playlists = nuisance_playlists(n_playlists=6, size=10)
    extra = np.random.default_rng(3).standard_normal((40, 16)) * 9
    fitted = fit_whitening(vectors, playlists)
    padded = fit_whitening(np.concatenate([vectors, extra]), playlists)
    assert (fitted.shrinkage, fitted.projected) == (padded.shrinkage, padded.projected)
    np.testing.assert_allclose(fitted.transform, padded.transform)


def test_too_few_playlists_keep_the_plain_metric() -> None:
    vectors, playlists = nuisance_playlists(n_playlists=2, size=15)
    with pytest.raises(TooFewPlaylistsError, match="plain metric stays"):
        fit_whitening(vectors, playlists)
    results, notes = run_protocol({"m": vectors}, playlists, [(10, 5)], seeds=2, metric="both")
    assert list(results[0].methods) == ["m"] and "no adapted metric" in notes[0]


def test_bench_fits_the_adapted_metric_on_seed_tracks_only() -> None:
    """Poisoning every masked song's vector (and every non-seed member's) leaves each split's fit unchanged."""
    vectors, playlists = nuisance_playlists(n_playlists=10, size=20)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    splits = make_splits(playlists, len(unit), n_masked=5, max_seeds=8, seeds=3)
    rng = np.random.default_rng(7)
    for split in splits.draws:
        seeds = set(split.seeds[split.seeds >= 0].tolist())
        assert not seeds & set(split.masked.ravel().tolist())
        poisoned = unit.copy()
        unseen = [row for row in range(len(unit)) if row not in seeds]  # masked songs and the unused rest
        poisoned[unseen] = rng.standard_normal((len(unseen), unit.shape[1])) * 50
        clean, dirty = fit_on_split(unit, split), fit_on_split(poisoned, split)
        assert np.array_equal(clean.transform, dirty.transform) and np.array_equal(clean.mean, dirty.mean)
    # A song masked in one playlist but a seed of another is held back from the fit as well.
    overlapping = [np.concatenate([p, playlists[(i + 1) % 10][:3]]) for i, p in enumerate(playlists)]
    for split in make_splits(overlapping, len(unit), 5, 8, seeds=5).draws:
        masked = set(split.masked.ravel().tolist())
        poisoned = unit.copy()
        poisoned[sorted(masked)] *= -3.0
        assert np.array_equal(fit_on_split(unit, split).transform, fit_on_split(poisoned, split).transform)


def _full_rank_whitening(vectors: np.ndarray, groups: list[np.ndarray], shrinkage: float) -> np.ndarray:
    """The textbook map (a D×D eigendecomposition of the pooled within-playlist covariance), as a reference."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    residuals = np.concatenate([unit[g] - unit[g].mean(axis=0) for g in groups])
    values, basis = np.linalg.eigh(residuals.T @ residuals / (len(residuals) - len(groups)))
    values = np.maximum(values, 0.0)
    shrunk = (1 - shrinkage) * values + shrinkage * values.mean()
    return (unit - unit.mean(axis=0)) @ basis / np.sqrt(np.maximum(shrunk, 1e-9 * shrunk.max()))


@pytest.mark.parametrize("shrinkage", [0.0, 0.1, 0.6])
def test_fewer_tracks_than_dimensions_whiten_as_the_full_eigendecomposition(shrinkage: float) -> None:
    """The low-rank fit (the residuals' own span, no D×D eigendecomposition) ranks exactly as the full one:
    the two maps differ by a rotation, which cosine cannot see."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((60, 200)) + 3 * rng.standard_normal((6, 200)).repeat(10, axis=0)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # as stored: the map is fitted on unit vectors
    groups = [np.arange(p * 10, p * 10 + 10) for p in range(6)]
    fitted = fit_whitening(vectors, groups, shrinkage=shrinkage, project=False).apply(vectors)
    reference = _full_rank_whitening(vectors, groups, shrinkage)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    assert np.allclose(fitted @ fitted.T, reference @ reference.T, atol=1e-5)


@pytest.mark.parametrize(("playlists", "dim"), [(6, 20), (25, 20)])
def test_cross_validation_scores_the_projection_as_the_projected_vectors_would(playlists: int, dim: int) -> None:
    """The held-out tracks' coordinates in the centroids' span come from their dot products with the centroids
    (fewer playlists than dimensions) or from the span itself (as many or more): the same precisions either way
    as projecting every vector explicitly."""
    rng = np.random.default_rng(3)
    centroids = rng.normal(size=(playlists, dim))
    held = rng.normal(size=(40, dim)) + centroids[np.arange(40) % playlists]
    owners = np.arange(40) % playlists
    span = whitening._centroid_span(centroids)
    expected = whitening._retrieval_precision(centroids, held, owners)
    projected = expected if span is None else whitening._retrieval_precision(centroids @ span, held @ span, owners)
    found = whitening._both_precisions(centroids, held, owners)
    np.testing.assert_allclose(found, (expected, projected), rtol=1e-9)
    assert (span is None) == (playlists > dim)  # 25 centroids' differences span all 20 dimensions
