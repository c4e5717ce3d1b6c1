"""Shared pieces of the bad-input suite: run the real CLI, dump the whole store, check the one error line.

Every test here runs a command that should fail (or partly fail) and compares a full dump of the store
(every point of every collection, vector and payload) before and after.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from qdrant_client import QdrantClient

from siamrec.config import resolve_settings

# rich's progress bar, rendered once at the end when stderr is not a terminal: not a message
PROGRESS_LINE = re.compile(r"^\w[\w ]* +━+ +\d+/\d+ ")
StoreDump = dict[str, dict[str, tuple[dict[str, Any], Any]]]


def dump_store() -> StoreDump:
    """Every point of every collection of the configured store: {collection: {id: (payload, vectors)}}.

    Vectors are rounded lists so two dumps compare with ==; payloads are taken as stored. `added_at`
    is kept: a re-add that should not happen would change it.
    """
    settings = resolve_settings()
    if settings.qdrant_url is None and not settings.qdrant_path.exists():
        return {}
    client = (
        QdrantClient(url=settings.qdrant_url) if settings.qdrant_url else QdrantClient(path=str(settings.qdrant_path))
    )
    try:
        dump: StoreDump = {}
        for collection in sorted(c.name for c in client.get_collections().collections):
            points: dict[str, tuple[dict[str, Any], Any]] = {}
            offset = None
            while True:
                page, offset = client.scroll(
                    collection, limit=1000, offset=offset, with_payload=True, with_vectors=True
                )
                for point in page:
                    vectors = point.vector if isinstance(point.vector, dict) else {"": point.vector}
                    rounded = {name: [round(float(x), 6) for x in v] for name, v in (vectors or {}).items() if v}
                    points[str(point.id)] = (point.payload or {}, rounded)
                if offset is None:
                    break
            dump[collection] = points
        return dump
    finally:
        client.close()


def run_siamrec(*args: str | bytes, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m siamrec ARGS` in a real process (native libraries write to its real stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "siamrec", *args], capture_output=True, text=True, env=os.environ, **kwargs
    )


def stderr_messages(stderr: str) -> list[str]:
    """stderr lines other than rich's progress bar (rendered once at the end when stderr is not a terminal)."""
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]


def assert_one_error_line(result: subprocess.CompletedProcess[str], fragment: str, prefix: str = "") -> str:
    """Non-zero exit and exactly one stderr line, from siamrec, holding `fragment`; nothing else at all.

    `prefix` narrows which siamrec line is meant ("siamrec: error:" or "skipped:"); any other stderr line
    (a traceback, a native library's note, a second message) fails the test; only rich's progress bar is
    left out.
    """
    assert result.returncode != 0, result
    lines = stderr_messages(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix or ("siamrec: error:", "skipped:")), result.stderr
    assert fragment in lines[0], result.stderr
    return lines[0]


# The helpers as fixtures, so test modules beside this file use them without importing a conftest.
@pytest.fixture(name="dump_store")
def dump_store_fixture() -> Callable[[], StoreDump]:
    return dump_store


@pytest.fixture(name="siamrec_cli")
def siamrec_cli_fixture() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_siamrec


@pytest.fixture(name="one_error_line")
def one_error_line_fixture() -> Callable[..., str]:
    return assert_one_error_line


@pytest.fixture(name="stderr_messages")
def stderr_messages_fixture() -> Callable[[str], list[str]]:
    return stderr_messages
