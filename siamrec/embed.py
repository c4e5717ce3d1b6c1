"""ONNX inference: waveform windows in, track vectors out, without importing torch.

One session serves many tracks: windows of several tracks are concatenated and run in fixed-size batches,
then averaged per track (np.add.reduceat) and L2-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from siamrec import constants as C
from siamrec.errors import ModelError
from siamrec.names import quoted
from siamrec.vectors import l2_normalise

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "default.onnx"
DEFAULT_BATCH = 64
_ORT = ort.capi.onnxruntime_pybind11_state
# What a model's run can raise (onnxruntime's own exception types derive from Exception, not RuntimeError).
RUN_FAILURES = (_ORT.Fail, _ORT.InvalidArgument, _ORT.RuntimeException, _ORT.NotImplemented, _ORT.EPFail, RuntimeError)


@dataclass(frozen=True)
class ModelInfo:
    """The contract a model file declares in its ONNX metadata."""

    name: str
    version: str
    dim: int
    sample_rate: int
    window_samples: int
    trained_on: str
    path: str


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
    if not meta[C.META_NAME].strip() or not meta[C.META_NAME].isprintable():
        raise ModelError(f"{quoted(path)}: metadata {C.META_NAME}={meta[C.META_NAME]!r} is not a usable name")
    info = ModelInfo(
        name=meta[C.META_NAME],
        version=meta.get(C.META_VERSION, "unknown"),
        dim=_metadata_int(meta, C.META_DIM, path),
        sample_rate=_metadata_int(meta, C.META_SAMPLE_RATE, path),
        window_samples=_metadata_int(meta, C.META_WINDOW, path),
        trained_on=meta.get(C.META_TRAINED_ON, "unknown"),
        path=str(path),
    )
    if (info.sample_rate, info.window_samples) != (C.SAMPLE_RATE, C.WINDOW_SAMPLES):
        raise ModelError(
            f"{path} expects {info.window_samples} samples at {info.sample_rate} Hz; this siamrec feeds "
            f"{C.WINDOW_SAMPLES} at {C.SAMPLE_RATE} Hz"
        )
    return info


def _check_signature(session: ort.InferenceSession, info: ModelInfo) -> None:
    """The graph must take one float32 `[batch, WINDOW_SAMPLES]` input with a free batch and give `[batch, dim]`."""
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
    if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != info.dim):
        raise ModelError(f"{where} outputs shape {out_shape}; its metadata says [batch, {info.dim}]")


def probe_windows() -> np.ndarray:
    """Two real-sounding windows (a chord, and noise over a beat): what a model must embed to be used."""
    t = np.arange(C.WINDOW_SAMPLES) / C.SAMPLE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 6
    beat = np.random.default_rng(0).standard_normal(t.size) * np.exp(-(t % 0.5) * 20) * 0.3
    return np.stack([chord, beat + np.sin(2 * np.pi * 60 * t) * 0.3]).astype(np.float32)


class TrackEncoder:
    """An ONNX encoder session plus the batching that turns windows into track vectors.

    A model is checked when it loads (metadata, signature, one run on real windows), so a broken model
    fails here, before any store is created or bound for it.
    """

    def __init__(self, path: str | Path, device: str = "auto", batch_size: int = DEFAULT_BATCH) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model {path} not found")
        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures come back as exceptions; its log would be a second line
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers_for(device))
        except (_ORT.Fail, _ORT.InvalidGraph, _ORT.InvalidProtobuf, _ORT.NotImplemented) as exc:
            raise ModelError(f"cannot load model {path}: {str(exc).splitlines()[0]}") from exc
        self.path, self.device = path, device  # how to load the same model elsewhere (a Ray actor)
        self.info = _read_info(self.session, path)
        _check_signature(self.session, self.info)
        self.batch_size = batch_size
        self.input_name = self.session.get_inputs()[0].name
        self._check_output(probe_windows())

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def dim(self) -> int:
        return self.info.dim

    def _check_output(self, windows: np.ndarray) -> None:
        """Run the model once on real windows; it must give finite `[n, dim]` float vectors."""
        where = quoted(self.info.path)
        try:
            output = self._run(windows)
        except RUN_FAILURES as exc:
            raise ModelError(f"{where} fails on a test window: {str(exc).splitlines()[0]}") from exc
        if output.shape != (len(windows), self.dim) or output.dtype.kind != "f":
            raise ModelError(
                f"{where} returns {output.dtype} {list(output.shape)} for {len(windows)} windows; "
                f"its metadata promises float [{len(windows)}, {self.dim}]"
            )
        if not np.isfinite(output).all():
            raise ModelError(f"{where} returns NaN or infinite values for a plain test window: the model is broken")

    def _run(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: windows})[0])

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """`[N, WINDOW_SAMPLES]` float32 → `[N, dim]` raw window embeddings, in batches."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        outputs = [
            self._run(windows[start : start + self.batch_size]) for start in range(0, len(windows), self.batch_size)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.dim), np.float32)

    def track_vectors(self, windows_per_track: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised mean vector per track `[T, dim]`; a track the model cannot embed is an error."""
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
            vectors = self._mean_vectors(windows_per_track)
        except RUN_FAILURES:
            return self._one_by_one(windows_per_track)
        return vectors, [_vector_problem(v, w) for v, w in zip(vectors, windows_per_track, strict=True)]

    def _mean_vectors(self, windows_per_track: list[np.ndarray]) -> np.ndarray:
        counts = np.array([len(w) for w in windows_per_track])
        embeddings = self.embed_windows(np.concatenate(windows_per_track))
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        with np.errstate(all="ignore"):  # a track's NaN/inf stays in its own row and is reported there
            means = np.add.reduceat(embeddings, offsets, axis=0) / counts[:, None]
            return l2_normalise(means)

    def _one_by_one(self, windows_per_track: list[np.ndarray]) -> tuple[np.ndarray, list[str | None]]:
        vectors = np.full((len(windows_per_track), self.dim), np.nan, np.float32)
        errors: list[str | None] = []
        for i, windows in enumerate(windows_per_track):
            try:
                vectors[i] = self._mean_vectors([windows])[0]
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


def resolve_model_path(model_path: Path | None) -> Path:
    """The configured model, else the shipped default; a clear error when neither exists."""
    if model_path is not None:
        if not model_path.is_file():
            raise ModelError(f"model {model_path} not found")
        return model_path
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL
    raise ModelError(
        "no model configured and no default model shipped: pass --model FILE.onnx or set SIAMREC_MODEL "
        "(train one with `siamrec train` and `siamrec export`)"
    )


def load_encoder(model_path: Path | None, device: str = "auto") -> TrackEncoder:
    return TrackEncoder(resolve_model_path(model_path), device=device)
