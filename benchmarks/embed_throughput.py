"""Embedding throughput on real files: decode alone, torch inference, onnxruntime inference; and with
`--pipeline`, whole `siamrec add-track` processes beside the bliss peer on the same files.

    python benchmarks/embed_throughput.py ~/data/siamrec-dev/audio --tracks 64 --batch-sizes 16,64,256
    python benchmarks/embed_throughput.py ~/data/siamrec-dev/audio --tracks 60 --pipeline --repeats 5 \
        --bliss-python /tmp/blissenv/bin/python          # a venv with `pip install bliss-audio`
                                                         # (==0.1.11 where the CPU lacks AVX-512)

The stages run on the same tracks in one run. Inference figures exclude decoding (windows are decoded
once up front) so each line measures one thing; "x real time" is audio duration / wall time. The pipeline
figures are wall time of the process, start-up included: the shipped model (or --model), a fresh store, the
files added once, then added again (the re-add skips unchanged files); `--ray-actors N` adds a run through
`add-track --ray local` with N actors. Each figure is the median of `--repeats` runs. bliss (bliss-rs's
Python binding, `bliss_audio.Song`) analyses each file in a pool of one process per core. "CPU s" is the user +
system time of each process and its children (median): on a machine others load, it moves far less than wall
time, so compare runs by it when the load changed between them (the JSON line also gives the load average).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from siamrec.audio import track_windows
from siamrec.embed import TrackEncoder
from siamrec.library import collect_audio_files
from siamrec.training.export.onnx_export import export_encoder
from siamrec.training.nets import Encoder, ModelConfig, SimSiam, encoder_from_checkpoint, load_checkpoint


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


BLISS_SCRIPT = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
import bliss_audio
def analyse(path):
    return len(bliss_audio.Song(path).analysis)
if __name__ == "__main__":
    files = sys.argv[2:]
    start = time.perf_counter()
    with ProcessPoolExecutor(int(sys.argv[1])) as pool:
        sizes = list(pool.map(analyse, files))
    print(time.perf_counter() - start, sizes[0])
"""


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}…: {done.stderr.strip().splitlines()[-1:]}")
    return took


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of every finished child process so far, their own children included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median_of(repeats: int, run: Callable[[int], float]) -> tuple[float, float]:
    """The median wall time of `repeats` runs (one run on a 2-core machine moves by ±10 %), and the median CPU
    seconds they took: on a machine others load, CPU time moves far less than wall time."""
    walls, cpus = [], []
    for i in range(repeats):
        before = _children_cpu_s()
        walls.append(run(i))
        cpus.append(_children_cpu_s() - before)
    return statistics.median(walls), statistics.median(cpus)


def pipeline(
    files: list[Path], audio_s: float, model: Path | None, bliss_python: str | None, ray_actors: int, repeats: int
) -> None:
    """Whole processes on the same files: add-track (first and re-add), on Ray, and bliss; medians of runs."""
    table = Table(
        "run", "seconds", "tracks/s", "x real time", "CPU s",
        title=f"{len(files)} tracks, processes, start-up included, median of {repeats}",
    )  # fmt: skip
    siamrec = [sys.executable, "-m", "siamrec", "add-track", "--json", *map(str, files)]
    rows: list[tuple[str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ}
        if model is not None:
            env["SIAMREC_MODEL"] = str(model)

        def add(i: int, extra: tuple[str, ...] = ()) -> float:
            """Into store i: empty for the first add, then the one that first add filled (the re-add)."""
            return _timed([*siamrec, *extra], {**env, "SIAMREC_HOME": str(Path(tmp) / f"home-{'-'.join(extra)}-{i}")})

        rows.append(("siamrec add-track", _median_of(repeats, add)))
        rows.append(("siamrec add-track again (re-add)", _median_of(repeats, add)))
        if ray_actors:
            ray = ("--ray", "local", "--ray-actors", str(ray_actors))
            rows.append(
                (f"siamrec add-track --ray local ({ray_actors} actors)", _median_of(repeats, lambda i: add(i, ray)))
            )
    if bliss_python:
        workers = os.cpu_count() or 1
        features: list[str] = []

        def bliss(_: int) -> float:
            start = time.perf_counter()
            out = subprocess.run([bliss_python, "-c", BLISS_SCRIPT, str(workers), *map(str, files)],
                                 capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            features[:] = out[1:2]
            return time.perf_counter() - start

        took = _median_of(repeats, bliss)
        rows.append((f"bliss ({workers} processes, {features[0]} features)", took))
    for name, (took, cpu) in rows:
        table.add_row(name, f"{took:.2f}", f"{len(files) / took:.1f}", f"{audio_s / took:.0f}", f"{cpu:.2f}")
    Console().print(table)
    print(json.dumps({"tracks": len(files), "audio_s": round(audio_s, 1), "repeats": repeats,
                      "load_1min": os.getloadavg()[0],
                      "seconds": {name: round(took, 3) for name, (took, _) in rows},
                      "cpu_seconds": {name: round(cpu, 3) for name, (_, cpu) in rows}}))  # fmt: skip


@click.command()
@click.argument("audio", type=click.Path(exists=True, path_type=Path))
@click.option("--tracks", default=64, show_default=True, help="How many tracks to use.")
@click.option("--batch-sizes", default="16,64,256", show_default=True)
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), help="Default: random weights.")
@click.option("--backbone", default="cnn", show_default=True)
@click.option("--width", default=32, show_default=True)
@click.option("--threads", default=0, help="torch/onnxruntime threads (0 = their default).")
@click.option(
    "--pipeline",
    "pipeline_only",
    is_flag=True,
    help="Time whole add-track processes (and bliss) instead of the stages.",
)
@click.option("--model", type=click.Path(exists=True, path_type=Path), help="--pipeline: ONNX model [shipped].")
@click.option("--bliss-python", help="--pipeline: a Python with bliss-audio installed, to run bliss beside.")
@click.option("--ray-actors", default=0, help="--pipeline: also run add-track --ray local with this many actors.")
@click.option("--repeats", default=3, show_default=True, help="--pipeline: runs of each, the median is reported.")
def main(
    audio: Path, tracks: int, batch_sizes: str, checkpoint: Path | None, backbone: str, width: int, threads: int,
    pipeline_only: bool, model: Path | None, bliss_python: str | None, ray_actors: int, repeats: int,
) -> None:  # fmt: skip
    files, _ = collect_audio_files([audio])
    files = files[:: max(1, len(files) // tracks)][:tracks]
    if pipeline_only:
        import soundfile as sf

        audio_s = sum(sf.info(str(f)).duration for f in files)
        pipeline(files, audio_s, model, bliss_python, ray_actors, repeats)
        return
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
