"""Every backbone gives its declared embedding size; SimSiam and the checkpoint helpers round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from siamrec import constants as C
from siamrec.errors import ModelError
from siamrec.training.nets import (
    ModelConfig,
    SimSiam,
    build_backbone,
    encoder_from_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)

torch.set_num_threads(1)
MEL = (2, 1, C.N_MELS, C.MEL_FRAMES)


@pytest.mark.parametrize(
    ("name", "width", "dim"),
    [
        ("cnn", 4, 64),  # 2 × (width · 8): mean and max pooling of the last block
        ("resnet18", 0, 512),
        ("resnet34", 0, 512),
        pytest.param("resnet50", 0, 2048, marks=pytest.mark.slow),
        pytest.param("resnet101", 0, 2048, marks=pytest.mark.slow),
        pytest.param("resnet152", 0, 2048, marks=pytest.mark.slow),
        ("transformer", 32, 32),
    ],
)
def test_backbone_gives_its_declared_size(name: str, width: int, dim: int) -> None:
    net, declared = build_backbone(name, width or 32)
    assert declared == dim
    with torch.no_grad():
        out = net.eval()(torch.rand(MEL))
    assert out.shape == (2, dim) and torch.isfinite(out).all()


def test_unknown_backbone_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="unknown backbone"):
        build_backbone("vgg")


def test_simsiam_outputs_and_stop_gradient() -> None:
    model = SimSiam(ModelConfig(backbone="cnn", width=4, proj_dim=32, pred_dim=8))
    p1, p2, z1, z2 = model(torch.rand(MEL), torch.rand(MEL))
    assert p1.shape == p2.shape == z1.shape == z2.shape == (2, 32)
    assert p1.requires_grad and not z1.requires_grad and not z2.requires_grad


def test_checkpoint_round_trip_and_standardised_encoder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SimSiam(ModelConfig(backbone="cnn", width=4, proj_dim=16, pred_dim=4)).eval()
    stats = {"mean": torch.full((64,), 0.5), "std": torch.full((64,), 2.0)}
    save_checkpoint(str(tmp_path / "c.pt"), model, epoch=3, feature_stats=stats)
    checkpoint = load_checkpoint(str(tmp_path / "c.pt"))
    assert checkpoint["epoch"] == 3
    restored = model_from_checkpoint(checkpoint).eval()
    waveform = torch.randn(2, C.WINDOW_SAMPLES) * 0.1
    with torch.no_grad():
        raw = model.backbone(model.frontend(waveform))
        torch.testing.assert_close(restored.backbone(restored.frontend(waveform)), raw)
        torch.testing.assert_close(encoder_from_checkpoint(checkpoint)(waveform), (raw - 0.5) / 2.0 * 64**-0.5)


def test_foreign_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        load_checkpoint(str(tmp_path / "x.pt"))
