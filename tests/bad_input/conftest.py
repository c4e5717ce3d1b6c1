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
from pathlib import Path
from typing import Any

import cli_helpers
import pytest

from siamrec.config import resolve_settings

# rich's progress bar, rendered once at the end when stderr is not a terminal: not a message
PROGRESS_LINE = re.compile(r"^\w[\w ]* +━+ +\d+/\d+ ")
StoreDump = dict[str, Any]


def dump_store() -> StoreDump:
    """Every point of every collection of the configured store (cli_helpers.dump_store of SIAMREC_HOME)."""
    return cli_helpers.dump_store(resolve_settings().home)


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


@pytest.fixture
def store_home(home: Path, library_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A store with the test library's tracks in two playlists whose names are full of rich markup."""
    root = tmp_path / "lists"
    files = sorted(library_files.values())
    folder = root / "[bold]Loud :smile:"  # a folder name cannot hold "/": the closing tag goes in the M3U
    folder.mkdir(parents=True)
    for file in files[:4]:
        (folder / file.name).symlink_to(file)
    m3u = tmp_path / "odd.m3u"
    m3u.write_text("#EXTM3U\n#PLAYLIST:[/]odd [red\n" + "\n".join(str(f) for f in files[3:]) + "\n")
    status, _, err = cli_helpers.run_cli(capsys, "sync-playlists", "--folder", str(root), "--m3u", str(m3u))
    assert status == 0, err
    return home


@pytest.fixture(name="stderr_messages")
def stderr_messages_fixture() -> Callable[[str], list[str]]:
    return stderr_messages
