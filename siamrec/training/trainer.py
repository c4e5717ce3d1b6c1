"""SimSiam pretraining (Chen & He 2021) on audio crops, with the paper's recipe as named defaults.

One epoch = `crops_per_track` random crops of every training track. Waveform augmentation runs in DataLoader
workers; the log-mel front end and the spectrogram augmentation run batched on the training device.
A checkpoint (`last.pt`) is written after every epoch and on Ctrl-C; `resume=True` continues from it and,
because every crop's randomness is derived from (seed, epoch, index) and the RNG states are saved, a resumed
run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from siamrec import constants as C
from siamrec.errors import ConfigError
from siamrec.training.augment import SpecAugment
from siamrec.training.config import (
    CHECKPOINT_NAME,
    LOG_NAME,
    MOMENTUM,
    VAL_METRICS,
    WEIGHT_DECAY,
    TrainConfig,
    resolve_device,
)
from siamrec.training.data import TrackSet, open_cached
from siamrec.training.distill import Teachers, distillation_loss
from siamrec.training.loader import PairDataset, make_loader, waveform_augment
from siamrec.training.nets import (
    SimSiam,
    load_checkpoint,
    save_checkpoint,
)
from siamrec.training.validation import (
    feature_stats,
    spread_stats,
    standardised,
    validation_metrics,
    window_embeddings,
)


# ---------------------------------------------------------------------------------------------- model
def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Symmetric negative cosine (paper Eq. 1–2); z arrive detached (the stop-gradient). Minimum −1."""
    return -0.5 * (F.cosine_similarity(p1, z2, dim=1).mean() + F.cosine_similarity(p2, z1, dim=1).mean())


def collapse_std(z: torch.Tensor) -> float:
    """Per-dimension std of L2-normalised outputs, mean over dimensions, × √D (≈1 healthy, 0 collapsed)."""
    z = F.normalize(z.float(), dim=1)
    return float(z.std(dim=0).mean() * math.sqrt(z.shape[1]))


def make_optimizer(model: SimSiam, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (or Adam) with the predictor in its own group, whose lr the cosine schedule leaves alone."""
    heads = [*model.projector.parameters(), *(model.distiller.parameters() if model.distiller is not None else ())]
    groups = [
        {"params": [*model.backbone.parameters(), *heads], "fix_lr": False},
        {"params": model.predictor.parameters(), "fix_lr": config.fix_pred_lr},
    ]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=WEIGHT_DECAY)
    return torch.optim.SGD(groups, lr=config.lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, progress: float) -> float:
    """Cosine decay over the whole run (`progress` in [0, 1]); returns the scheduled lr."""
    lr = config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    for group in optimizer.param_groups:
        group["lr"] = config.lr if group["fix_lr"] else lr
    return lr


def train_step(
    model: SimSiam,
    spec: SpecAugment | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    views: Sequence[torch.Tensor],
    device: torch.device,
    teacher_targets: torch.Tensor | None = None,
    distill_weight: float = 1.0,
) -> tuple[float, float, float]:
    """One SimSiam update on a batch of waveform pairs; returns (SimSiam loss, collapse figure, distillation
    loss or NaN). `views`: (x1, x2[, track1, track2]); with `teacher_targets` (`[tracks, D]`) the head learns
    to predict each view's track target from the augmented view."""
    x1, x2 = (v.to(device, non_blocking=True) for v in views[:2])  # B x WINDOW_SAMPLES
    targets = None
    if teacher_targets is not None:
        targets = torch.cat([teacher_targets[views[2]], teacher_targets[views[3]]])
    with torch.no_grad():
        m1, m2 = model.frontend(x1), model.frontend(x2)  # B x 1 x F x T, fp32: the STFT stays exact
        if spec is not None:
            m1, m2 = spec(m1), spec(m2)
    with torch.autocast(device.type, enabled=device.type == "cuda"):
        p1, p2, z1, z2, h1, h2 = model.forward_with_features(m1, m2)
        loss = simsiam_loss(p1.float(), p2.float(), z1.float(), z2.float())
        distill = torch.full((), float("nan"))
        if targets is not None and model.distiller is not None:
            students = model.distiller(torch.cat([h1, h2])).float()
            distill = distillation_loss(students, targets)
            total = loss + distill_weight * distill
        else:
            total = loss
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach()), collapse_std(z1), float(distill.detach())



# ---------------------------------------------------------------------------------------------- run
def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler, `kill`) takes the Ctrl-C path: save a usable checkpoint, then stop."""
    raise KeyboardInterrupt


@dataclass
class RunState:
    """What a checkpoint restores besides the weights."""

    epoch: int = 0  # epochs completed
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stats: dict[str, torch.Tensor] | None = None
    teacher_targets: torch.Tensor | None = None  # `[training tracks, teacher dim]`, computed once per run


class Trainer:
    """Owns the model, optimiser, data and run folder of one training run."""

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path,
        train_files: Sequence[Path],
        val: tuple[TrackSet, Sequence[Path]] | None = None,
        trained_on: str = "unknown",
        extra: dict[str, Any] | None = None,
        train_playlists: dict[str, list[int]] | None = None,
    ) -> None:
        """`train_playlists` (playlist → indices into `train_files`) feeds `--pairs playlist`."""
        if len(train_files) < 2:
            raise ConfigError("training needs at least two decodable tracks")
        self.config = config
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.teacher = Teachers(config.teachers) if config.teachers else None
        if self.teacher is not None and config.model.distill_dim != self.teacher.dim:
            config.model.distill_dim = self.teacher.dim
        self.model = SimSiam(config.model).to(self.device)
        self.optimizer = make_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.device.type == "cuda")
        self.spec = SpecAugment(config.spec).to(self.device) if "spec" in config.augment else None
        self.dataset = PairDataset(
            train_files, config.pairs, waveform_augment(config), config.crops_per_track, config.seed,
            train_playlists,
        )  # fmt: skip
        self.train_signals = open_cached(list(train_files))
        self.val = (val[0], open_cached(list(val[1]))) if val is not None and val[0].playlists else None
        self.trained_on = trained_on
        self.extra = extra or {}
        self.state = RunState()

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    def steps_per_epoch(self) -> int:
        steps = len(self.dataset) // self.config.batch_size
        if self.config.max_steps_per_epoch is not None:
            steps = min(steps, self.config.max_steps_per_epoch)
        if steps < 1:
            raise ConfigError(
                f"{len(self.dataset)} crops per epoch do not fill one batch of {self.config.batch_size}: "
                "lower --batch-size or raise --crops-per-track"
            )
        return steps

    def save(self) -> None:
        """Write `last.pt` atomically: an interrupted write never replaces a good checkpoint."""
        tmp = self.checkpoint_path.with_suffix(".tmp")
        save_checkpoint(
            str(tmp),
            self.model,
            epoch=self.state.epoch,
            step=self.state.step,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            train_config=self.config.to_dict(),
            history=self.state.history,
            feature_stats=self.state.stats,
            teacher_targets=self.state.teacher_targets,
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            trained_on=self.trained_on,
            **self.extra,
        )
        tmp.replace(self.checkpoint_path)

    def resume(self) -> None:
        """Continue from `last.pt` in the run folder (the run's own config wins over the new one's)."""
        if not self.checkpoint_path.is_file():
            raise ConfigError(f"--resume: no checkpoint at {self.checkpoint_path}")
        checkpoint = load_checkpoint(str(self.checkpoint_path))
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if checkpoint.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        self.state = RunState(
            checkpoint["epoch"],
            checkpoint["step"],
            list(checkpoint["history"]),
            checkpoint.get("feature_stats"),
            checkpoint.get("teacher_targets"),
        )

    def validate(self) -> dict[str, float]:
        """Measure the standardisation on the training tracks, then playlist metrics on held-out ones."""
        embeddings, owner = window_embeddings(self.model, self.train_signals, self.device, C.WINDOWS_PER_TRACK)
        stats = feature_stats(embeddings, self.model.backbone_dim)
        stats.update(spread_stats(standardised(embeddings, stats, self.config.timbre), owner))
        self.state.stats = stats
        if self.val is None:
            return {}
        tracks, signals = self.val
        val_embeddings, owner = window_embeddings(self.model, signals, self.device, C.WINDOWS_PER_TRACK)
        return validation_metrics(val_embeddings, owner, self.state.stats, tracks.playlists, self.config.timbre)

    def _log(self, row: dict[str, float]) -> None:
        path = self.out / LOG_NAME
        columns = ["epoch", "step", "loss", "collapse", "lr", "seconds", *VAL_METRICS]
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def prepare_teacher(self, on_tracks: Callable[[int], None] | None = None) -> None:
        """The teacher's target for every training track (once per run: the checkpoint keeps them)."""
        assert self.teacher is not None
        targets = self.teacher.track_targets(self.train_signals, self.model.frontend.cpu(), on_tracks=on_tracks)
        self.model.frontend.to(self.device)
        self.state.teacher_targets = torch.from_numpy(targets)

    def run_epoch(self, on_step: Callable[[float, float], None] | None = None) -> dict[str, float]:
        """Train one epoch; returns its mean loss, mean collapse figure and final lr."""
        epoch, steps = self.state.epoch, self.steps_per_epoch()
        total = self.config.epochs * steps
        if self.teacher is not None and self.state.teacher_targets is None:
            self.prepare_teacher()
        loader = make_loader(self.dataset, self.config, epoch, pin=self.device.type == "cuda")
        losses, collapses, distills, lr, started = [], [], [], 0.0, time.perf_counter()
        self.model.train()
        for index, views in enumerate(loader):
            if index >= steps:
                break
            lr = set_lr(self.optimizer, self.config, self.state.step / total)
            loss, collapse, distill = train_step(
                self.model, self.spec, self.optimizer, self.scaler, views, self.device, self.state.teacher_targets,
                self.config.distill_weight,
            )  # fmt: skip
            losses.append(loss)
            distills.append(distill)
            collapses.append(collapse)
            self.state.step += 1
            if on_step is not None:
                on_step(loss, collapse)
        return {
            "epoch": epoch + 1,
            "step": self.state.step,
            "loss": float(np.mean(losses)),
            "collapse": float(np.mean(collapses)),
            **({"distill_loss": float(np.mean(distills))} if self.teacher is not None else {}),
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }

    def fit(
        self,
        on_step: Callable[[float, float], None] | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ) -> list[dict[str, float]]:
        """Train the remaining epochs; Ctrl-C (or SIGTERM) saves the weights so far (resume restarts that epoch)."""
        on_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
        try:
            while self.state.epoch < self.config.epochs:
                row = self.run_epoch(on_step)
                self.state.epoch += 1
                if self.state.epoch % self.config.val_every == 0 or self.state.epoch == self.config.epochs:
                    row.update(self.validate())
                self.state.history.append(row)
                self._log(row)
                self.save()
                if on_epoch is not None:
                    on_epoch(row)
        except KeyboardInterrupt:
            self.state.step = self.state.epoch * self.steps_per_epoch()  # the unfinished epoch re-runs
            self.save()
            raise
        finally:
            if on_main_thread:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        return self.state.history
