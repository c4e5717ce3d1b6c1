"""ONNX inference: waveform windows in, track vectors out, without importing torch.

One session serves many tracks: windows of several tracks are concatenated and run in fixed-size batches,
then pooled per track as the model's metadata says (siamrec.vectors.pool_windows: mean, or mean and spread).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from siamrec import constants as C
from siamrec.config import resolve_model_path
from siamrec.errors import ModelError
from siamrec.names import quoted
from siamrec.projection import Projection
from siamrec.vectors import MAX_SPREAD_WEIGHT, MIN_SPREAD_WEIGHT, POOLINGS, pool_windows

DEFAULT_BATCH = 128  # one chunk of add-track (16 tracks × 8 windows) per run: about 10 % less CPU than 64
_ORT = ort.capi.onnxruntime_pybind11_state
# What a model's run can raise (onnxruntime's own exception types derive from Exception, not RuntimeError).
RUN_FAILURES = (_ORT.Fail, _ORT.InvalidArgument, _ORT.RuntimeException, _ORT.NotImplemented, _ORT.EPFail, RuntimeError)


@dataclass(frozen=True)
class ModelInfo:
    """The contract a model file declares in its ONNX metadata.

    `dim` is the track vector's size (what the store holds); `window_dim` the graph's output per window.
    """

    name: str
    version: str
    dim: int
    sample_rate: int
    window_samples: int
    trained_on: str
    path: str
    window_dim: int = 0
    pooling: str = "mean"
    spread_mean: np.ndarray | None = field(default=None, repr=False, compare=False)
    spread_scale: np.ndarray | None = field(default=None, repr=False, compare=False)
    spread_weight: float = 1.0
    projection: Projection | None = field(default=None, repr=False, compare=False)


def providers_for(device: str) -> list[str]:
    """onnxruntime providers for --device auto|cpu|cuda; asking for cuda without it is an error."""
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ModelError("--device cuda: onnxruntime has no CUDA provider; pip install 'siamrec[gpu]'")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    raise ModelError(f"unknown device {device!r}: choose auto, cpu or cuda")


# A model's name becomes the store's vector name, a folder name inside each shard (`vector_storage-<name>`) and,
# with `+`, the prefix of derived vectors: a plain identifier only (no `/`, `..` at the start, `+`, spaces).
MAX_MODEL_NAME = 64
MODEL_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_MODEL_NAME - 1}}}", re.ASCII)


def model_name_problem(name: str) -> str | None:
    """Why `name` cannot name a model (it names the store's vectors and folders), or None when it can."""
    if MODEL_NAME.fullmatch(name):
        return None
    shown = name if len(name) <= 80 else name[:80] + "…"
    return (
        f"{shown!r} is not a usable name: a model name is 1 to {MAX_MODEL_NAME} letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )


def _metadata_int(meta: dict[str, str], key: str, path: Path) -> int:
    try:
        value = int(meta[key])
    except ValueError:
        value = 0
    if value <= 0:
        raise ModelError(f"{quoted(path)}: metadata {key}={meta[key]!r} is not a positive whole number")
    return value


def _read_info(session: ort.InferenceSession, path: Path) -> ModelInfo:
    meta = session.get_modelmeta().custom_metadata_map
    required = (C.META_NAME, C.META_DIM, C.META_SAMPLE_RATE, C.META_WINDOW)
    missing = [key for key in required if key not in meta]
    if missing:
        raise ModelError(
            f"{path} is not a siamrec model (metadata {', '.join(missing)} missing); export one with `siamrec export`"
        )
    problem = model_name_problem(meta[C.META_NAME])
    if problem:
        raise ModelError(f"{quoted(path)}: metadata {C.META_NAME}={problem}")
    dim = _metadata_int(meta, C.META_DIM, path)
    projection = _projection(meta, dim, path)
    info = ModelInfo(
        name=meta[C.META_NAME],
        version=meta.get(C.META_VERSION, "unknown"),
        dim=dim,
        sample_rate=_metadata_int(meta, C.META_SAMPLE_RATE, path),
        window_samples=_metadata_int(meta, C.META_WINDOW, path),
        trained_on=meta.get(C.META_TRAINED_ON, "unknown"),
        path=str(path),
        **_pooling(meta, projection.pooled_dim if projection else dim, path),
        projection=projection,
    )
    if (info.sample_rate, info.window_samples) != (C.SAMPLE_RATE, C.WINDOW_SAMPLES):
        raise ModelError(
            f"{path} expects {info.window_samples} samples at {info.sample_rate} Hz; this siamrec feeds "
            f"{C.WINDOW_SAMPLES} at {C.SAMPLE_RATE} Hz"
        )
    return info


def _float_list(meta: dict[str, str], key: str, size: int, path: Path) -> np.ndarray:
    try:
        values = np.asarray(json.loads(meta[key]), dtype=np.float64)
    except (KeyError, ValueError, TypeError):
        raise ModelError(f"{quoted(path)}: metadata {key} is missing or not a list of numbers") from None
    if values.shape != (size,) or not np.isfinite(values).all():
        raise ModelError(f"{quoted(path)}: metadata {key} must hold {size} finite numbers")
    return values


def _projection(meta: dict[str, str], dim: int, path: Path) -> Projection | None:
    """The shipped projection, when the model has one; its output size must be the declared track dim."""
    if C.META_PROJECTION not in meta:
        return None
    try:
        projection = Projection.from_metadata(meta[C.META_PROJECTION])
    except ModelError as error:
        raise ModelError(f"{quoted(path)}: {error}") from None
    if projection.dim != dim:
        raise ModelError(f"{quoted(path)}: its projection gives {projection.dim}-d vectors; {C.META_DIM} says {dim}")
    return projection


def _pooling(meta: dict[str, str], dim: int, path: Path) -> dict[str, object]:
    """The pooling fields of ModelInfo: `mean` (window dim = track dim) or `mean+std` with its statistics."""
    pooling = meta.get(C.META_POOLING, "mean")
    if pooling == "mean":
        return {"window_dim": dim, "pooling": pooling}
    if pooling not in POOLINGS:
        known = ", ".join(POOLINGS)
        raise ModelError(f"{quoted(path)}: metadata {C.META_POOLING}={pooling!r}: this siamrec knows {known}")
    window_dim = _metadata_int(meta, C.META_WINDOW_DIM, path) if C.META_WINDOW_DIM in meta else 0
    if window_dim * 2 != dim:
        raise ModelError(f"{quoted(path)}: mean+std pooling needs {C.META_WINDOW_DIM} = half of {C.META_DIM} ({dim})")
    return {
        "window_dim": window_dim,
        "pooling": pooling,
        "spread_mean": _float_list(meta, C.META_SPREAD_MEAN, window_dim, path),
        "spread_scale": _float_list(meta, C.META_SPREAD_SCALE, window_dim, path),
        "spread_weight": _spread_weight(meta, path),
    }


def _spread_weight(meta: dict[str, str], path: Path) -> float:
    """The spread block's weight: 1 when absent (models exported before it existed pool as they always did)."""
    text = meta.get(C.META_SPREAD_WEIGHT, "1")
    try:
        weight = float(text)
    except ValueError:
        weight = float("nan")
    if not MIN_SPREAD_WEIGHT <= weight <= MAX_SPREAD_WEIGHT:
        raise ModelError(
            f"{quoted(path)}: metadata {C.META_SPREAD_WEIGHT}={text[:40]!r} must be a number from "
            f"{MIN_SPREAD_WEIGHT:g} to {MAX_SPREAD_WEIGHT:g}"
        )
    return weight


def _check_signature(session: ort.InferenceSession, info: ModelInfo) -> None:
    """The graph must take one float32 `[batch, WINDOW_SAMPLES]` input with a free batch and give
    `[batch, window_dim]`."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    where = quoted(info.path)
    if len(inputs) != 1:
        raise ModelError(f"{where} takes {len(inputs)} inputs; a siamrec model takes one, the waveform windows")
    shape, kind = inputs[0].shape, inputs[0].type
    if kind != "tensor(float)":
        raise ModelError(f"{where} takes {kind} input; siamrec feeds float32 waveform windows")
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != C.WINDOW_SAMPLES):
        raise ModelError(f"{where} takes input of shape {shape}; siamrec feeds [batch, {C.WINDOW_SAMPLES}]")
    if isinstance(shape[0], int):
        raise ModelError(f"{where} has a fixed batch of {shape[0]}; export it with a dynamic batch dimension")
    out_shape = outputs[0].shape
    if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != info.window_dim):
        raise ModelError(f"{where} outputs shape {out_shape}; its metadata says [batch, {info.window_dim}]")


def probe_windows() -> np.ndarray:
    """Two real-sounding windows (a chord, and noise over a beat): what a model must embed to be used."""
    t = np.arange(C.WINDOW_SAMPLES) / C.SAMPLE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 6
    beat = np.random.default_rng(0).standard_normal(t.size) * np.exp(-(t % 0.5) * 20) * 0.3
    return np.stack([chord, beat + np.sin(2 * np.pi * 60 * t) * 0.3]).astype(np.float32)


def session_options(threads: int = 0) -> ort.SessionOptions:
    """onnxruntime options for embedding: `threads` intra-op threads (0: one per core), and no spinning.

    onnxruntime's workers spin between operators by default, burning the core that add-track's decoding threads
    need at the same time: without spinning the same windows cost about a quarter less CPU
    (benchmarks/embed_throughput.py).
    """
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures come back as exceptions; its log would be a second line
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class TrackEncoder:
    """An ONNX encoder session plus the batching that turns windows into track vectors.

    A model is checked when it loads (metadata, signature, one run on real windows), so a broken model
    fails here, before any store is created or bound for it. With `check=False` the run waits for `check()`:
    a re-add that finds every file unchanged never pays for it (library.start_add calls it before any write).
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH,
        threads: int = 0,
        check: bool = True,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model {path} not found")
        options = session_options(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers_for(device))
        except (_ORT.Fail, _ORT.InvalidGraph, _ORT.InvalidProtobuf, _ORT.NotImplemented) as exc:
            raise ModelError(f"cannot load model {path}: {str(exc).splitlines()[0]}") from exc
        self.path, self.device = path, device  # how to load the same model elsewhere (a Ray actor)
        self.info = _read_info(self.session, path)
        _check_signature(self.session, self.info)
        self.batch_size = batch_size
        self.input_name = self.session.get_inputs()[0].name
        self._checked = False
        if check:
            self.check()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def dim(self) -> int:
        """The track vector's size."""
        return self.info.dim

    @property
    def window_dim(self) -> int:
        return self.info.window_dim

    def check(self) -> None:
        """Run the model once on real windows (the first call only): a broken model raises ModelError."""
        if not self._checked:
            self._check_output(probe_windows())
            self._checked = True

    def _check_output(self, windows: np.ndarray) -> None:
        """Run the model once on real windows; it must give finite `[n, dim]` float vectors."""
        where = quoted(self.info.path)
        try:
            output = self._run(windows)
        except RUN_FAILURES as exc:
            raise ModelError(f"{where} fails on a test window: {str(exc).splitlines()[0]}") from exc
        if output.shape != (len(windows), self.window_dim) or output.dtype.kind != "f":
            raise ModelError(
                f"{where} returns {output.dtype} {list(output.shape)} for {len(windows)} windows; "
                f"its metadata promises float [{len(windows)}, {self.window_dim}]"
            )
        if not np.isfinite(output).all():
            raise ModelError(f"{where} returns NaN or infinite values for a plain test window: the model is broken")

    def _run(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: windows})[0])

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """`[N, WINDOW_SAMPLES]` float32 → `[N, window_dim]` window embeddings, in batches."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        outputs = [
            self._run(windows[start : start + self.batch_size]) for start in range(0, len(windows), self.batch_size)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.window_dim), np.float32)

    def track_vectors(self, windows_per_track: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised vector per track `[T, dim]`; a track the model cannot embed is an error."""
        vectors, errors = self.try_track_vectors(windows_per_track)
        failed = next((error for error in errors if error), None)
        if failed:
            raise ModelError(failed)
        return vectors

    def try_track_vectors(self, windows_per_track: list[np.ndarray]) -> tuple[np.ndarray, list[str | None]]:
        """Vectors `[T, dim]` and, per track, why it has none (None when it has one): one bad track never
        costs the others. All tracks' windows run together; a failed batch is retried track by track.
        """
        if not windows_per_track:
            return np.zeros((0, self.dim), np.float32), []
        try:
            vectors = self._pooled_vectors(windows_per_track)
        except RUN_FAILURES:
            return self._one_by_one(windows_per_track)
        return vectors, [_vector_problem(v, w) for v, w in zip(vectors, windows_per_track, strict=True)]

    def _pooled_vectors(self, windows_per_track: list[np.ndarray]) -> np.ndarray:
        """Pooled as the model's metadata says; a track's NaN/inf stays in its own row and is reported there."""
        counts = np.array([len(w) for w in windows_per_track])
        embeddings = self.embed_windows(np.concatenate(windows_per_track))
        info = self.info
        pooled = pool_windows(embeddings, counts, info.pooling, info.spread_mean, info.spread_scale, info.spread_weight)
        return info.projection.apply(pooled) if info.projection is not None else pooled

    def _one_by_one(self, windows_per_track: list[np.ndarray]) -> tuple[np.ndarray, list[str | None]]:
        vectors = np.full((len(windows_per_track), self.dim), np.nan, np.float32)
        errors: list[str | None] = []
        for i, windows in enumerate(windows_per_track):
            try:
                vectors[i] = self._pooled_vectors([windows])[0]
            except RUN_FAILURES as exc:
                errors.append(f"the model failed on this audio: {str(exc).splitlines()[0]}")
                continue
            errors.append(_vector_problem(vectors[i], windows))
        return vectors, errors


def _vector_problem(vector: np.ndarray, windows: np.ndarray) -> str | None:
    """Why a track vector cannot be stored (NaN/inf or all zeros), or None when it is fine."""
    if np.isfinite(vector).all() and np.any(vector):
        return None
    peak = float(np.abs(windows).max())
    return f"the model gives no usable vector for this audio (peak sample {peak:.3g}; audio peaks at 1.0)"


def load_encoder(model_path: Path | None, device: str = "auto", check: bool = True) -> TrackEncoder:
    return TrackEncoder(resolve_model_path(model_path), device=device, check=check)
