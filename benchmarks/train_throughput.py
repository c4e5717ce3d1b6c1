"""Crops per second for (a) data loading + waveform augmentation and (b) the SimSiam training step.

    python benchmarks/train_throughput.py --corpus ~/data/siamrec-dev --cache ~/.siamrec/cache/decoded
    python benchmarks/train_throughput.py            # synthetic audio, no corpus needed
    python benchmarks/train_throughput.py --width 16 --augment spec --distill   # + the step with a distillation head

A "crop" is one 3 s view; a training pair is two crops. Run it with nothing else busy for stable figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from siamrec import constants as C
from siamrec.training.augment import parse_augment
from siamrec.training.config import TrainConfig
from siamrec.training.data import build_cache, corpus_tracks
from siamrec.training.loader import PairDataset, make_loader, waveform_augment
from siamrec.training.nets import ModelConfig
from siamrec.training.trainer import Trainer, train_step


def synthetic_files(folder: Path, count: int = 16, seconds: float = 30.0) -> list[Path]:
    """Cached-signal files of chords + noise, so the benchmark runs without a corpus."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * C.SAMPLE_RATE)) / C.SAMPLE_RATE
    files = []
    for i in range(count):
        signal = 0.2 * np.sin(2 * np.pi * (110 + 20 * i) * t) + 0.05 * rng.standard_normal(t.size)
        files.append(folder / f"{i}.npy")
        np.save(files[-1], signal.astype(np.float16))
    return files


def loading_rate(files: list[Path], config: TrainConfig, batches: int) -> float:
    """Crops/s delivered by the DataLoader (workers decode nothing: they crop the cache and augment)."""
    dataset = PairDataset(files, config.pairs, waveform_augment(config), 64, config.seed)
    loader = iter(make_loader(dataset, config, 0, pin=False))
    next(loader)  # worker start-up is not throughput
    started = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return 2 * batches * config.batch_size / (time.perf_counter() - started)


def step_rate(files: list[Path], config: TrainConfig, steps: int, distill_dim: int = 0) -> float:
    """Crops/s through front end + spectrogram augmentation + forward/backward/update on one fixed batch.

    `distill_dim`: with a distillation head of that size and random teacher targets (the teacher itself runs
    once per track before training, not per step)."""
    with tempfile.TemporaryDirectory() as out:
        config.model.distill_dim = distill_dim
        trainer = Trainer(config, out, files)
        tracks = torch.arange(config.batch_size) % len(files)
        crops = torch.randn(config.batch_size, C.WINDOW_SAMPLES) * 0.1
        views = (crops, crops, tracks, tracks) if distill_dim else (crops, crops)
        targets = torch.randn(len(files), distill_dim) if distill_dim else None
        args = (trainer.model, trainer.spec, trainer.optimizer, trainer.scaler, views, trainer.device, targets)
        train_step(*args)  # warm-up (allocations, cuDNN autotune)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            train_step(*args)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        return 2 * steps * config.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("~/.siamrec/cache/decoded").expanduser())
    parser.add_argument("--backbone", default="cnn")
    parser.add_argument("--width", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", default="all")
    parser.add_argument("--pairs", default="two-crops")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training step")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--distill", action="store_true", help="also the step with a 200-d distillation head")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.corpus is not None:
            _, files, _ = build_cache(corpus_tracks(args.corpus), args.cache, workers=args.workers)
        else:
            files = synthetic_files(Path(tmp))
        for width in args.width:
            config = TrainConfig(
                model=ModelConfig(args.backbone, width), batch_size=args.batch_size,
                augment=parse_augment(args.augment), pairs=args.pairs, workers=args.workers, device=args.device,
            )  # fmt: skip
            load = loading_rate(files, config, args.batches)
            step = step_rate(files, config, args.steps)
            print(f"{args.backbone} width {width} batch {args.batch_size} augment {args.augment} "
                  f"({args.workers} workers, {args.threads} threads, {config.device}): "
                  f"loading+augmentation {load:7.1f} crops/s   training step {step:7.1f} crops/s")  # fmt: skip
            if args.distill:
                distilled = step_rate(files, config, args.steps, distill_dim=200)
                print(f"  with a 200-d distillation head: training step {distilled:7.1f} crops/s")


if __name__ == "__main__":
    main()
