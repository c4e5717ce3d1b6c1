"""Export a trained encoder to one ONNX file (log-mel front end inside) and prove it matches torch.

The front end's STFT is rewritten as two half-size DFT products (power_mel.py): about a quarter of the
network's time on CPU; the parity check compares the rewritten file with torch.

The file carries its contract in ONNX metadata_props so `siamrec.embed` can refuse a model that does not fit.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from siamrec import __version__
from siamrec import constants as C
from siamrec.embed import TrackEncoder, model_name_problem
from siamrec.errors import ModelError
from siamrec.training.export.power_mel import rewrite_power_mel
from siamrec.training.nets import Encoder, encoder_from_checkpoint, load_checkpoint, part_columns, stats_parts
from siamrec.vectors import MAX_SPREAD_WEIGHT, MIN_SPREAD_WEIGHT, POOLINGS

PARITY_TOLERANCE = 1e-4
# The parts a vector is made of, in order: "learned:256,timbre:192" (name:dimensions), scaled to equal weight.
META_PARTS = "siamrec.parts"


@dataclass(frozen=True)
class ExportReport:
    path: str
    name: str
    dim: int
    max_abs_diff: float
    tolerance: float
    parity_windows: int
    size_bytes: int


def synthetic_parity_windows(count: int = 6, seed: int = 0) -> np.ndarray:
    """Chords, a drum-like pulse train and noise at musical levels: used when no parity audio is given."""
    rng = np.random.default_rng(seed)
    t = np.arange(C.WINDOW_SAMPLES) / C.SAMPLE_RATE
    windows = []
    for i in range(count):
        root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        chord = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.26, 1.5))
        beat = np.exp(-30 * (t % (0.25 + 0.05 * i))) * rng.standard_normal(t.size)
        windows.append(0.3 * chord / 3 + 0.3 * beat + 0.02 * rng.standard_normal(t.size))
    return np.stack(windows).astype(np.float32)


def _onnx_export(encoder: Encoder, path: Path) -> None:
    example = torch.from_numpy(synthetic_parity_windows(2))
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            (example,),
            str(path),
            dynamo=True,
            input_names=[C.ONNX_INPUT],
            output_names=[C.ONNX_OUTPUT],
            dynamic_shapes={"waveform": {0: batch}},
            external_data=False,
            opset_version=C.ONNX_OPSET,
            verbose=False,
        )


def _finish_graph(path: Path, metadata: dict[str, str]) -> None:
    """The fast mel front end in place of torch's STFT (power_mel.py), and the contract in the metadata."""
    model = onnx.load(str(path))
    rewrite_power_mel(model)
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def parity_max_diff(encoder: Encoder, onnx_path: Path, windows: np.ndarray) -> float:
    """Largest |torch − onnxruntime| over the embeddings of `windows`."""
    with torch.no_grad():
        expected = encoder(torch.from_numpy(windows)).numpy()
    actual = TrackEncoder(onnx_path, device="cpu").embed_windows(windows)
    return float(np.abs(expected - actual).max())


def export_encoder(
    encoder: Encoder,
    output: str | Path,
    name: str,
    backbone: str,
    version: str = __version__,
    trained_on: str = "unknown",
    parity_windows: np.ndarray | None = None,
    tolerance: float = PARITY_TOLERANCE,
    pooling: str = "mean",
    spread: tuple[np.ndarray, np.ndarray] | None = None,
    spread_weight: float = 1.0,
) -> ExportReport:
    """Export, stamp the contract, then compare onnxruntime with torch; above tolerance the file is removed.

    `pooling` `mean+std` needs `spread`: the training tracks' per-dimension spread mean and std (`encoder.dim`
    each); the track vector then has twice the encoder's size, the spread weighing `spread_weight` beside the mean.
    """
    problem = model_name_problem(name)
    if problem:  # refused before the export: a file with such a name could never be loaded
        raise ModelError(f"model name {problem}")
    metadata = _pooling_metadata(encoder.dim, pooling, spread, spread_weight)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    encoder = encoder.eval().cpu()
    tmp = output.with_suffix(".partial.onnx")
    try:
        _onnx_export(encoder, tmp)
    except Exception as exc:  # torch.onnx raises many unrelated types; all mean "could not export"
        tmp.unlink(missing_ok=True)
        raise ModelError(f"ONNX export failed: {str(exc).splitlines()[0]}") from exc
    _finish_graph(
        tmp,
        {
            C.META_NAME: name,
            C.META_VERSION: version,
            C.META_DIM: str(encoder.dim * (2 if pooling == "mean+std" else 1)),
            C.META_SAMPLE_RATE: str(C.SAMPLE_RATE),
            C.META_WINDOW: str(C.WINDOW_SAMPLES),
            C.META_TRAINED_ON: trained_on,
            C.META_BACKBONE: backbone,
            META_PARTS: ",".join(f"{part}:{size}" for part, size in encoder.parts),
            **metadata,
        },
    )
    windows = synthetic_parity_windows() if parity_windows is None else parity_windows.astype(np.float32)
    max_diff = parity_max_diff(encoder, tmp, windows)
    if not max_diff <= tolerance:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"parity check failed: max |torch - onnx| = {max_diff:.3g} > {tolerance:g}")
    tmp.replace(output)
    dim = encoder.dim * (2 if pooling == "mean+std" else 1)
    return ExportReport(str(output), name, dim, max_diff, tolerance, len(windows), output.stat().st_size)


def _pooling_metadata(
    window_dim: int, pooling: str, spread: tuple[np.ndarray, np.ndarray] | None, spread_weight: float = 1.0
) -> dict[str, str]:
    if pooling not in POOLINGS:
        raise ModelError(f"unknown pooling {pooling!r}: choose {' or '.join(POOLINGS)}")
    if pooling == "mean":
        if spread_weight != 1.0:  # a weight the file would not carry: say so instead of dropping it
            raise ModelError("a spread weight applies to mean+std pooling; this export pools by the mean")
        return {}
    if spread is None:
        raise ModelError("mean+std pooling needs the training tracks' spread statistics (re-validate the run)")
    mean, std = (np.asarray(v, dtype=np.float64) for v in spread)
    if mean.shape != (window_dim,) or std.shape != (window_dim,) or not (np.isfinite(mean).all() and (std > 0).all()):
        raise ModelError(f"the spread statistics must be {window_dim} finite numbers each, with std above 0")
    if not MIN_SPREAD_WEIGHT <= spread_weight <= MAX_SPREAD_WEIGHT:
        raise ModelError(
            f"the spread weight must be from {MIN_SPREAD_WEIGHT:g} to {MAX_SPREAD_WEIGHT:g} (got {spread_weight:g})"
        )
    return {
        C.META_POOLING: pooling,
        C.META_WINDOW_DIM: str(window_dim),
        C.META_SPREAD_MEAN: json.dumps([float(f"{v:.7g}") for v in mean]),
        C.META_SPREAD_SCALE: json.dumps([float(f"{1.0 / v:.7g}") for v in std]),
        C.META_SPREAD_WEIGHT: f"{spread_weight:.7g}",
    }


def checkpoint_spread(checkpoint: dict, encoder: Encoder) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's spread statistics for the parts this encoder exports (None when the run measured none)."""
    stats = checkpoint.get("feature_stats") or {}
    if "spread_mean" not in stats:
        return None
    columns = part_columns(stats_parts(stats))
    keep = np.concatenate([columns[part] for part, _ in encoder.parts])
    return (np.asarray(stats["spread_mean"])[keep], np.asarray(stats["spread_std"])[keep])


def export_checkpoint(
    checkpoint_path: str | Path,
    output: str | Path,
    name: str | None = None,
    version: str = __version__,
    trained_on: str | None = None,
    parity_windows: np.ndarray | None = None,
    tolerance: float = PARITY_TOLERANCE,
    timbre: bool | None = None,
    pooling: str | None = None,
    spread_weight: float = 1.0,
) -> ExportReport:
    """`siamrec export`: checkpoint → encoder → ONNX with metadata and a parity check.

    `timbre` None: the parts the run was configured with. `pooling` None: mean+std when the run measured the
    training tracks' spread, else mean. `spread_weight`: the spread block's weight in mean+std pooling.
    """
    checkpoint = load_checkpoint(str(checkpoint_path))
    encoder = encoder_from_checkpoint(checkpoint, timbre)
    spread = checkpoint_spread(checkpoint, encoder)
    if pooling is None:
        pooling = "mean+std" if spread is not None else "mean"
    backbone = checkpoint["config"]["backbone"]
    return export_encoder(
        encoder,
        output,
        name=name or checkpoint.get("name") or f"siamrec-{backbone}",
        backbone=backbone,
        version=version,
        trained_on=trained_on or str(checkpoint.get("trained_on", "unknown")),
        parity_windows=parity_windows,
        tolerance=tolerance,
        pooling=pooling,
        spread=spread,
        spread_weight=spread_weight,
    )
