"""One bench run: parse the masks, score every method on the same splits (plain and adapted, with feedback
rounds when asked), and the results as a table-ready record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siamrec.bench.baselines import random_vectors, zscore
from siamrec.bench.measures import METRICS
from siamrec.bench.methods import AudioMethod, Library, embed_audio_methods
from siamrec.bench.protocol import (
    MAX_MASK,
    MIN_SEEDS,
    Splits,
    make_splits,
    require_playlists,
    score_method,
    summarise,
)
from siamrec.errors import ConfigError, SiamrecError
from siamrec.whitening import TooFewPlaylistsError

# plain: cosine on the vectors; adapted: cosine after a within-playlist whitening fitted on each split's seeds.
METRIC_CHOICES = ("plain", "adapted", "both")
ADAPTED_SUFFIX = ", adapted"
PAPER_SPLITS = ((10, 10), (13, 7), (15, 5), (18, 2))  # (seeds kept, songs masked), Table 3 of the paper


def parse_masks(text: str) -> list[tuple[int, int]]:
    """`SEEDS/MASKED[,SEEDS/MASKED…]` or `all` (the paper's four splits) → [(seeds kept, songs masked), …]."""
    if text.strip().lower() == "all":
        return list(PAPER_SPLITS)
    settings = []
    for part in text.split(","):
        seeds_text, sep, masked_text = part.strip().partition("/")
        digits = all(t.isascii() and t.isdigit() and len(t) <= len(str(MAX_MASK)) for t in (seeds_text, masked_text))
        if not sep or not digits:
            raise ConfigError(
                f"--mask {part.strip()!r}: write SEEDS/MASKED, e.g. 15/5 (15 seeds kept, 5 masked), or all"
            )
        seeds, masked = int(seeds_text), int(masked_text)
        if masked < 1 or seeds < MIN_SEEDS or masked > MAX_MASK or seeds > MAX_MASK:
            raise ConfigError(
                f"--mask {seeds}/{masked}: keep from {MIN_SEEDS} to {MAX_MASK} seeds and mask from 1 to {MAX_MASK} "
                "songs per playlist"
            )
        settings.append((seeds, masked))
    return settings


@dataclass
class SplitResult:
    """One protocol setting: every method's metrics (mean, std over draws) and the exact chance levels."""

    max_seeds: int
    n_masked: int
    playlists_used: int
    playlists_skipped: int
    methods: dict[str, dict[str, tuple[float, float]]]
    chance: dict[str, float]
    # bench --feedback: method → `listener:figure` → (mean, std) per round (siamrec.bench.feedback)
    feedback: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.max_seeds}/{self.n_masked}"


@dataclass
class BenchResult:
    strategy: str
    candidates: str
    seeds: int
    n_tracks: int
    n_playlists: int
    splits: list[SplitResult]
    skipped_tracks: dict[str, str]
    notes: list[str]
    feedback_rounds: int = 0  # bench --feedback ROUNDS (0: not run)
    feedback_k: int = 0  # recommendations the simulated listener answers per round

    def as_dict(self) -> dict[str, Any]:
        def pair(value: tuple[float, float]) -> dict[str, float]:
            return {"mean": value[0], "std": value[1]}

        return {
            **{k: getattr(self, k) for k in ("strategy", "candidates", "seeds", "n_tracks", "n_playlists")},
            "splits": [
                {
                    "mask": s.label,
                    "seeds_kept": s.max_seeds,
                    "masked": s.n_masked,
                    "playlists_used": s.playlists_used,
                    "playlists_skipped": s.playlists_skipped,
                    "methods": {m: {k: pair(v) for k, v in scores.items()} for m, scores in s.methods.items()},
                    "chance": s.chance,
                    **({"feedback": _feedback_dict(s.feedback, pair)} if self.feedback_rounds else {}),
                }
                for s in self.splits
            ],
            **({"feedback": {"rounds": self.feedback_rounds, "k": self.feedback_k}} if self.feedback_rounds else {}),
            "skipped_tracks": self.skipped_tracks,
            "notes": self.notes,
        }


def _feedback_dict(
    feedback: dict[str, dict[str, list[tuple[float, float]]]], pair: Callable[[tuple[float, float]], dict[str, float]]
) -> dict[str, Any]:
    """method → listener → figure → [{mean, std} per round] (round 0: before any answer)."""
    out: dict[str, Any] = {}
    for method, figures in feedback.items():
        for key, per_round in figures.items():
            listener, _, figure = key.partition(":")
            out.setdefault(method, {}).setdefault(listener, {})[figure] = [pair(value) for value in per_round]
    return out


def run_protocol(
    methods: dict[str, np.ndarray],
    playlists: list[np.ndarray],
    masks: list[tuple[int, int]],
    seeds: int = 10,
    strategy: str = "mean",
    candidates: str = "masked",
    rng_seed: int = 0,
    metric: str = "plain",
    feedback: tuple[int, int] | None = None,
) -> tuple[list[SplitResult], list[str]]:
    """Every method on the same draws of every mask setting; settings no playlist fits are noted and left out.

    `metric` both: each method twice, plain and adapted (`<name>, adapted`), on the same draws. `feedback`
    (rounds, k): also a simulated listener's rounds of answers on those draws (siamrec.bench.feedback).
    """
    if metric not in METRIC_CHOICES:
        raise ConfigError(f"unknown metric {metric!r}: choose {', '.join(METRIC_CHOICES)}")
    n_tracks = len(next(iter(methods.values())))
    results, notes = [], []
    for max_seeds, n_masked in masks:
        splits = make_splits(playlists, n_tracks, n_masked, max_seeds, seeds, candidates, rng_seed)
        if len(splits.used) == 0:
            if len(masks) == 1:
                require_playlists(splits, f"{max_seeds}/{n_masked}")
            notes.append(f"--mask {max_seeds}/{n_masked} left out: no playlist has {n_masked + MIN_SEEDS} tracks")
            continue
        per_method = _score_methods(methods, splits, strategy, metric, notes)
        any_draws = next(iter(per_method.values()))
        rounds = {}
        if feedback is not None:
            from siamrec.bench.feedback import score_feedback  # it builds on this module

            rounds = score_feedback(methods, splits, strategy, metric, *feedback, notes)
        results.append(
            SplitResult(
                max_seeds,
                n_masked,
                len(splits.used),
                splits.skipped,
                {name: {k: summarise(d, splits)[k] for k in METRICS} for name, d in per_method.items()},
                {k: float(any_draws[f"{k}_chance"].mean()) for k in METRICS},
                rounds,
            )
        )
    if not results:
        raise ConfigError(f"no playlist is long enough for any of the splits ({'; '.join(notes)})")
    return results, notes


def _score_methods(
    methods: dict[str, np.ndarray], splits: Splits, strategy: str, metric: str, notes: list[str]
) -> dict[str, dict[str, np.ndarray]]:
    """Plain and/or adapted scores per method; an adaptation the seeds cannot support is noted and left out."""
    scored = {}
    for name, vectors in methods.items():
        if metric in ("plain", "both"):
            scored[name] = score_method(vectors, splits, strategy)
        if metric in ("adapted", "both"):
            try:
                scored[name + ADAPTED_SUFFIX] = score_method(vectors, splits, strategy, adapted=True)
            except TooFewPlaylistsError as exc:
                notes.append(f"{name}: no adapted metric for {splits.max_seeds}/{splits.n_masked} ({exc})")
    if not scored:
        raise TooFewPlaylistsError(f"no method could be adapted: {notes[-1]}")
    return scored


def run_bench(
    library: Library,
    masks: list[tuple[int, int]],
    methods: list[AudioMethod],
    cache_root: Path,
    baselines: Sequence[str] = (),
    seeds: int = 10,
    strategy: str = "mean",
    candidates: str = "masked",
    rng_seed: int = 0,
    on_progress: Callable[[int], None] = lambda n: None,
    metric: str = "plain",
    feedback: tuple[int, int] | None = None,
) -> BenchResult:
    """The store's vectors, the audio methods and the random baseline, scored on the same draws.

    Tracks whose audio a method cannot read are left out for every method (and listed), so that all methods
    rank the same candidates.
    """
    embedded, failed = embed_audio_methods(library.records, methods, cache_root, on_progress) if methods else ({}, {})
    keep = np.array([r.track_uri not in failed for r in library.records])
    if not keep.any():
        raise SiamrecError(f"no track's audio could be read for {', '.join(m.name for m in methods)}")
    library = library.subset(keep)
    vectors = {f"{library.model[0]} (store)": library.vectors}
    for method in methods:
        rows = embedded[method.name][keep]
        vectors[method.name] = zscore(rows) if method.standardise else rows
    if "random" in baselines:
        vectors["random"] = random_vectors(len(library.records), library.model[1], rng_seed)
    results, notes = run_protocol(
        vectors, library.playlists, masks, seeds, strategy, candidates, rng_seed, metric, feedback
    )
    rounds, k = feedback or (0, 0)
    return BenchResult(
        strategy, candidates, seeds, len(library.records), len(library.playlists), results, failed, notes, rounds, k
    )
