"""Helpers for the bad-input tests: run the CLI, dump the whole store, check the one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from siamrec.cli import main
from siamrec.config import resolve_settings
from siamrec.store import Store, embedded_path


def dump_store(home: Path) -> dict[str, Any]:
    """Every track and playlist of the store under `home`, {collection: {uri: ({vector name: rounded vector},
    payload)}}, read through the Store API (whatever the backend); {} when no store exists yet."""
    settings = resolve_settings(home=str(home))
    if not any(path.exists() for path in (embedded_path(settings), settings.qdrant_path)):
        return {}
    with Store.open(settings) as store:
        if store.stored_model() is None:
            return {}
        name, _ = store.bind_stored_model()

        def named(vector: Any) -> dict[str, list[float]]:
            return {} if vector is None else {name: vector.round(6).tolist()}

        tracks = {
            t.record.track_uri: (named(t.vector), asdict(t.record))
            for t in store.iter_tracks(with_vectors=True)
        }
        uris = [p.playlist_uri for p in store.iter_playlists()]
        playlists = {
            uri: (named(centroid), asdict(record))
            for uri, (record, centroid) in store.get_playlists(uris).items()
        }
    return {"tracks": tracks, "playlists": playlists}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`siamrec ARGS` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(list(args))
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def run_process(*args: str, stdin: Any = subprocess.DEVNULL, env: dict[str, str] | None = None,
                timeout: float = 120, text_in: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`python -m siamrec ARGS` in its own process (a real stdin, a real pipe for stdout)."""
    return subprocess.run(
        [sys.executable, "-m", "siamrec", *args],
        stdin=None if text_in is not None else stdin,
        input=text_in,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(status: int, err: str, fragment: str = "") -> str:
    """Non-zero exit, no traceback, exactly one error line (containing `fragment`): siamrec's own, or click's
    `Error: Invalid value…` for an option click itself checks (range, existing file)."""
    assert status != 0, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("siamrec: error:", "Error: "))]
    assert len(errors) == 1, err
    assert fragment.lower() in errors[0].lower(), errors[0]
    return errors[0]
