"""What bench scores: the store's library and playlists, and the audio methods (the model, MFCC statistics,
musicnn) whose vectors are cached per file, so a re-run decodes nothing."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from siamrec.audio import file_sha1, track_windows
from siamrec.bench.baselines import MusicnnEncoder, mfcc_statistics
from siamrec.errors import AudioError, ConfigError, NotFoundError
from siamrec.names import path_from_payload

if TYPE_CHECKING:
    from siamrec.store import Store, TrackRecord


AUDIO_BATCH = 16  # tracks decoded and embedded together
MFCC_CACHE_VERSION = "v1"  # bump when the hand-crafted features change
MUSICNN_ONNX = Path(__file__).parent.parent / "assets" / "baselines" / "musicnn_msd.onnx"
MUSICNN_MTT_ONNX = MUSICNN_ONNX.with_name("musicnn_mtt.onnx")  # the same network trained on MagnaTagATune's tags


# ---- the bench over a store: its library, the audio methods and their cached vectors ---------------------


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


def musicnn_method(onnx_path: Path, name: str = "musicnn") -> AudioMethod:
    encoder = MusicnnEncoder(onnx_path)
    return AudioMethod(name, f"musicnn-{file_sha1(onnx_path)}", encoder.track_vectors, standardise=True)


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


BASELINES = ("random", "mfcc", "musicnn", "musicnn-mtt")


def audio_methods(
    baselines: Sequence[str], musicnn_path: Path | None, model_paths: Sequence[Path], device: str
) -> list[AudioMethod]:
    """The methods that need the audio, each checked (and its model loaded) before any work starts."""
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ConfigError(f"unknown baseline {', '.join(unknown)}: choose from {', '.join(BASELINES)}")
    need_librosa = sorted({"mfcc", "musicnn", "musicnn-mtt"} & set(baselines))
    if need_librosa:
        what = f"the {' and '.join(need_librosa)} baseline"
        require_bench_extra(("librosa",), what, "--baseline random to go without")
    methods = [mfcc_method()] if "mfcc" in baselines else []
    if "musicnn" in baselines:
        methods.append(musicnn_method(musicnn_path or MUSICNN_ONNX))
    if "musicnn-mtt" in baselines:
        methods.append(musicnn_method(MUSICNN_MTT_ONNX, "musicnn-mtt"))
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
