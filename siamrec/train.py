"""SimSiam pretraining (Chen & He 2021) on audio crops, with the paper's recipe as named defaults.

One epoch = `crops_per_track` random crops of every training track. Waveform augmentation runs in DataLoader
workers; the log-mel front end and the spectrogram augmentation run batched on the training device.
A checkpoint (`last.pt`) is written after every epoch and on Ctrl-C; `resume=True` continues from it and,
because every crop's randomness is derived from (seed, epoch, index) and the RNG states are saved, a resumed
run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from siamrec import constants as C
from siamrec.augment import (
    AUGMENTATIONS,
    EffectSettings,
    MixSettings,
    SpecAugment,
    SpecSettings,
    WaveformAugment,
)
from siamrec.data import (
    PairSampler,
    TrackSet,
    evaluation_windows,
    open_cached,
    parse_pairs,
    playlist_partners,
    random_crop,
)
from siamrec.distill import Teacher, distillation_loss
from siamrec.errors import ConfigError
from siamrec.models import (
    BACKBONES,
    TIMBRE_DIM,
    Encoder,
    ModelConfig,
    SimSiam,
    load_checkpoint,
    part_columns,
    part_scales,
    part_statistics,
    save_checkpoint,
    stats_parts,
)
from siamrec.vectors import pool_windows, window_moments

# The SimSiam recipe: lr = BASE_LR · batch / 256 with cosine decay; the predictor keeps its lr fixed.
BASE_LR = {"sgd": 0.05, "adam": 1e-3}
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
# Collapse monitor: per-dimension std of L2-normalised z, × √D. ≈1 for a spread-out representation
# (what a Gaussian would give), → 0 when every input maps to one vector. Warn below this.
COLLAPSE_WARNING = 0.25
CHECKPOINT_NAME = "last.pt"
VAL_METRICS = (
    "r_precision",
    "r_precision_chance",
    "reward",
    "reward_chance",
    "r_precision_adapted",
    "r_precision_learned",
    "r_precision_mean_pooling",
    "distill_loss",
)
LOG_NAME = "log.csv"


@dataclass
class TrainConfig:
    """Every choice of a run; stored in the checkpoint so `--resume` and the model card can read it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    augment: tuple[str, ...] = AUGMENTATIONS
    pairs: str = "two-crops"
    timbre: bool = True  # ship [learned | log-mel band statistics]; False: the learned embedding alone
    epochs: int = 100
    crops_per_track: int = 4
    batch_size: int = 64
    optimizer: str = "sgd"
    base_lr: float | None = None  # None: BASE_LR[optimizer]
    fix_pred_lr: bool = True
    workers: int = 2
    device: str = "auto"
    seed: int = 0
    val_every: int = 1
    max_steps_per_epoch: int | None = None  # caps an epoch (benchmarks, tests)
    teacher: str | None = None  # musicnn_msd.onnx: distil its embedding into a head that ships as a vector part
    distill_weight: float = 1.0  # the distillation loss's weight beside SimSiam's
    effects: EffectSettings = field(default_factory=EffectSettings)
    mix: MixSettings = field(default_factory=MixSettings)
    spec: SpecSettings = field(default_factory=SpecSettings)

    def __post_init__(self) -> None:
        if self.model.backbone not in BACKBONES:
            raise ConfigError(f"--backbone {self.model.backbone}: choose one of {', '.join(BACKBONES)}")
        if self.model.width < 1:
            raise ConfigError(f"--width must be at least 1, not {self.model.width}")
        parse_pairs(self.pairs)
        if self.optimizer not in BASE_LR:
            raise ConfigError(f"--optimizer {self.optimizer}: choose sgd or adam")
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"--augment: unknown {', '.join(unknown)}; choose from effects, mix, spec")
        for name in ("epochs", "crops_per_track", "val_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError("--batch-size must be at least 2 (BatchNorm and SimSiam need a batch)")
        if self.workers < 0:
            raise ConfigError("--workers must be 0 or more")
        if not self.distill_weight > 0:
            raise ConfigError(f"--distill-weight must be above 0, not {self.distill_weight}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device {self.device}: choose auto, cpu or cuda")

    @property
    def lr(self) -> float:
        base = self.base_lr if self.base_lr is not None else BASE_LR[self.optimizer]
        return base * self.batch_size / 256 if self.optimizer == "sgd" else base

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        nested = {"model": ModelConfig, "effects": EffectSettings, "mix": MixSettings, "spec": SpecSettings}
        values = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        for key, kind in nested.items():
            if isinstance(values.get(key), dict):
                values[key] = kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in values[key].items()})
        values["augment"] = tuple(values.get("augment", ()))
        return cls(**values)


def resolve_device(name: str) -> torch.device:
    """`auto` → cuda when available, else cpu; `cuda` without a GPU is a one-line error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to torch (use --device cpu or auto)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


# ---------------------------------------------------------------------------------------------- data
class PairDataset(Dataset):
    """Item i → two views (float32 `[WINDOW_SAMPLES]`) drawn by a PairSampler from the cached signals.

    The random draws depend only on (seed, epoch, i), so any number of workers gives the same views.
    """

    def __init__(
        self,
        files: Sequence[Path],
        pairs: str,
        augment: WaveformAugment | None,
        crops_per_track: int,
        seed: int,
        playlists: dict[str, list[int]] | None = None,
    ) -> None:
        self.files = list(files)
        weights = parse_pairs(pairs)
        partners = playlist_partners(len(self.files), playlists or {}) if "playlist" in weights else None
        self.sampler = PairSampler(len(self.files), weights, partners)
        self.augment = augment
        self.crops_per_track = crops_per_track
        self.seed = seed
        self.epoch = 0
        self._signals: list[np.ndarray] | None = None  # memory-mapped lazily, once per worker

    def __len__(self) -> int:
        return len(self.sampler) * self.crops_per_track

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_signals": None}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Two views and the indices of the tracks they were cropped from."""
        if self._signals is None:
            self._signals = open_cached(self.files)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        track, other, kind = self.sampler.draw(index, rng)
        first = random_crop(self._signals[track], rng)
        second = first.copy() if kind == "same-crop" else random_crop(self._signals[other], rng)
        if self.augment is not None:
            first, second = self.augment(first, rng), self.augment(second, rng)
        return torch.from_numpy(first), torch.from_numpy(second), track, other


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # two threads per worker spin-wait against each other on a small CPU


def make_loader(dataset: PairDataset, config: TrainConfig, epoch: int, pin: bool) -> DataLoader:
    """This epoch's loader: a seeded shuffle, whole batches only (BatchNorm needs them)."""
    dataset.epoch = epoch
    order = np.random.default_rng([config.seed, epoch, 1]).permutation(len(dataset)).tolist()
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=order,
        drop_last=True,
        num_workers=config.workers,
        worker_init_fn=_worker_init,
        pin_memory=pin,
        persistent_workers=False,
    )


def waveform_augment(config: TrainConfig) -> WaveformAugment | None:
    effects = config.effects if "effects" in config.augment else None
    mix = config.mix if "mix" in config.augment else None
    return WaveformAugment(effects, mix) if effects or mix else None


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


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def window_embeddings(
    model: SimSiam, signals: Sequence[np.ndarray], device: torch.device, max_windows: int, batch: int = 64
) -> tuple[torch.Tensor, np.ndarray]:
    """Raw [learned | timbre | distilled] embeddings of every track's evaluation windows, and each window's
    track index (no distilled part without a distillation head)."""
    windows = [evaluation_windows(s, max_windows) for s in signals]
    owner = np.repeat(np.arange(len(windows)), [w.shape[0] for w in windows])
    stacked = torch.from_numpy(np.concatenate(windows))
    encoder = Encoder(model.frontend, model.backbone, model.backbone_dim, timbre=True, distiller=model.distiller)
    model.eval()
    out = [encoder.raw(chunk.to(device)).float().cpu() for chunk in stacked.split(batch)]
    model.train()
    return torch.cat(out), owner


def feature_stats(embeddings: torch.Tensor, backbone_dim: int) -> dict[str, torch.Tensor]:
    """What the exported Encoder standardises with (measured on the training corpus), per part."""
    mean, std = embeddings.mean(dim=0), embeddings.std(dim=0).clamp_min(1e-6)
    timbre_end = backbone_dim + TIMBRE_DIM
    stats = {
        "mean": mean[:backbone_dim],
        "std": std[:backbone_dim],
        "timbre_mean": mean[backbone_dim:timbre_end],
        "timbre_std": std[backbone_dim:timbre_end],
    }
    if embeddings.shape[1] > timbre_end:
        stats.update(distilled_mean=mean[timbre_end:], distilled_std=std[timbre_end:])
    return stats


def standardised(embeddings: torch.Tensor, stats: dict[str, torch.Tensor], timbre: bool) -> torch.Tensor:
    """Raw window embeddings → what the exported Encoder outputs: each part standardised and scaled.

    `timbre` False: the learned part alone; the distilled part is kept when `stats` has one and `timbre` is on.
    """
    every = stats_parts(stats)
    parts = every if timbre else every[:1]
    mean, std = part_statistics(stats, [name for name, _ in parts])
    columns = part_columns(every)
    keep = torch.from_numpy(np.concatenate([columns[name] for name, _ in parts]))
    return (embeddings[:, keep] - mean) / std * part_scales(parts)


def spread_stats(standard: torch.Tensor, owner: np.ndarray) -> dict[str, torch.Tensor]:
    """Mean and std over tracks of each dimension's spread over a track's windows (for `mean+std` pooling)."""
    _, spread = window_moments(standard.double().numpy(), np.bincount(owner))
    return {
        "spread_mean": torch.from_numpy(spread.mean(axis=0)).float(),
        "spread_std": torch.from_numpy(spread.std(axis=0)).float().clamp_min(1e-6),
    }


def track_vectors(
    embeddings: torch.Tensor, owner: np.ndarray, stats: dict[str, torch.Tensor], timbre: bool, pooling: str = "mean"
) -> np.ndarray:
    """Standardise and scale the parts, pool per track (siamrec.vectors.pool_windows), as siamrec.embed does.

    `owner` (each window's track) must be sorted, as `window_embeddings` returns it. With `timbre` False, the
    learned part alone (its spread statistics are the first dimensions of the whole vector's).
    """
    standard = standardised(embeddings, stats, timbre)
    spread_mean = spread_scale = None
    if pooling == "mean+std":
        dim = standard.shape[1]
        spread_mean = stats["spread_mean"][:dim].double().numpy()
        spread_scale = 1.0 / stats["spread_std"][:dim].double().numpy()
    return pool_windows(standard.numpy(), np.bincount(owner), pooling, spread_mean, spread_scale)


def playlist_metrics(
    vectors: np.ndarray, playlists: dict[str, list[int]], seeds: int = 5, adapted: bool = False
) -> dict[str, float]:
    """R-precision, reward and reward's chance level on masked playlists (siamrec.bench's protocol)."""
    from siamrec.bench import evaluate_vectors

    groups = [np.asarray(v) for v in playlists.values() if len(v) >= 6]
    if len(groups) < 2:
        return {}
    result = evaluate_vectors(vectors, groups, n_masked=5, max_seeds=10, seeds=seeds, adapted=adapted)
    return {k: result[k][0] for k in ("r_precision", "r_precision_chance", "reward", "reward_chance")}


def validation_metrics(
    embeddings: torch.Tensor, owner: np.ndarray, stats: dict[str, torch.Tensor], playlists: dict[str, list[int]],
    timbre: bool,
) -> dict[str, float]:  # fmt: skip
    """The run's vector plain and adapted (mean+std pooling when measured), the same with mean pooling, and
    the learned part alone (what the other parts add)."""
    from siamrec.adapt import TooFewPlaylistsError

    pooling = "mean+std" if "spread_mean" in stats else "mean"
    vectors = track_vectors(embeddings, owner, stats, timbre, pooling)
    row = playlist_metrics(vectors, playlists)
    if not row:
        return row  # fewer than two playlists long enough to mask
    mean_pooled = track_vectors(embeddings, owner, stats, timbre)
    row["r_precision_mean_pooling"] = playlist_metrics(mean_pooled, playlists)["r_precision"]
    learned = track_vectors(embeddings, owner, stats, timbre=False)
    row["r_precision_learned"] = playlist_metrics(learned, playlists)["r_precision"]
    with contextlib.suppress(TooFewPlaylistsError):  # too few validation playlists: no adapted figure
        row["r_precision_adapted"] = playlist_metrics(vectors, playlists, adapted=True)["r_precision"]
    return row


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
        self.teacher = Teacher(config.teacher) if config.teacher else None
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
