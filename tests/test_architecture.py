"""The layout DESIGN.md promises: one direction of imports, light connectors, one name in site-packages."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import assert_one_error_line, invoke

ROOT = Path(__file__).resolve().parents[1]
UPPER_LAYERS = ("siamrec.connectors", "siamrec.training", "siamrec.cli", "siamrec.service")


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _core_files() -> list[Path]:
    layers = {ROOT / "siamrec" / name for name in ("cli", "service", "connectors", "training")}
    entry_point = ROOT / "siamrec" / "__main__.py"  # `python -m siamrec` runs the CLI
    files = (ROOT / "siamrec").rglob("*.py")
    return [p for p in files if p != entry_point and not any(layer in p.parents for layer in layers)]


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_connectors_export_or_front_ends(path: Path) -> None:
    imported = _imported_modules(path)
    bad = {m for m in imported if m.startswith(UPPER_LAYERS) or m.split(".")[0] in ("connectors", "export")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: the core must not depend on upper layers"


@pytest.mark.parametrize("folder", ["connectors", "training"])
def test_upper_layers_import_only_under_the_siamrec_name(folder: str) -> None:
    for path in (ROOT / "siamrec" / folder).rglob("*.py"):
        bad = {m for m in _imported_modules(path) if m.split(".")[0] in ("connectors", "training", "export")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: use siamrec.connectors / siamrec.training"


BENCH_EXTRA = ("librosa", "matplotlib", "sklearn")
MAX_MODULE_LINES = 450  # past this a module usually holds more than one job


def test_only_the_bench_folder_needs_the_bench_extra() -> None:
    bench = ROOT / "siamrec" / "bench"
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "siamrec").rglob("*.py")
        if bench not in path.parents and any(m.split(".")[0] in BENCH_EXTRA for m in _imported_modules(path))
    ]
    assert offenders == []


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in (ROOT / "siamrec").rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these into modules of one job each: {long}"


TRAINING_STACK = ("torch", "torchaudio", "torchvision", "timm", "pedalboard", "onnx", "onnxscript")


def test_only_the_training_folder_imports_torch() -> None:
    """The install profiles can be seen in the tree: inference, the store and the service never need torch."""
    training = ROOT / "siamrec" / "training"
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "siamrec").rglob("*.py")
        if training not in path.parents
        and any(m.split(".")[0] in TRAINING_STACK for m in _imported_modules(path))
    ]
    assert offenders == []


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("module", ["siamrec.connectors.local", "siamrec.connectors.mpd", "siamrec.connectors.base"])
def test_reading_playlists_loads_no_inference_or_store(module: str) -> None:
    loaded = _modules_loaded_by(f"import {module}")
    assert module in loaded
    assert not {"onnxruntime", "qdrant_client", "torch"} & loaded


def test_help_imports_no_command_module() -> None:
    loaded = _modules_loaded_by("from siamrec.cli import cli; cli.main(['--help'], standalone_mode=False)")
    heavy = {"rich", "numpy", "onnxruntime", "qdrant_client", "spotipy", "torch", "siamrec.store"}
    assert not heavy & loaded
    assert not {m for m in loaded if m.startswith("siamrec.cli.")}


def test_every_listed_command_loads() -> None:
    import click

    from siamrec.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        assert isinstance(cli.get_command(ctx, name), click.Command), name


def test_a_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command whose extra is not installed names the extra to install instead of printing a traceback."""
    from siamrec import cli as cli_module

    def without_torch(name: str) -> object:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli_module.importlib, "import_module", without_torch)
    result = invoke("train", "--help")
    assert result.returncode == 1
    expected = "siamrec: error: this needs the 'train' extra (torch is not installed): pip install 'siamrec[train]'"
    assert assert_one_error_line(result, alone=True) == expected


def _playlist_source_classes() -> set[str]:
    """Classes under siamrec/connectors that implement PlaylistSource: a `label` and a `playlists` method."""
    found = set()
    for path in (ROOT / "siamrec" / "connectors").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
                names = {t.id for item in node.body if isinstance(item, ast.Assign) for t in item.targets
                         if isinstance(t, ast.Name)}  # fmt: skip
                if "playlists" in methods and "label" in names:
                    found.add(node.name)
    return found


def test_the_registry_lists_every_built_in_source() -> None:
    """Each playlist source siamrec ships is built by a source registered under `siamrec.sources` (entry points:
    pip install -e . refreshes them), so sync-playlists offers it with no list of its own to edit."""
    import inspect

    from siamrec.connectors.sources import registered_sources

    own = [source for source in registered_sources() if source.build.__module__.startswith("siamrec.")]
    assert {source.name for source in own} == {"mpd", "spotify", "files", "subsonic"}
    built = "\n".join(inspect.getsource(source.build) for source in own)
    classes = _playlist_source_classes()
    assert {"MpdSource", "SpotifySource", "LocalSource", "SubsonicSource"} <= classes
    assert {name for name in classes if name not in built} == set()
