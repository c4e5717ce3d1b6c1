"""One settings object: resolved once (flag, then environment, then default), used by the CLI and the service."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from siamrec.cli import GLOBAL_OPTIONS, cli
from siamrec.config import DEFAULT_MODEL, resolve_settings
from siamrec.errors import ModelError
from siamrec.service.config import CONFIG_ENV, ServiceConfig


def test_the_default_model_is_resolved_with_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIAMREC_MODEL", raising=False)
    assert resolve_settings(home=str(tmp_path)).model_file == DEFAULT_MODEL
    monkeypatch.setenv("SIAMREC_MODEL", str(tmp_path / "from-env.onnx"))
    given = resolve_settings(home=str(tmp_path), model=str(tmp_path / "flag.onnx"))
    assert given.model_path == tmp_path / "flag.onnx"  # the flag wins over the environment
    with pytest.raises(ModelError, match="flag.onnx not found"):
        _ = given.model_file


def test_a_worker_rebuilds_the_settings_serve_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --workers N` hands each worker the settings it resolved, never the Qdrant key in its JSON."""
    settings = resolve_settings(home=str(tmp_path), qdrant_url="http://localhost:6333", qdrant_api_key="k-123")
    config = ServiceConfig(settings, cors_origins=("http://localhost:3000",), metric="plain")
    document = config.to_environment()
    assert "k-123" not in document and json.loads(document)["settings"]["home"] == str(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, document)
    monkeypatch.setenv("SIAMREC_HOME", str(tmp_path / "elsewhere"))  # not read again by the worker
    monkeypatch.setenv("SIAMREC_QDRANT_API_KEY", "k-123")  # where `serve` puts a --qdrant-api-key for its workers
    assert ServiceConfig.from_environment() == config


def test_global_options_are_declared_once() -> None:
    """The group and every command that takes a global option show the one declaration of it."""
    context = click.Context(cli)
    declared = {name: flags for name, (flags, _) in GLOBAL_OPTIONS.items()}
    for command in [cli, *(cli.get_command(context, name) for name in ("info", "recommend", "serve"))]:
        assert command is not None
        options = {p.name: p for p in command.params if isinstance(p, click.Option)}
        for name in set(declared) & set(options):
            assert tuple(options[name].opts) == declared[name]
            assert options[name].help == GLOBAL_OPTIONS[name][1]["help"], (command.name, name)
    assert set(declared) <= {p.name for p in cli.params}
