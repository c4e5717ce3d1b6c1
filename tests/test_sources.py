"""A playlist source from another package: installed as a distribution with an entry point `siamrec.sources`
(a dist-info folder and one module on PYTHONPATH, as pip would leave them), it adds its option to a real
`siamrec sync-playlists` and its playlist reaches the store, with no change to siamrec."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from siamrec.config import resolve_settings
from siamrec.store import Store
from siamrec.testing import chord, write_audio
from tests.cli import assert_one_error_line, run_siamrec

# The whole third-party package: this is the example CONTRIBUTING.md shows.
DEMO_SOURCE = '''
"""A demo playlist source: one playlist of the audio files named by --demo-file."""

from pathlib import Path

import click

from siamrec.connectors.base import Problem, SourcePlaylist, SourceTrack
from siamrec.connectors.sources import RegisteredSource


class DemoSource:
    label = "Demo"

    def __init__(self, files):
        self.files = [Path(f) for f in files]
        self.problems: list[Problem] = []

    def playlists(self):
        tracks = [SourceTrack(uri=f"demo:track:{f.stem}", title=f.stem, path=f) for f in self.files]
        yield SourcePlaylist(uri="demo:playlist:mix", name="Demo mix", source="demo", tracks=tracks)


source = RegisteredSource(
    "demo",
    [click.Option(["--demo-file", "demo_files"], multiple=True, help="Demo: an audio file of the demo playlist.")],
    lambda values, settings: [DemoSource(values["demo_files"])] if values["demo_files"] else [],
    named_by=("--demo-file",),
)
'''


def install(site: Path, module: str) -> dict[str, str]:
    """The environment of a process that sees the package `siamrec-demo` (the module `siamrec_demo`, and its
    entry point) installed in `site`, as pip leaves a distribution."""
    info = site / "siamrec_demo-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "siamrec_demo.py").write_text(textwrap.dedent(module))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: siamrec-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[siamrec.sources]\ndemo = siamrec_demo:source\n")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


@pytest.fixture
def installed(tmp_path: Path, home: Path) -> dict[str, str]:
    return install(tmp_path / "site", DEMO_SOURCE)


def test_a_third_party_source_adds_its_option_and_its_playlist(installed: dict[str, str], tmp_path: Path) -> None:
    helped = run_siamrec("sync-playlists", "--help", env=installed, check=True)
    assert "--demo-file" in helped.stdout and "Demo: an audio file of the demo playlist." in helped.stdout
    assert "--demo-file" not in run_siamrec("sync-playlists", "--help", check=True).stdout  # not installed here

    files = [write_audio(tmp_path / f"song{i}.wav", chord(3.0, 220.0 * (i + 1))) for i in range(2)]
    args = ["sync-playlists", "--json", *(arg for f in files for arg in ("--demo-file", str(f)))]
    report = json.loads(run_siamrec(*args, env=installed, check=True).stdout)
    assert (report["playlists_written"], report["embedded"]) == (1, 2)
    with Store.open(resolve_settings()) as store:
        stored = store.find_playlist("Demo mix")
        assert (stored.playlist_uri, stored.source, stored.track_uris) == (
            "demo:playlist:mix", "demo", ["demo:track:song0", "demo:track:song1"])  # fmt: skip

    nothing = run_siamrec("sync-playlists", env=installed)
    assert "--demo-file" in assert_one_error_line(nothing, "name a playlist source")


def test_a_source_that_cannot_load_is_one_line(tmp_path: Path, home: Path) -> None:
    env = install(tmp_path / "site", "import a_module_nobody_installed\n")
    line = assert_one_error_line(run_siamrec("sync-playlists", "--folder", str(tmp_path), env=env))
    assert "'demo' (siamrec_demo:source) cannot be loaded" in line and "a_module_nobody_installed" in line
