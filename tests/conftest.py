from __future__ import annotations

from pathlib import Path

import pytest
import torch

from siamrec.export.testing import tiny_encoder_onnx
from siamrec.store import Store
from siamrec.testing import music_library

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path to a tiny random-weight siamrec ONNX encoder (plumbing only)."""
    return tiny_encoder_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="session")
def library_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Seven short real-audio tracks of different timbres in four formats."""
    return music_library(tmp_path_factory.mktemp("music"))


@pytest.fixture
def memory_store() -> Store:
    store = Store.memory()
    yield store
    store.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> Path:
    """A fresh SIAMREC_HOME with the tiny model configured, for CLI tests."""
    monkeypatch.setenv("SIAMREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SIAMREC_MODEL", str(tiny_model))
    return tmp_path / "home"
