"""What a new user met at the command line, each through the real CLI in its own process.

-q drew progress bars; bench was silent for minutes in a pipe; vanished files were counted, not named;
`siamrec` alone printed its whole help as an error; `map` suggested an option it does not have; `train`
refused --home; the publish table wrapped; a normal (not editable) install could not run `python -m siamrec`
from the project folder.
"""

from __future__ import annotations

import ast
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.cli import assert_one_error_line, invoke, run_siamrec
from tests.stores import dump_store

ROOT = Path(__file__).resolve().parents[2]
BAR = "━"  # rich's progress bar
TERMINAL_WAIT_S = 120.0


def run_on_terminal(*args: str) -> tuple[int, str]:
    """`python -m siamrec ARGS` with stderr on a pseudo-terminal (so rich animates): (status, what it drew)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "siamrec", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    drawn, deadline = b"", time.monotonic() + TERMINAL_WAIT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer is gone
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    return process.wait(timeout=TERMINAL_WAIT_S), drawn.decode("utf-8", "replace")


# ---- -q: no progress bar ----------------------------------------------------------------------------------


def test_quiet_draws_no_progress_bar_on_a_terminal(home: Path, library_files: dict[str, Path]) -> None:
    status, drawn = run_on_terminal("add-track", str(library_files["chord_a.wav"]))
    assert status == 0 and BAR in drawn  # what -q must take away
    status, drawn = run_on_terminal("-q", "add-track", str(library_files["chord_c.flac"]))
    assert status == 0 and drawn.strip() == "", drawn
    quiet = run_siamrec("-q", "playlist", "create", "Two", *(str(p) for p in library_files.values()))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


# ---- bench: a line per stage when no bar is drawn -------------------------------------------------------


def test_bench_says_each_stage_on_a_pipe_and_nothing_with_quiet(store_home: Path) -> None:
    before = dump_store(store_home)
    done = run_siamrec("bench", "--mask", "2/2", "--seeds", "2", "--baseline", "mfcc")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("bench: embedding the audio of 7 tracks (mfcc)…"), done.stderr
    assert "bench: scoring 2 random splits of 1 mask…" in lines, done.stderr
    quiet = run_siamrec("-q", "bench", "--mask", "2/2", "--seeds", "2", "--baseline", "mfcc", "--json")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert json.loads(quiet.stdout)["n_tracks"] == 7
    assert dump_store(store_home) == before


# ---- add-track: vanished files are named ----------------------------------------------------------------


def test_add_track_names_each_vanished_file(
    home: Path, tmp_path: Path, library_files: dict[str, Path]
) -> None:
    folder = tmp_path / "music"
    folder.mkdir()
    copies = [Path(shutil.copy2(library_files[name], folder)) for name in ("chord_a.wav", "noise.ogg", "drums_90.flac")]
    assert invoke("add-track", str(folder)).returncode == 0
    for gone in copies[:2]:
        gone.unlink()
    before = dump_store(home)
    kept = run_siamrec("add-track", str(folder))
    assert kept.returncode == 0, kept.stderr
    assert sorted(line for line in kept.stderr.splitlines() if line.startswith("vanished:")) == [
        f"vanished: {gone}: the file is gone; --prune removes its track" for gone in sorted(copies[:2])
    ]
    assert "vanished 2 (--prune removes them)" in kept.stdout
    assert dump_store(home) == before
    pruned = run_siamrec("add-track", "--prune", str(folder))
    assert pruned.returncode == 0, pruned.stderr
    assert sorted(line for line in pruned.stderr.splitlines() if line.startswith("removed:")) == [
        f"removed: {gone}: the file is gone, so is its track" for gone in sorted(copies[:2])
    ]
    assert [record["path"] for _, record in dump_store(home)["tracks"].values()] == [str(copies[2])]


# ---- siamrec alone, map without its extra, train --home ---------------------------------------------------


@pytest.mark.parametrize("args", [(), ("playlist",)])
def test_a_group_without_its_command_prints_its_help(args: tuple[str, ...]) -> None:
    """As click (>= 8.2) and git do: the usage and the command list, and a failing status for scripts (an empty
    `$command` must not pass), without the `siamrec: error:` that made the whole help look like one error."""
    done = run_siamrec(*args)
    assert done.returncode == 2 and done.stdout == ""
    usage = done.stderr.splitlines()[0]  # `python -m siamrec`, as click names it when run so
    assert usage.startswith("Usage: ") and usage.endswith(" ".join(["siamrec", *args, "[OPTIONS] COMMAND [ARGS]..."]))
    assert "siamrec: error" not in done.stderr and "Commands:" in done.stderr
    assert ("add-track" if not args else "import") in done.stderr


def test_map_without_the_bench_extra_suggests_only_the_install(home: Path, tmp_path: Path) -> None:
    hide = "import sys; sys.modules.update(sklearn=None, matplotlib=None); from siamrec.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", hide, "map", "--png", str(tmp_path / "map.png")], capture_output=True, text=True
    )
    line = assert_one_error_line(done, "pip install 'siamrec[bench]'")
    assert "--baseline" not in line and "map needs matplotlib, sklearn" in line
    assert not (tmp_path / "map.png").exists()


@pytest.mark.train  # `siamrec train` needs torch
@pytest.mark.parametrize("before_command", [False, True])
def test_train_takes_the_store_options_before_or_after_the_command(
    home: Path, tmp_path: Path, before_command: bool
) -> None:
    """--home reaches train (its --from-store and its decode cache live there): a home that is a file says so."""
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    home_option = ("--home", str(not_a_folder))
    train = ("train", "--from-store", "--out", str(tmp_path / "run"))
    done = run_siamrec(*home_option, *train) if before_command else run_siamrec(*train, *home_option)
    assert_one_error_line(done, f"{not_a_folder} (--home / SIAMREC_HOME) is a file")
    empty = tmp_path / "empty"
    empty.mkdir()
    home_option = ("--home", str(empty))
    done = run_siamrec(*home_option, *train) if before_command else run_siamrec(*train, *home_option)
    assert_one_error_line(done, f"--from-store: the store in {empty} is empty")
    assert not (tmp_path / "run").exists() and not home.exists()


# ---- publish: one line per playlist at 80 columns -------------------------------------------------------


class _Subsonic(BaseHTTPRequestHandler):
    """A Subsonic server with no playlists: enough for `publish --dry-run` to plan its creations."""

    def do_GET(self) -> None:
        method = urlparse(self.path).path.rsplit("/", 1)[-1].removesuffix(".view")
        body: dict[str, Any] = {"status": "ok", "version": "1.16.1"}
        if method == "getPlaylists":
            body["playlists"] = {"playlist": []}
        payload = json.dumps({"subsonic-response": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def subsonic() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Subsonic)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_publish_table_cuts_long_cells_at_80_columns(
    home: Path, subsonic: str, library_files: dict[str, Path]
) -> None:
    server = f"127.0.0.1-{urlparse(subsonic).port}"
    files = sorted(library_files.values())
    name = "Songs for a very long drive along the coast in late summer"
    assert invoke("playlist", "create", name, *(str(f) for f in files[:2])).returncode == 0
    for i, file in enumerate(files[2:5]):
        title, artist = f"A song title that goes on and on, part {i}", "An artist with a long name"
        invoke("add-track", str(file), "--uri", f"subsonic:{server}:track:{i}", "--title", title, "--artist", artist,
               check=True)  # fmt: skip
    before = dump_store(home)
    done = run_siamrec(
        "publish", "--subsonic", subsonic, "--subsonic-user", "alice", "--playlist", name, "-k", "3", "--dry-run",
        env={**os.environ, "SIAMREC_SUBSONIC_PASSWORD": "secret", "COLUMNS": "80"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), done.stdout
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 1, done.stdout  # one playlist, one line
    assert "would create" in rows[0] and "│     3 │" in rows[0] and rows[0].count("…") == 2, rows[0]
    assert dump_store(home) == before


# ---- a normal install runs from the project folder; benchmarks import what it installs ------------------


def test_benchmarks_import_siamrec_as_installed() -> None:
    """A benchmark runs as `python benchmarks/x.py`: it finds siamrec where pip put it, never by sys.path tricks
    or through the old top-level packages (connectors, export), which a normal install does not have."""
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        _assert_imports_installed(script, ROOT)


@pytest.mark.slow  # a wheel built in pip's isolated environment: 15-30 s
def test_python_m_siamrec_after_a_normal_install(tmp_path: Path) -> None:
    """`pip install .` (not editable), then `python -m siamrec` from the project folder and from elsewhere.

    From the project folder, `-m` puts the checkout first on sys.path: its packages must be whole. From
    elsewhere, the installed copy must be: every command module imports, the assets are there.
    """
    target = tmp_path / "installed"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert not (target / "connectors").exists() and (target / "siamrec" / "assets" / "default.onnx").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("SIAMREC_HOME", None)
    every_command = (
        "import click, siamrec; from siamrec.cli import cli, COMMANDS; "
        "[cli.get_command(click.Context(cli), name) for name in COMMANDS]; print(siamrec.__file__)"
    )
    for cwd, package in ((ROOT, ROOT / "siamrec"), (tmp_path, target / "siamrec")):
        done = run_siamrec("sync-playlists", "--help", cwd=cwd, env=env)
        assert done.returncode == 0 and "--subsonic-library" in done.stdout, done.stderr
        loaded = subprocess.run([sys.executable, "-c", every_command], cwd=cwd, env=env, capture_output=True, text=True)
        assert loaded.returncode == 0, loaded.stderr
        assert Path(loaded.stdout.strip()).parent == package
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        _assert_imports_installed(script, target)


def _assert_imports_installed(script: Path, target: Path) -> None:
    """No sys.path changes, no old top-level package, and every `siamrec…` module it names is under `target`."""
    tree = ast.parse(script.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
            raise AssertionError(f"{script.name} changes sys.path")
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            top = name.split(".")[0]
            assert top not in ("connectors", "export"), f"{script.name} imports the old top-level {name}"
            if top == "siamrec":
                assert (target / Path(*name.split("."))).with_suffix(".py").is_file() or (
                    target / Path(*name.split(".")) / "__init__.py"
                ).is_file(), f"{script.name}: {name} is not installed"
