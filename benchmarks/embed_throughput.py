"""Embedding throughput on real files: decode alone, torch inference, onnxruntime inference.

    python benchmarks/embed_throughput.py ~/data/siamrec-dev/audio --tracks 64 --batch-sizes 16,64,256

All three stages run on the same tracks in one run. Inference figures exclude decoding (windows are decoded
once up front) so each line measures one thing; "x real time" is audio duration / wall time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from siamrec.audio import track_windows
from siamrec.embed import TrackEncoder
from siamrec.export.onnx_export import export_encoder
from siamrec.library import collect_audio_files
from siamrec.models import Encoder, ModelConfig, SimSiam, encoder_from_checkpoint, load_checkpoint


def _encoder(checkpoint: Path | None, backbone: str, width: int) -> Encoder:
    if checkpoint is not None:
        return encoder_from_checkpoint(load_checkpoint(str(checkpoint)))
    model = SimSiam(ModelConfig(backbone=backbone, width=width)).eval()
    return Encoder(model.frontend, model.backbone, model.backbone_dim).eval()


def _torch_vectors(encoder: Encoder, windows: list[np.ndarray], batch: int) -> None:
    stacked = torch.from_numpy(np.concatenate(windows))
    with torch.inference_mode():
        for start in range(0, len(stacked), batch):
            encoder(stacked[start : start + batch])


@click.command()
@click.argument("audio", type=click.Path(exists=True, path_type=Path))
@click.option("--tracks", default=64, show_default=True, help="How many tracks to use.")
@click.option("--batch-sizes", default="16,64,256", show_default=True)
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), help="Default: random weights.")
@click.option("--backbone", default="cnn", show_default=True)
@click.option("--width", default=32, show_default=True)
@click.option("--threads", default=0, help="torch/onnxruntime threads (0 = their default).")
def main(
    audio: Path, tracks: int, batch_sizes: str, checkpoint: Path | None, backbone: str, width: int, threads: int
) -> None:
    files, _ = collect_audio_files([audio])
    files = files[:: max(1, len(files) // tracks)][:tracks]
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    decoded = [track_windows(f) for f in files]
    decode_s = time.perf_counter() - start
    windows = [w for w, _ in decoded]
    audio_s = sum(info.duration_s for _, info in decoded)
    n_windows = sum(len(w) for w in windows)

    table = Table(
        "stage",
        "batch",
        "tracks/s",
        "windows/s",
        "x real time",
        title=(
            f"{len(files)} tracks, {n_windows} windows, {audio_s / 60:.1f} min of audio ({backbone}, width {width})"
        ),
    )
    table.add_row(
        "decode (soundfile + soxr)",
        "-",
        f"{len(files) / decode_s:.1f}",
        f"{n_windows / decode_s:.0f}",
        f"{audio_s / decode_s:.0f}",
    )
    encoder = _encoder(checkpoint, backbone, width)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_encoder(encoder, Path(tmp) / "m.onnx", name="bench", backbone=backbone).path
        for batch in (int(b) for b in batch_sizes.split(",")):
            for stage, run in (
                ("torch eager", lambda b=batch: _torch_vectors(encoder, windows, b)),
                ("onnxruntime", lambda b=batch: TrackEncoder(onnx_path, "cpu", batch_size=b).track_vectors(windows)),
            ):
                run()  # warm-up (allocations, graph optimisation)
                start = time.perf_counter()
                run()
                took = time.perf_counter() - start
                table.add_row(
                    stage, str(batch), f"{len(files) / took:.1f}", f"{n_windows / took:.0f}", f"{audio_s / took:.0f}"
                )
    Console().print(table)


if __name__ == "__main__":
    main()
