"""A patch-based spectrogram transformer (AST/ViT style) built from timm's VisionTransformer.

timm supplies the network; this module only adapts a one-channel log-mel `[B, 1, N_MELS, frames]` to it:
the time axis is padded to a whole number of patches, and the class token's output is the embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamrec import constants as C


class SpectrogramTransformer(nn.Module):
    """Log-mel `[B, 1, N_MELS, MEL_FRAMES]` → `[B, embed_dim]` (16×16 patches, `depth` blocks)."""

    def __init__(self, embed_dim: int = 192, depth: int = 6, patch: int = 16, heads: int | None = None) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        heads = heads or max(1, embed_dim // 64)
        if embed_dim % heads:
            heads = 1
        self.frames = -(-C.MEL_FRAMES // patch) * patch  # 188 → 192
        self.vit = VisionTransformer(
            img_size=(C.N_MELS, self.frames),
            patch_size=patch,
            in_chans=1,
            num_classes=0,  # no head: forward returns the pooled class token
            embed_dim=embed_dim,
            depth=depth,
            num_heads=heads,
        )
        self.dim = embed_dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        mel = F.pad(mel, (0, self.frames - mel.shape[-1]))  # B x 1 x F x frames
        return self.vit(mel)  # B x D
