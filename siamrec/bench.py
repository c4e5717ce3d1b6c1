"""The masked-playlist protocol of the SiamRec paper, scored right, with vectorised numpy.

A split masks n songs of each playlist at random and keeps up to m of the others as seeds (the query). The
playlist's query is built from its seeds' vectors (`mean`: cosine to the seeds' mean; `best-score`: the best
cosine to any seed, which is Qdrant's RecommendStrategy.BEST_SCORE with positive examples only), and every
candidate is ranked by it. Candidates are all masked songs of all playlists (the paper) or every track
(`library`, the realistic case); a playlist's own non-masked tracks are never its candidates. Splits are drawn
from the playlists alone, so every method is scored on the same splits.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from siamrec.adapt import TooFewPlaylistsError, Whitening, fit_whitening
from siamrec.audio import file_sha1, track_windows
from siamrec.baselines import MusicnnEncoder, mfcc_statistics, random_vectors, zscore
from siamrec.errors import AudioError, ConfigError, NotFoundError, SiamrecError
from siamrec.metrics import METRICS, chance_per_playlist, playlist_metrics, ranks_of_relevant
from siamrec.names import path_from_payload
from siamrec.vectors import l2_normalise

if TYPE_CHECKING:
    from siamrec.store import Store, TrackRecord

STRATEGIES = ("mean", "best-score")
# plain: cosine on the vectors; adapted: cosine after a within-playlist whitening fitted on each split's seeds.
METRIC_CHOICES = ("plain", "adapted", "both")
ADAPTED_SUFFIX = ", adapted"
CANDIDATE_SETS = ("masked", "library")
MIN_SEEDS = 1
PAPER_SPLITS = ((10, 10), (13, 7), (15, 5), (18, 2))  # (seeds kept, songs masked), Table 3 of the paper
# Similarity budget (elements) per chunk of playlists: best-score holds [p, m, C] scores at once.
SCORE_CHUNK_ELEMENTS = 1 << 24
AUDIO_BATCH = 16  # tracks decoded and embedded together
MFCC_CACHE_VERSION = "v1"  # bump when the hand-crafted features change
MAX_DRAWS = 1000  # random splits per setting: beyond this the std no longer moves, only the run time does
MAX_MASK = 100_000  # seeds or masked songs per playlist: far beyond any real playlist (MPD's longest: 250)
MUSICNN_ONNX = Path(__file__).parent / "assets" / "baselines" / "musicnn_msd.onnx"


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


# ---- the bench over a store: methods, cached audio embeddings, results --------------------------------------


@dataclass(frozen=True)
class Library:
    """The store's tracks with vectors and its playlists as row indices, read once."""

    model: tuple[str, int]
    records: list[TrackRecord]
    vectors: np.ndarray  # N x D, the store's model
    playlists: list[np.ndarray]
    playlist_names: list[str]

    def subset(self, keep: np.ndarray) -> Library:
        """The library without the rows where `keep` is False (playlists renumbered)."""
        new_row = np.cumsum(keep) - 1
        playlists = [new_row[rows[keep[rows]]] for rows in self.playlists]
        records = [r for r, k in zip(self.records, keep, strict=True) if k]
        return Library(self.model, records, self.vectors[keep], playlists, self.playlist_names)


def read_library(store: Store, need_playlists: bool = True) -> Library:
    """Every track vector and playlist of the store; an empty store is an error the user can act on."""
    model = store.stored_model()
    if model is None or store.count_tracks() == 0:
        raise NotFoundError("the store is empty: add tracks and playlists (`siamrec add-track`, `sync-playlists`)")
    store.bind_model(*model, create=False)
    tracks = [t for t in store.iter_tracks(with_vectors=True) if t.vector is not None]
    if not tracks:
        raise NotFoundError("no track in the store has a vector of its model: re-add the tracks")
    row = {t.record.track_uri: i for i, t in enumerate(tracks)}
    playlists = list(store.iter_playlists())
    if need_playlists and not playlists:
        raise NotFoundError("the store holds no playlists: add some with `siamrec sync-playlists` or `playlist`")
    return Library(
        model=model,
        records=[t.record for t in tracks],
        vectors=np.stack([t.vector for t in tracks]),
        playlists=[np.array([row[u] for u in p.track_uris if u in row], dtype=np.int64) for p in playlists],
        playlist_names=[p.name or p.playlist_uri for p in playlists],
    )


@dataclass(frozen=True)
class AudioMethod:
    """A way to embed audio windows into track vectors, cached on disk per audio file under `key`."""

    name: str
    key: str  # the method and its weights: a changed model file gets a fresh cache
    embed: Callable[[list[np.ndarray]], np.ndarray]
    standardise: bool = False  # z-score over the benched tracks (feature statistics, musicnn activations)


def mfcc_method() -> AudioMethod:
    return AudioMethod("mfcc", f"mfcc-{MFCC_CACHE_VERSION}", mfcc_statistics, standardise=True)


def musicnn_method(onnx_path: Path) -> AudioMethod:
    encoder = MusicnnEncoder(onnx_path)
    return AudioMethod("musicnn", f"musicnn-{file_sha1(onnx_path)}", encoder.track_vectors, standardise=True)


def model_method(onnx_path: Path, device: str) -> AudioMethod:
    """Another siamrec model (any name and dimension): refused unless it carries siamrec's contract."""
    from siamrec.embed import TrackEncoder  # onnxruntime only when a model is benched

    encoder = TrackEncoder(onnx_path, device=device)
    return AudioMethod(f"{encoder.name} ({onnx_path.name})", f"model-{file_sha1(onnx_path)}", encoder.track_vectors)


class VectorCache:
    """One method's track vectors on disk, one .npy per audio SHA-1 (re-runs and other libraries reuse them)."""

    def __init__(self, root: Path, key: str) -> None:
        self.folder = root / key

    def _path(self, sha1: str) -> Path:
        return self.folder / sha1[:2] / f"{sha1}.npy"

    def has(self, sha1: str) -> bool:
        """True when a readable vector is cached; a damaged file (truncated by a full disk) is removed."""
        path = self._path(sha1)
        if not path.is_file():
            return False
        try:
            vector = np.load(path, allow_pickle=False)
            readable = vector.ndim == 1 and vector.size > 0 and bool(np.isfinite(vector).all())
        except (OSError, ValueError, EOFError):
            readable = False
        if not readable:
            path.unlink(missing_ok=True)
        return readable

    def get(self, sha1: str) -> np.ndarray:
        return np.load(self._path(sha1), allow_pickle=False)

    def put(self, sha1: str, vector: np.ndarray) -> None:
        path = self._path(sha1)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, np.asarray(vector, dtype=np.float32))
        partial.replace(path)  # atomic: an interrupted bench never leaves a truncated vector


def _audio_identity(record: TrackRecord) -> tuple[str | None, str | None]:
    """(audio SHA-1, None) when the track's audio can be read, else (None, why not)."""
    if not record.path:
        return None, "no audio path in the store"
    if not path_from_payload(record.path).is_file():
        return None, f"audio file {record.path} not found"
    return record.audio_sha1 or file_sha1(path_from_payload(record.path)), None


def embed_audio_methods(
    records: list[TrackRecord],
    methods: list[AudioMethod],
    cache_root: Path,
    on_progress: Callable[[int], None] = lambda n: None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Vectors `[N, D]` per method (NaN rows where the audio failed) and the failed tracks: uri → reason.

    Each track's audio is decoded once for all the methods that miss it in their cache.
    """
    caches = {m.name: VectorCache(cache_root, m.key) for m in methods}
    identities = [_audio_identity(r) for r in records]
    failed = {r.track_uri: why for r, (_, why) in zip(records, identities, strict=True) if why}
    todo = [i for i, (sha1, _) in enumerate(identities) if sha1 and not all(c.has(sha1) for c in caches.values())]
    on_progress(len(records) - len(todo))
    for start in range(0, len(todo), AUDIO_BATCH):
        batch = todo[start : start + AUDIO_BATCH]
        windows: dict[int, np.ndarray] = {}
        for i in batch:
            try:
                windows[i] = track_windows(path_from_payload(records[i].path))[0]
            except AudioError as exc:
                failed[records[i].track_uri] = str(exc)
            on_progress(1)  # per track as it is decoded (the slow part), not per batch
        for method in methods:
            cache = caches[method.name]
            missing = [i for i in windows if not cache.has(identities[i][0])]
            if missing:
                for i, vector in zip(missing, method.embed([windows[i] for i in missing]), strict=True):
                    cache.put(identities[i][0], vector)
    return {m.name: _load_cached(caches[m.name], identities, records, failed) for m in methods}, failed


def _load_cached(cache: VectorCache, identities: list[tuple[str | None, str | None]], records: list[TrackRecord],
                 failed: dict[str, str]) -> np.ndarray:  # fmt: skip
    rows = [
        None if r.track_uri in failed else cache.get(sha1) for r, (sha1, _) in zip(records, identities, strict=True)
    ]
    dim = next((len(v) for v in rows if v is not None), 1)
    return np.stack([np.full(dim, np.nan, np.float32) if v is None else v for v in rows])


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
    # bench --feedback: method → `listener:figure` → (mean, std) per round (siamrec.feedback_bench)
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
    (rounds, k): also a simulated listener's rounds of answers on those draws (siamrec.feedback_bench).
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
            from siamrec.feedback_bench import score_feedback  # it builds on this module

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


BASELINES = ("random", "mfcc", "musicnn")


def audio_methods(
    baselines: Sequence[str], musicnn_path: Path | None, model_paths: Sequence[Path], device: str
) -> list[AudioMethod]:
    """The methods that need the audio, each checked (and its model loaded) before any work starts."""
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ConfigError(f"unknown baseline {', '.join(unknown)}: choose from {', '.join(BASELINES)}")
    if {"mfcc", "musicnn"} & set(baselines):
        what = f"the {' and '.join(sorted({'mfcc', 'musicnn'} & set(baselines)))} baseline"
        require_bench_extra(("librosa",), what, "--baseline random to go without")
    methods = [mfcc_method()] if "mfcc" in baselines else []
    if "musicnn" in baselines:
        methods.append(musicnn_method(musicnn_path or MUSICNN_ONNX))
    methods += [model_method(path, device) for path in model_paths]
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ConfigError(f"two methods share a name ({', '.join(names)}): pass each model file once")
    return methods


def require_bench_extra(modules: Sequence[str], what: str, instead: str = "") -> None:
    """Fail in one line, before any work, when `siamrec[bench]` (librosa, matplotlib, scikit-learn) is missing;
    `instead` names a way to go without, where `what` has one."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"{what} needs {', '.join(missing)}: pip install 'siamrec[bench]'" + (f" (or {instead})" if instead else "")
        )


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
