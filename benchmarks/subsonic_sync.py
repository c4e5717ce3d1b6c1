"""Syncing a Subsonic library: the example excerpts served by a real Supysonic on 127.0.0.1.

    python benchmarks/subsonic_sync.py [--audio examples/audio] [--model siamrec/assets/default.onnx]

Starts Supysonic (the dev extra; the tests' helper in tests/supysonic_server.py), then times, each as its own
`siamrec sync-playlists --subsonic … --subsonic-library` process in a fresh SIAMREC_HOME: the first sync
(list, stream every song, decode, embed, store), a no-change re-sync, and a first sync with --no-audio-cache.
Process start-up (~1-2 s: imports, the model, the store) is inside every figure, as a user sees it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import click
from rich.console import Console
from rich.table import Table

from siamrec.connectors.subsonic.client import PASSWORD_ENV

ROOT = Path(__file__).resolve().parents[1]


def _test_helper(name: str) -> ModuleType:
    """A module of the test suite, loaded from its file (a benchmark runs from a checkout, tests/ beside it)
    without putting tests/ on sys.path, where its modules could shadow installed ones."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


supysonic_server = _test_helper("supysonic_server")
PASSWORD, USER, Supysonic = supysonic_server.PASSWORD, supysonic_server.USER, supysonic_server.Supysonic


def timed_sync(url: str, home: Path, model: Path, *extra: str) -> tuple[float, dict[str, object]]:
    env = {**os.environ, PASSWORD_ENV: PASSWORD, "SIAMREC_HOME": str(home), "SIAMREC_MODEL": str(model)}
    command = [sys.executable, "-m", "siamrec", "sync-playlists", "--subsonic", url, "--subsonic-user", USER,
               "--subsonic-library", "--json", *extra]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise click.ClickException(done.stderr.strip().splitlines()[-1])
    return seconds, json.loads(done.stdout)


@click.command()
@click.option("--audio", type=click.Path(path_type=Path, exists=True), default=ROOT / "examples" / "audio")
@click.option(
    "--model", type=click.Path(path_type=Path, exists=True), default=ROOT / "siamrec" / "assets" / "default.onnx"
)
def main(audio: Path, model: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="siamrec-bench-") as tmp:
        root = Path(tmp)
        server = Supysonic(root / "supysonic", audio).start()
        try:
            songs = len(server.songs())
            first_s, first = timed_sync(server.url, root / "home", model)
            again_s, again = timed_sync(server.url, root / "home", model)
            nocache_s, _ = timed_sync(server.url, root / "home-nocache", model, "--no-audio-cache")
        finally:
            server.stop()
    table = Table("run", "songs", "fetched", "embedded", "seconds", "songs/s", title=f"Subsonic sync ({model.name})")
    table.add_row("first sync", str(songs), str(first["fetched"]), str(first["embedded"]), f"{first_s:.2f}",
                  f"{songs / first_s:.1f}")  # fmt: skip
    table.add_row("no-change re-sync", str(songs), str(again["fetched"]), str(again["embedded"]), f"{again_s:.2f}", "")
    table.add_row("first sync, --no-audio-cache", str(songs), str(songs), str(songs), f"{nocache_s:.2f}",
                  f"{songs / nocache_s:.1f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
