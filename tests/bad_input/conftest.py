"""Fixtures for the bad-input tests (helpers in cli_helpers.py: `dump_store(home)`, `run_cli`, …)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import dump_store, run_cli

__all__ = ["dump_store"]


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
    status, _, err = run_cli(capsys, "sync-playlists", "--folder", str(root), "--m3u", str(m3u))
    assert status == 0, err
    return home
