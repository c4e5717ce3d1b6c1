"""Validation figures of a run: window embeddings, the exported vector's statistics, and bench's protocol on them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from siamrec.training.data import evaluation_windows
from siamrec.training.nets import (
    TIMBRE_DIM,
    Encoder,
    SimSiam,
    part_columns,
    part_scales,
    part_statistics,
    stats_parts,
)
from siamrec.vectors import pool_windows, window_moments


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


def masked_playlist_scores(
    vectors: np.ndarray, playlists: dict[str, list[int]], seeds: int = 5, adapted: bool = False
) -> dict[str, float]:
    """R-precision, reward and reward's chance level on masked playlists (siamrec.bench's protocol)."""
    from siamrec.bench.protocol import evaluate_vectors

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
    from siamrec.whitening import TooFewPlaylistsError

    pooling = "mean+std" if "spread_mean" in stats else "mean"
    vectors = track_vectors(embeddings, owner, stats, timbre, pooling)
    row = masked_playlist_scores(vectors, playlists)
    if not row:
        return row  # fewer than two playlists long enough to mask
    mean_pooled = track_vectors(embeddings, owner, stats, timbre)
    row["r_precision_mean_pooling"] = masked_playlist_scores(mean_pooled, playlists)["r_precision"]
    learned = track_vectors(embeddings, owner, stats, timbre=False)
    row["r_precision_learned"] = masked_playlist_scores(learned, playlists)["r_precision"]
    with contextlib.suppress(TooFewPlaylistsError):  # too few validation playlists: no adapted figure
        row["r_precision_adapted"] = masked_playlist_scores(vectors, playlists, adapted=True)["r_precision"]
    return row
