from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import siamrec.audio_items
from siamrec.store import Store
from siamrec.store.edge import EdgeBackend
from siamrec.testing import music_library
from tests.supysonic_server import copy_excerpts

# The training stack's tests need torch (the train extra); without it they are not collected, and said so.
TORCH_INSTALLED = importlib.util.find_spec("torch") is not None
collect_ignore = [] if TORCH_INSTALLED else ["training"]


def pytest_configure(config: pytest.Config) -> None:
    """The user's data and cache folders are never a test's: a test that forgets SIAMREC_HOME (or a process it
    starts) writes under a folder of this run, not into the real default store."""
    root = Path(tempfile.mkdtemp(prefix="siamrec-test-xdg-"))
    for variable in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        os.environ[variable] = str(root / variable.lower())


def pytest_report_header() -> str | None:
    return None if TORCH_INSTALLED else "torch is not installed: tests/training (marked train) is not collected"


@pytest.fixture(params=["memory", "edge"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each backend behind the same Store API: qdrant-client (in memory) and the embedded Qdrant Edge."""
    store = Store.memory() if request.param == "memory" else Store(EdgeBackend(tmp_path / "store"))
    yield store
    store.close()


# Tiny random-weight encoders as files (siamrec.training.export.testing writes them): tests that embed need no torch.
ASSETS = Path(__file__).resolve().parent / "assets"


def copy_test_model(name: str, folder: Path) -> Path:
    """A copy of the tiny test model `name` (tiny, other) in `folder`, so a test may damage or rename it."""
    return Path(shutil.copy(ASSETS / f"{name}.onnx", folder / f"{name}.onnx"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path to a tiny random-weight siamrec ONNX encoder (plumbing only)."""
    return copy_test_model("tiny", tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny encoder, named 'other', of another dimension: a store of 'tiny' vectors refuses it."""
    return copy_test_model("other", tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def library_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Seven short real-audio tracks of different timbres in four formats."""
    return music_library(tmp_path_factory.mktemp("music"))


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the library decodes, in order (the real decoder runs)."""
    paths: list[Path] = []
    real = siamrec.audio_items.track_windows

    def spy(path: Path, *args: object, **kwargs: object) -> object:
        paths.append(Path(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(siamrec.audio_items, "track_windows", spy)
    return paths


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


@pytest.fixture(scope="module")
def excerpts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real tagged music for the Subsonic tests' Supysonic: the first excerpts of each example folder."""
    return copy_excerpts(tmp_path_factory.mktemp("excerpts"))
