"""A tiny random encoder exported to ONNX: for plumbing tests and benchmarks, never for quality."""

from __future__ import annotations

from pathlib import Path


def tiny_encoder_onnx(path: Path, name: str = "tiny", width: int = 4, seed: int = 0) -> Path:
    """A randomly initialised small encoder exported with parity: for plumbing tests, never for quality."""
    import torch

    from siamrec.export.onnx_export import export_encoder
    from siamrec.models import Encoder, ModelConfig, SimSiam

    torch.manual_seed(seed)
    model = SimSiam(ModelConfig(backbone="cnn", width=width)).eval()
    export_encoder(Encoder(model.frontend, model.backbone, model.backbone_dim), path, name=name, backbone="cnn")
    return path
