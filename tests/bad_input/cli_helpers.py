"""Helpers for the bad-input tests: run the CLI, dump the whole store, check the one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from siamrec.cli import main


def dump_store(home: Path) -> dict[str, Any]:
    """Every point of every collection (id → vectors and payload), or {} when no store exists yet."""
    path = home / "qdrant"
    if not path.exists():
        return {}
    client = QdrantClient(path=str(path))
    try:
        dump: dict[str, Any] = {}
        for collection in client.get_collections().collections:
            points, offset = [], None
            while True:
                page, offset = client.scroll(
                    collection.name, limit=256, offset=offset, with_payload=True, with_vectors=True
                )
                points += page
                if offset is None:
                    break
            dump[collection.name] = {
                str(p.id): ({k: list(v) for k, v in (p.vector or {}).items()}, p.payload) for p in points
            }
        return dump
    finally:
        client.close()


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
