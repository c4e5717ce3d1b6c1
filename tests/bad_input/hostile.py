"""A hostile server on 127.0.0.1 for the bad-input tests (as Subsonic, Spotify or a plain file host): it echoes
credentials, trickles, floods, pages forever and answers in the wrong shapes; and the one filled store that its
tests copy (`filled_home`, `store_home`: fixtures, imported by the modules that use them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from siamrec.connectors.subsonic.client import PASSWORD_ENV
from tests.cli import home_env, run_siamrec

PASSWORD = "Tr0ub4dor&3-horse"
USER = "alice"
SUBPROCESS_TIMEOUT_S = 90  # generous: the bounds under test are a few seconds; the old code ran for minutes


@dataclass
class Reply:
    """What the server sends: a status, a content type, body chunks (with a pause between them: a trickle)."""

    body: Iterable[bytes] = ()
    status: int = 200
    content_type: str = "application/json"
    length: int | None = None
    pause_s: float = 0.0
    trickle_headers: bool = False


def document(payload: Any) -> Reply:
    return Reply([json.dumps(payload).encode()])


def ok(**fields: Any) -> Reply:
    return document({"subsonic-response": {"status": "ok", "version": "1.16.1", **fields}})


def failed(code: int, message: str) -> Reply:
    return document({"subsonic-response": {"status": "failed", "error": {"code": code, "message": message}}})


def trickle(headers: bool = False) -> Reply:
    """A byte every 0.2 s for two minutes: never silent long enough for a per-read timeout."""
    return Reply((b" " for _ in range(600)), pause_s=0.2, trickle_headers=headers)


def flood(total: int, declared: int | None = None, kind: str = "audio/ogg") -> Reply:
    """`total` bytes of audio-typed zeros, as fast as the client reads them (bounded, so the old code ends)."""
    block = b"\0" * (1 << 16)
    return Reply((block for _ in range(total // len(block))), content_type=kind, length=declared)


SONG = {"id": "s1", "title": "Song", "artist": "Band", "album": "Album", "suffix": "ogg", "duration": 4,
        "size": 40_000}  # fmt: skip


@dataclass
class HostileServer:
    """An HTTP server whose answer to each request the test sets, by the last part of its path (a Subsonic
    method, a file, a token endpoint): `answers[name](query)`; a Subsonic API by default. Every query is kept."""

    audio: bytes = b""
    answers: dict[str, Callable[[dict[str, str]], Reply]] = field(default_factory=dict)
    queries: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._serve(self)

            def do_POST(self) -> None:
                owner._serve(self)

            def log_message(self, *args: Any) -> None: ...

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.defaults: dict[str, Callable[[dict[str, str]], Reply]] = {
            "ping": lambda q: ok(),
            "getPlaylists": lambda q: ok(playlists={"playlist": [{"id": "p1", "name": "Hostile"}]}),
            "getPlaylist": lambda q: ok(playlist={"id": "p1", "name": "Hostile", "entry": [SONG]}),
            "download": lambda q: Reply([self.audio], content_type="audio/ogg"),
        }

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlparse(handler.path)
        method = parts.path.rsplit("/", 1)[-1].removesuffix(".view")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        query["_raw"] = parts.query
        self.queries.append(query)
        length = int(handler.headers.get("Content-Length") or 0)
        query["_body"] = handler.rfile.read(length).decode(errors="replace") if length else ""
        answer = self.answers.get(method) or self.defaults.get(method) or (lambda q: failed(0, "unknown method"))
        reply = answer(query)
        try:
            if reply.trickle_headers:
                handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            else:
                handler.send_response(reply.status)
                handler.send_header("Content-Type", reply.content_type)
                if reply.length is not None:
                    handler.send_header("Content-Length", str(reply.length))
                handler.end_headers()
            for chunk in reply.body:
                handler.wfile.write(chunk)
                if reply.pause_s:
                    handler.wfile.flush()
                    time.sleep(reply.pause_s)  # the server's pace, not a measurement
        except OSError:  # the client hung up: what a bounded client does
            pass

    def sent_secrets(self) -> set[str]:
        """Every token, salt and password form the client sent, plus the password itself and its hex."""
        found = {PASSWORD, PASSWORD.encode().hex()}
        for query in self.queries:
            found |= {query[key] for key in ("t", "s", "p") if key in query}
            found |= {query["p"].removeprefix("enc:")} if "p" in query else set()
        return found


@pytest.fixture(scope="module", name="filled_home")
def filled_home_fixture(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]
) -> Path:
    """A store with the test library in one playlist, made once: each test works on its own copy."""
    folder = tmp_path_factory.mktemp("filled")
    m3u = folder / "Library.m3u"
    m3u.write_text("\n".join(str(path) for path in sorted(library_files.values())) + "\n")
    env = home_env(folder / "home", tiny_model)
    done = run_siamrec("playlist", "import", str(m3u), env=env)
    assert done.returncode == 0, done.stderr
    return folder / "home"


@pytest.fixture(name="store_home")
def store_home_fixture(filled_home: Path, home: Path) -> Path:
    shutil.copytree(filled_home, home)
    return home


def sync(server: HostileServer, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m siamrec sync-playlists --subsonic …` in its own process (what must not hang runs here)."""
    return run_siamrec("sync-playlists", "--subsonic", server.url, "--subsonic-user", USER, *extra,
                       env={**os.environ, PASSWORD_ENV: PASSWORD, **env}, timeout=SUBPROCESS_TIMEOUT_S)  # fmt: skip
