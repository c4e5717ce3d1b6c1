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

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "default.onnx"
DEFAULT_BATCH = 64


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


def _read_info(session: ort.InferenceSession, path: Path) -> ModelInfo:
    meta = session.get_modelmeta().custom_metadata_map
    required = (C.META_NAME, C.META_DIM, C.META_SAMPLE_RATE, C.META_WINDOW)
    missing = [key for key in required if key not in meta]
    if missing:
        raise ModelError(
            f"{path} is not a siamrec model (metadata {', '.join(missing)} missing); export one with `siamrec export`"
        )
    info = ModelInfo(
        name=meta[C.META_NAME],
        version=meta.get(C.META_VERSION, "unknown"),
        dim=int(meta[C.META_DIM]),
        sample_rate=int(meta[C.META_SAMPLE_RATE]),
        window_samples=int(meta[C.META_WINDOW]),
        trained_on=meta.get(C.META_TRAINED_ON, "unknown"),
        path=str(path),
    )
    if (info.sample_rate, info.window_samples) != (C.SAMPLE_RATE, C.WINDOW_SAMPLES):
        raise ModelError(
            f"{path} expects {info.window_samples} samples at {info.sample_rate} Hz; this siamrec feeds "
            f"{C.WINDOW_SAMPLES} at {C.SAMPLE_RATE} Hz"
        )
    return info


class TrackEncoder:
    """An ONNX encoder session plus the batching that turns windows into track vectors."""

    def __init__(self, path: str | Path, device: str = "auto", batch_size: int = DEFAULT_BATCH) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model {path} not found")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers_for(device))
        except (
            ort.capi.onnxruntime_pybind11_state.Fail,
            ort.capi.onnxruntime_pybind11_state.InvalidGraph,
            ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,
        ) as exc:
            raise ModelError(f"cannot load model {path}: {str(exc).splitlines()[0]}") from exc
        self.info = _read_info(self.session, path)
        self.batch_size = batch_size
        self.input_name = self.session.get_inputs()[0].name

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def dim(self) -> int:
        return self.info.dim

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """`[N, WINDOW_SAMPLES]` float32 → `[N, dim]` raw window embeddings, in batches."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        outputs = [
            self.session.run(None, {self.input_name: windows[start : start + self.batch_size]})[0]
            for start in range(0, len(windows), self.batch_size)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.dim), np.float32)

    def track_vectors(self, windows_per_track: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised mean vector per track `[T, dim]`, running all tracks' windows together."""
        if not windows_per_track:
            return np.zeros((0, self.dim), np.float32)
        counts = np.array([len(w) for w in windows_per_track])
        embeddings = self.embed_windows(np.concatenate(windows_per_track))
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        means = np.add.reduceat(embeddings, offsets, axis=0) / counts[:, None]
        return l2_normalise(means)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


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
