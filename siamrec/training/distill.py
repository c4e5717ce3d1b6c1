"""Distillation from a teacher network (musicnn's MSD model): its track embeddings as training targets.

`siamrec train --teacher musicnn_msd.onnx` adds a head on the backbone that learns to predict, from any crop
of a training track, the teacher's embedding of the whole track (the mean over its evaluation windows, as
siamrec pools a track vector); the head's output ships as the `distilled` part of the vector. The teacher is
far slower than the student (about 10 windows/s on two CPU cores against hundreds), so it runs once per track
before training, never per step. musicnn reads the same log-mel as siamrec's front end (n_fft 512, hop 256,
96 bands, log10(1 + 10⁴·mel)), so it is fed from siamrec's own LogMel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from siamrec import constants as C
from siamrec.bench.baselines import MUSICNN_DIM, MUSICNN_FRAMES, MUSICNN_OUTPUT, MusicnnEncoder
from siamrec.errors import ConfigError, ModelError
from siamrec.training.data import evaluation_windows
from siamrec.training.features import LogMel

BATCH = 32


class Teacher:
    """musicnn on log-mel batches `[B, 1, 96, T]` → its 200-d penultimate embedding."""

    dim = MUSICNN_DIM

    def __init__(self, onnx_path: str | Path) -> None:
        try:
            self.encoder = MusicnnEncoder(onnx_path)
        except ModelError as exc:
            raise ConfigError(f"--teacher: {exc}") from None

    def raw(self, batch: np.ndarray) -> np.ndarray:
        """The teacher's embedding of each window of a `musicnn_batch` (`[B, frames, 96]`)."""
        return self.encoder.session.run([MUSICNN_OUTPUT], {self.encoder.input_name: batch})[0]


def musicnn_batch(mel: torch.Tensor) -> np.ndarray:
    """siamrec's log-mel `[B, 1, 96, T]` as musicnn's input `[B, frames, 96]` (made once for every teacher)."""
    frames = mel.squeeze(1).transpose(1, 2)[:, :MUSICNN_FRAMES]
    return np.ascontiguousarray(frames.detach().float().cpu().numpy())


class Teachers:
    """One or several teachers (musicnn's MSD and MagnaTagATune models hear different things: genres and eras,
    instruments and moods): the head's target is each teacher's z-scored track embedding, side by side."""

    def __init__(self, onnx_paths: Sequence[str | Path]) -> None:
        self.members = [Teacher(path) for path in onnx_paths]
        self.dim = sum(member.dim for member in self.members)

    @torch.no_grad()
    def track_targets(
        self,
        signals: Sequence[np.ndarray],
        frontend: LogMel,
        windows: int = C.WINDOWS_PER_TRACK,
        on_tracks: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Per track, the mean of its windows' teacher embeddings, each dimension z-scored over all windows
        (so every dimension weighs the same in the loss): `[tracks, dim]` float32, the teachers side by side.
        A few tracks at a time (memory stays bounded whatever the corpus), their log-mel computed once for
        every teacher."""
        window_means, squares, count = [], np.zeros(self.dim), 0
        sums = np.zeros(self.dim)
        step = max(1, BATCH // windows)
        for start in range(0, len(signals), step):
            group = [evaluation_windows(s, windows) for s in signals[start : start + step]]
            batch = musicnn_batch(frontend(torch.from_numpy(np.concatenate(group))))
            outputs = np.concatenate([m.raw(batch) for m in self.members], axis=1).astype(np.float64)
            offsets = np.cumsum([0] + [len(w) for w in group])
            window_means += [outputs[a:b].mean(axis=0) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
            sums += outputs.sum(axis=0)
            squares += (outputs**2).sum(axis=0)
            count += len(outputs)
            if on_tracks is not None:
                on_tracks(len(group))
        mean = sums / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        # z-scoring is affine, so the mean of z-scored windows is the z-scored mean of the windows.
        return ((np.stack(window_means) - mean) / np.maximum(std, 1e-6)).astype(np.float32)


def distillation_loss(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − cosine between the head's output and the teacher's standardised embedding (0 when they agree):
    cosine, as the store compares vectors."""
    return 1.0 - F.cosine_similarity(student, target.to(student.device), dim=1).mean()
