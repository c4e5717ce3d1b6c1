"""The log-mel front end as a torch module, so it trains on the GPU and exports inside the ONNX graph."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from siamrec import constants as C


class LogMel(nn.Module):
    """Waveform `[B, samples]` at 16 kHz → log-mel `[B, 1, N_MELS, frames]`.

    Uses log10(1 + s·mel) instead of AmplitudeToDB: its top_db clamp is computed over the whole batch,
    which would make one window's features depend on its batch-mates.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=C.SAMPLE_RATE,
            n_fft=C.N_FFT,
            hop_length=C.HOP_LENGTH,
            n_mels=C.N_MELS,
            f_min=C.F_MIN,
            f_max=C.F_MAX,
            power=2.0,
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mel = self.mel(waveform)  # B x F x T
        return torch.log10(1.0 + C.LOG_MEL_SCALE * mel).unsqueeze(1)  # B x 1 x F x T
