"""The bad-input suite's store: every test here runs a command that should fail (or partly fail) and compares a
full dump of the store (tests/stores.py) before and after; the CLI runs through tests/cli.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import invoke


@pytest.fixture
def store_home(home: Path, library_files: dict[str, Path], tmp_path: Path) -> Path:
    """A store with the test library's tracks in two playlists whose names are full of rich markup."""
    root = tmp_path / "lists"
    files = sorted(library_files.values())
    folder = root / "[bold]Loud :smile:"  # a folder name cannot hold "/": the closing tag goes in the M3U
    folder.mkdir(parents=True)
    for file in files[:4]:
        (folder / file.name).symlink_to(file)
    m3u = tmp_path / "odd.m3u"
    m3u.write_text("#EXTM3U\n#PLAYLIST:[/]odd [red\n" + "\n".join(str(f) for f in files[3:]) + "\n")
    invoke("sync-playlists", "--folder", str(root), "--m3u", str(m3u), check=True)
    return home
