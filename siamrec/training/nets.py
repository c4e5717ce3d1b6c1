"""Backbones, the SimSiam wrapper (Chen & He 2021) and the exportable encoder.

Every backbone maps a log-mel batch `[B, 1, N_MELS, frames]` to `[B, D]`; SimSiam takes the backbone as a
parameter, like facebookresearch/simsiam's builder.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn

from siamrec.constants import N_MELS
from siamrec.errors import ModelError
from siamrec.training.features import LogMel

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
BACKBONES = ("cnn", *RESNETS, "transformer")
CHECKPOINT_FORMAT = "siamrec-checkpoint-1"


class ConvNet(nn.Module):
    """A small VGG-style CNN for CPU training and fast CPU inference (`width` sets every layer's size)."""

    def __init__(self, width: int = 32, blocks: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm2d(1)]
        channels = 1
        for i in range(blocks):
            out = width * 2 ** min(i, 3)
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.dim = 2 * channels

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.features(mel)  # B x C x F' x T'
        # mean + max over time and frequency: the max keeps short salient events (a drum hit).
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # B x 2C


def _resnet(name: str) -> tuple[nn.Module, int]:
    net = getattr(torchvision.models, name)(weights=None)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)  # one-channel log-mel
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def _transformer(width: int) -> tuple[nn.Module, int]:
    from siamrec.training.transformer import SpectrogramTransformer

    net = SpectrogramTransformer(embed_dim=width)
    return net, net.dim


def build_backbone(name: str, width: int = 32) -> tuple[nn.Module, int]:
    """Return (backbone, output dimension); `width` sizes `cnn` and `transformer`, resnets are fixed."""
    if name == "cnn":
        net = ConvNet(width=width)
        return net, net.dim
    if name in RESNETS:
        return _resnet(name)
    if name == "transformer":
        return _transformer(width)
    raise ModelError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")


def projection_mlp(in_dim: int, dim: int) -> nn.Sequential:
    """SimSiam's 3-layer projector; the last BatchNorm has no affine, as in the paper."""
    return nn.Sequential(
        nn.Linear(in_dim, dim, bias=False),
        nn.BatchNorm1d(dim),
        nn.ReLU(inplace=True),
        nn.Linear(dim, dim, bias=False),
        nn.BatchNorm1d(dim),
        nn.ReLU(inplace=True),
        nn.Linear(dim, dim, bias=False),
        nn.BatchNorm1d(dim, affine=False),
    )


def prediction_mlp(dim: int, pred_dim: int) -> nn.Sequential:
    """SimSiam's bottleneck predictor h."""
    return nn.Sequential(
        nn.Linear(dim, pred_dim, bias=False),
        nn.BatchNorm1d(pred_dim),
        nn.ReLU(inplace=True),
        nn.Linear(pred_dim, dim),
    )


@dataclass
class ModelConfig:
    """Everything needed to rebuild a SimSiam model from a checkpoint."""

    backbone: str = "cnn"
    width: int = 32
    proj_dim: int = 512
    pred_dim: int = 128
    distill_dim: int = 0  # the teacher's embedding size when distilling (`--teacher`); 0: no distillation head
    extra: dict[str, Any] = field(default_factory=dict)


def distillation_head(in_dim: int, out_dim: int) -> nn.Sequential:
    """A small MLP from the backbone's embedding to a teacher's: its output ships as the `distilled` part."""
    hidden = max(out_dim, in_dim)
    return nn.Sequential(
        nn.Linear(in_dim, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out_dim),
    )


class SimSiam(nn.Module):
    """Front end + backbone f + projector g + predictor h (+ an optional distillation head); the stop-gradient
    lives in `forward`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = LogMel()
        self.backbone, self.backbone_dim = build_backbone(config.backbone, config.width)
        self.projector = projection_mlp(self.backbone_dim, config.proj_dim)
        self.predictor = prediction_mlp(config.proj_dim, config.pred_dim)
        self.distiller = distillation_head(self.backbone_dim, config.distill_dim) if config.distill_dim else None

    def forward(
        self, mel1: torch.Tensor, mel2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Input: two log-mel views `[B, 1, F, T]`. Output: p1, p2, z1.detach(), z2.detach() (`[B, proj_dim]`)."""
        return self.forward_with_features(mel1, mel2)[:4]

    def forward_with_features(
        self, mel1: torch.Tensor, mel2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`forward`, plus the two backbone embeddings (the distillation head reads them)."""
        h1, h2 = self.backbone(mel1), self.backbone(mel2)
        z1, z2 = self.projector(h1), self.projector(h2)
        return self.predictor(z1), self.predictor(z2), z1.detach(), z2.detach(), h1, h2


def timbre_statistics(mel: torch.Tensor) -> torch.Tensor:
    """Log-mel `[B, 1, F, T]` → per-band mean and std over time `[B, 2F]`: the timbre a soundtrack shares."""
    bands = mel.squeeze(1)
    mean = bands.mean(dim=-1)
    std = (bands - mean.unsqueeze(-1)).pow(2).mean(dim=-1).clamp_min(1e-12).sqrt()
    return torch.cat([mean, std], dim=1)


TIMBRE_DIM = 2 * N_MELS


def vector_parts(backbone_dim: int, timbre: bool, distilled_dim: int = 0) -> list[tuple[str, int]]:
    """The named parts of a window embedding, in order: the learned embedding, timbre statistics, the
    distillation head's output."""
    parts = [("learned", backbone_dim)] + ([("timbre", TIMBRE_DIM)] if timbre else [])
    return parts + ([("distilled", distilled_dim)] if distilled_dim else [])


STATS_PREFIX = {"learned": "", "timbre": "timbre_", "distilled": "distilled_"}  # keys of a run's feature_stats


def stats_parts(stats: dict[str, Any]) -> list[tuple[str, int]]:
    """Every part a run's feature statistics describe, in vector order (what its raw embeddings hold)."""
    distilled_dim = len(stats["distilled_mean"]) if "distilled_mean" in stats else 0
    return vector_parts(len(stats["mean"]), "timbre_mean" in stats, distilled_dim)


def part_columns(parts: list[tuple[str, int]]) -> dict[str, np.ndarray]:
    """Column indices of each named part in a vector laid out as `parts`."""
    ends = np.cumsum([size for _, size in parts])
    return {name: np.arange(end - size, end) for (name, size), end in zip(parts, ends, strict=True)}


def part_statistics(stats: dict[str, Any], names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-dimension mean and std of the named parts, concatenated in that order."""
    mean = torch.cat([torch.as_tensor(stats[f"{STATS_PREFIX[n]}mean"]) for n in names])
    std = torch.cat([torch.as_tensor(stats[f"{STATS_PREFIX[n]}std"]) for n in names])
    return mean, std


def part_scales(parts: list[tuple[str, int]]) -> torch.Tensor:
    """1/√(part size) per dimension: after standardisation every part then has the same expected norm, so a
    192-d statistics block neither swamps nor vanishes beside a 256-d embedding."""
    return torch.cat([torch.full((size,), size**-0.5) for _, size in parts])


class Encoder(nn.Module):
    """What ships: waveform `[B, WINDOW_SAMPLES]` → standardised embedding `[B, D]` (front end inside).

    With `timbre`, the vector is [learned embedding | per-band log-mel mean and std], and with a `distiller`
    the distillation head's output follows; each part standardised and scaled by `part_scales`.
    """

    def __init__(
        self,
        frontend: nn.Module,
        backbone: nn.Module,
        backbone_dim: int,
        timbre: bool = False,
        distiller: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.backbone = backbone
        self.timbre = timbre
        self.distiller = distiller
        distilled_dim = distiller[-1].out_features if distiller is not None else 0
        self.parts = vector_parts(backbone_dim, timbre, distilled_dim)
        self.dim = sum(size for _, size in self.parts)
        # Per-dimension statistics measured on a corpus: centring the embedding makes cosine similarity
        # compare what differs between tracks instead of what every track shares.
        self.register_buffer("feature_mean", torch.zeros(self.dim))
        self.register_buffer("feature_std", torch.ones(self.dim))
        self.register_buffer("part_scale", part_scales(self.parts))

    def raw(self, waveform: torch.Tensor) -> torch.Tensor:
        """Unstandardised window embeddings `[B, D]`."""
        mel = self.frontend(waveform)
        learned = self.backbone(mel)
        parts = [learned] + ([timbre_statistics(mel)] if self.timbre else [])
        if self.distiller is not None:
            parts.append(self.distiller(learned))
        return torch.cat(parts, dim=1) if len(parts) > 1 else learned

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return (self.raw(waveform) - self.feature_mean) / self.feature_std * self.part_scale

    @torch.no_grad()
    def set_standardisation(self, embeddings: torch.Tensor) -> None:
        """Measure mean/std from raw embeddings `[N, D]` (`raw`) of a corpus."""
        self.feature_mean.copy_(embeddings.mean(dim=0))
        self.feature_std.copy_(embeddings.std(dim=0).clamp_min(1e-6))


def save_checkpoint(path: str, model: SimSiam, **state: Any) -> None:
    """Write a checkpoint that `encoder_from_checkpoint` can read; `state` adds epoch, optimiser, etc."""
    torch.save(
        {"format": CHECKPOINT_FORMAT, "config": asdict(model.config), "model": model.state_dict(), **state},
        path,
    )


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; a foreign file is a ModelError, not a KeyError."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not a siamrec checkpoint (train one with `siamrec train`)")
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any]) -> SimSiam:
    model = SimSiam(ModelConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    return model


def encoder_from_checkpoint(checkpoint: dict[str, Any], timbre: bool | None = None) -> Encoder:
    """The exportable encoder (front end + backbone, standardised if the checkpoint measured it).

    `timbre` None: as the run was configured (`train_config["timbre"]`; older checkpoints have none).
    """
    model = model_from_checkpoint(checkpoint)
    if timbre is None:
        timbre = bool(checkpoint.get("train_config", {}).get("timbre", False))
    encoder = Encoder(model.frontend, model.backbone, model.backbone_dim, timbre, model.distiller)
    stats = checkpoint.get("feature_stats")
    if stats is not None:
        if timbre and "timbre_mean" not in stats:
            raise ModelError("this checkpoint measured no timbre statistics: export it without the timbre part")
        mean, std = part_statistics(stats, [name for name, _ in encoder.parts])
        encoder.feature_mean.copy_(mean)
        encoder.feature_std.copy_(std)
    return encoder.eval()
