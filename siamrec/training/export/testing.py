"""A tiny random encoder exported to ONNX: for plumbing tests and benchmarks, never for quality.

The test suite reads two of them as files (tests/assets), so tests that only embed and store need no torch;
`python -m siamrec.training.export.testing tests/assets` writes them again, and a `train` test checks that they still
match what the exporter makes.
"""

from __future__ import annotations

import sys
from pathlib import Path

# file name -> (model name, width): what the test suite reads
TEST_MODELS = {"tiny.onnx": ("tiny", 4), "other.onnx": ("other", 6)}


def tiny_encoder_onnx(path: Path, name: str = "tiny", width: int = 4, seed: int = 0) -> Path:
    """A randomly initialised small encoder exported with parity: for plumbing tests, never for quality."""
    import torch

    from siamrec.training.export.onnx_export import export_encoder
    from siamrec.training.nets import Encoder, ModelConfig, SimSiam

    torch.manual_seed(seed)
    model = SimSiam(ModelConfig(backbone="cnn", width=width)).eval()
    export_encoder(Encoder(model.frontend, model.backbone, model.backbone_dim), path, name=name, backbone="cnn")
    return path


def write_test_models(folder: Path) -> list[Path]:
    """The test suite's models (TEST_MODELS) exported into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return [tiny_encoder_onnx(folder / file, name=name, width=width) for file, (name, width) in TEST_MODELS.items()]


if __name__ == "__main__":
    for written in write_test_models(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/assets")):
        print(written)
