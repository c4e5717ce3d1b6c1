"""A real Subsonic API server for the tests: Supysonic (PyPI `supysonic`, in the dev extra) on 127.0.0.1.

Supysonic reads `supysonic.conf` from its working directory (not from an environment variable), keeps its
library in SQLite, and its scanner does not follow symlinked folders, so the music is copied, not linked.
`supysonic-cli` adds the user and the folder and scans it; `supysonic-server -S waitress` serves the API.
Supysonic speaks API 1.12: no token authentication, so siamrec's fallback to the `enc:` password is what
these tests exercise.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

USER = "alice"
OTHER_USER = "bob"
PASSWORD = "c0rrect-h0rse-Battery!"
START_TIMEOUT_S = 60.0
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "audio"
PER_FOLDER = 8  # excerpts of each example folder the server holds (4 folders: 32 songs)


def copy_excerpts(root: Path) -> Path:
    """A copy of the first excerpts of each example folder in `root` (real music with tags, copied: the scanner
    does not follow links), enough for every check."""
    for folder in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        (root / folder.name).mkdir()
        for file in sorted(folder.glob("*.ogg"))[:PER_FOLDER]:
            shutil.copy2(file, root / folder.name / file.name)
    return root


def sync_args(server: Supysonic, *extra: str) -> list[str]:
    """`siamrec sync-playlists` of `server` as alice, with --json."""
    return ["sync-playlists", "--subsonic", server.url, "--subsonic-user", USER, "--json", *extra]


def _tool(name: str) -> str:
    """A Supysonic command from this interpreter's environment (where the dev extra installed it)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the dev extra (pip install -e '.[dev]')")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Supysonic:
    """One Supysonic instance in `root`: `music/` (a copy of `audio`), its database, config and log."""

    def __init__(self, root: Path, audio: Path) -> None:
        self.root = root
        self.music = root / "music"
        shutil.copytree(audio, self.music)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        (root / "supysonic.conf").write_text(
            "[base]\n"
            f"database_uri = sqlite:///{root / 'supysonic.db'}\n"
            "[webapp]\n"
            f"cache_dir = {root / 'cache'}\n"
            "mount_webui = no\n"
            "log_level = WARNING\n"
            f"log_file = {root / 'webapp.log'}\n"
            "[daemon]\n"
            f"socket = {root / 'daemon.sock'}\n"
            "run_watcher = no\n"
        )
        self.cli("user", "add", USER, "-p", PASSWORD)
        self.cli("user", "add", OTHER_USER, "-p", PASSWORD + "-bob")
        self.cli("folder", "add", "music", str(self.music))
        self.cli("folder", "scan", "music")

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [_tool("supysonic-cli"), *args], cwd=self.root, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"supysonic-cli {args[:2]} failed: {done.stderr[-500:]}")
        return done.stdout

    def start(self) -> Supysonic:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (the server process owns it)
        command = [_tool("supysonic-server"), "-S", "waitress", "-h", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(command, cwd=self.root, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"supysonic-server exited: {(self.root / 'server.log').read_text()[-800:]}")
            try:
                if self.api("ping")["status"] == "ok":
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("supysonic-server did not answer within a minute")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def api(self, method: str, user: str = USER, password: str = PASSWORD, **params: Any) -> dict[str, Any]:
        """A direct API call (password form: Supysonic has no tokens), to set up and to check the server."""
        auth = {"u": user, "p": "enc:" + password.encode().hex(), "v": "1.12.0", "c": "tests", "f": "json"}
        response = requests.get(f"{self.url}/rest/{method}", params={**params, **auth}, timeout=30)
        return dict(response.json()["subsonic-response"])

    def songs(self) -> list[dict[str, Any]]:
        found = self.api("search3", query="", songCount=500, artistCount=0, albumCount=0)
        return list(found["searchResult3"]["song"])

    def playlists(self, user: str = USER, password: str = PASSWORD) -> list[dict[str, Any]]:
        return list(self.api("getPlaylists", user, password).get("playlists", {}).get("playlist") or [])

    def playlist(self, playlist_id: str) -> dict[str, Any]:
        return dict(self.api("getPlaylist", id=playlist_id)["playlist"])

    def create_playlist(self, name: str, song_ids: list[str], user: str = USER, password: str = PASSWORD) -> str:
        self.api("createPlaylist", user, password, name=name, songId=song_ids)
        return str(next(p["id"] for p in self.playlists(user, password) if p["name"] == name))
