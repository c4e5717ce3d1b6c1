"""`siamrec export`: a training checkpoint to one ONNX file, parity checked."""

from __future__ import annotations

from pathlib import Path

import click

from siamrec.audio import track_windows
from siamrec.cli.common import (
    json_option,
    onnx_output_option,
    print_json,
    stdout,
)
from siamrec.errors import SiamrecError
from siamrec.library import collect_audio_files
from siamrec.vectors import MAX_SPREAD_WEIGHT, MIN_SPREAD_WEIGHT


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@onnx_output_option("The ONNX file to write (one file, weights inside).")
@click.option("--name", help="Model name stored in the file (default from the checkpoint).")
@click.option("--trained-on", help="What it was trained on (default from the checkpoint).")
@click.option(
    "--parity-audio",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Audio files or folders for the parity check (default: synthetic music-like signals).",
)
@click.option(
    "--pooling",
    type=click.Choice(["mean", "mean+std"]),
    help="How window embeddings become a track vector (default: mean+std when the run measured it, else mean).",
)
@click.option(
    "--spread-weight",
    type=click.FloatRange(MIN_SPREAD_WEIGHT, MAX_SPREAD_WEIGHT),
    default=1.0,
    show_default=True,
    help="mean+std: the spread's weight beside the mean (benchmarks/spread_weight.py measures a choice).",
)
@json_option
def export(
    checkpoint: Path,
    output: Path,
    name: str | None,
    trained_on: str | None,
    parity_audio: tuple[Path, ...],
    pooling: str | None,
    spread_weight: float,
    as_json: bool,
) -> None:
    """Export a training checkpoint to one ONNX file, checked against torch."""
    try:
        from siamrec.training.export.onnx_export import export_checkpoint
    except ModuleNotFoundError as exc:
        raise SiamrecError(
            f"export needs the training stack ({exc.name} missing): pip install 'siamrec[train]'"
        ) from exc
    import numpy as np

    windows = None
    if parity_audio:
        files, _ = collect_audio_files(parity_audio)
        windows = np.concatenate([track_windows(f, 2)[0] for f in files[:16]]) if files else None
    report = export_checkpoint(
        checkpoint,
        output,
        name=name,
        trained_on=trained_on,
        parity_windows=windows,
        pooling=pooling,
        spread_weight=spread_weight,
    )
    if as_json:
        print_json(report.__dict__)
    else:
        stdout.print(
            f"exported {report.name} (dim {report.dim}) to {report.path}: {report.size_bytes / 1e6:.1f} MB, "
            f"parity max |torch - onnx| = {report.max_abs_diff:.2e} over {report.parity_windows} windows"
        )
