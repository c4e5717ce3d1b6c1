"""A training run's choices (TrainConfig), the SimSiam recipe's named defaults, and the device to train on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from siamrec.errors import ConfigError
from siamrec.training.augment import (
    AUGMENTATIONS,
    EffectSettings,
    MixSettings,
    SpecSettings,
)
from siamrec.training.data import parse_pairs
from siamrec.training.nets import BACKBONES, ModelConfig

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
    teachers: tuple[str, ...] = ()  # musicnn ONNX files: distil their embeddings into a head that ships as a part
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
        old_teacher = data.get("teacher")  # checkpoints before several teachers named one
        values["teachers"] = tuple(values.get("teachers", ())) or ((old_teacher,) if old_teacher else ())
        return cls(**values)


def resolve_device(name: str) -> torch.device:
    """`auto` → cuda when available, else cpu; `cuda` without a GPU is a one-line error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to torch (use --device cpu or auto)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
