"""Training pairs: the crops of one epoch, augmented in DataLoader workers (each crop's randomness from its seed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from siamrec.training.augment import WaveformAugment
from siamrec.training.config import TrainConfig
from siamrec.training.data import (
    PairSampler,
    open_cached,
    parse_pairs,
    playlist_partners,
    random_crop,
)


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
