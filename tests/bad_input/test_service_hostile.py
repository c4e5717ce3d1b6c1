"""`siamrec serve` against hostile clients, over real sockets on 127.0.0.1: junk that would grow /metrics, errors
that would show the server's layout, clients that trickle bytes, and the start-up, URI and DELETE cases.

Each test serves a copy of one store filled by the CLI (a home whose path has a space in it), and compares a
full dump of the store before and after whenever the service must refuse a write.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from siamrec.audio import identify
from siamrec.service.config import ServiceConfig
from siamrec.testing import chord, write_audio
from siamrec.uris import local_track_uri
from tests.cli import answer, assert_one_error_line, home_env, run_siamrec
from tests.service import assert_problem, service_config, serving, upload
from tests.stores import dump_store

KEY = "hostile-test-key"
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def filled_home(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]) -> Path:
    """A home filled by `siamrec add-track` and `siamrec playlist create`, copied by each test that serves it."""
    home = tmp_path_factory.mktemp("filled") / "home"
    env = home_env(home, tiny_model)
    files = [library_files["chord_a.wav"], library_files["chord_c.flac"], library_files["drums_120.wav"]]
    answer("add-track", *(str(f) for f in files), env=env)
    answer("playlist", "create", "Chords", str(files[0]), str(files[1]), env=env)
    return home


@pytest.fixture
def config(filled_home: Path, tmp_path: Path, tiny_model: Path) -> ServiceConfig:
    """A service over a fresh copy of the filled store, keyed, with one-second deadlines so tests stay short."""
    home = tmp_path / "server data" / "home"
    shutil.copytree(filled_home, home)
    return service_config(home, tiny_model, api_key=KEY, body_timeout_s=1.0, header_timeout_s=1.0
    ).checked()


@pytest.fixture
def api(config: ServiceConfig) -> Iterator[httpx.Client]:
    with serving(config) as base, httpx.Client(base_url=base, timeout=30, headers=AUTH) as client:
        yield client


def _port(client: httpx.Client) -> int:
    return int(client.base_url.port or 0)


def _gauge(client: httpx.Client, name: str) -> float:
    line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith(f"{name} "))
    return float(line.split()[1])


# ---- /metrics ---------------------------------------------------------------------------------------------


def _pipelined(port: int, requests: list[bytes]) -> list[int]:
    """Send requests back to back on one connection (HTTP/1.1 pipelining) and return their statuses."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"".join(requests))
        answers = b""
        while answers.count(b"HTTP/1.1 ") < len(requests):
            chunk = sock.recv(1 << 20)
            assert chunk, "the service closed the connection"
            answers += chunk
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", answers)]


def test_junk_methods_and_paths_leave_metrics_small(api: httpx.Client) -> None:
    before = api.get("/metrics").text
    statuses: set[int] = set()
    for batch in range(15):  # 1,500 made-up 1 kB methods and paths, half of them without the key (401)
        requests = []
        for i in range(batch * 100, batch * 100 + 100):
            key = b"X-API-Key: " + KEY.encode() + b"\r\n" if i % 2 else b""
            method, path = f"JUNK{i:05d}".ljust(1_000, "X").encode(), f"/tracks/junk{i}/{'p' * 1_000}".encode()
            requests.append(method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + key + b"\r\n")
        statuses.update(_pipelined(_port(api), requests))
    after = api.get("/metrics")
    assert len(after.text) < len(before) + 10_000, len(after.text)  # a few fixed series more, not 1,500
    assert "JUNK" not in after.text and "junk" not in after.text
    assert statuses == {401, 405}
    assert 'method="other"' in after.text and 'route="unmatched"' in after.text
    with httpx.Client(base_url=str(api.base_url)) as anonymous:
        assert_problem(anonymous.get("/metrics"), 401, "API key")


# ---- error details ----------------------------------------------------------------------------------------


def _private_words(config: ServiceConfig) -> list[str]:
    return [str(config.settings.home), "server data", "uploads", str(Path.home()), "`siamrec", "siamrec ", "--"]


def test_problem_details_name_no_server_paths_or_cli_hints(
    config: ServiceConfig, api: httpx.Client, tmp_path: Path
) -> None:
    flac = write_audio(tmp_path / "a.flac", chord(3.0)).read_bytes()
    wav = write_audio(tmp_path / "a.wav", chord(3.0)).read_bytes()
    broken = {"truncated.flac": flac[: len(flac) // 3], "truncated.wav": wav[:44] + b"\xff" * 10}
    answers = []
    for name, data in broken.items():  # audio headers the sniffer accepts, then bytes no decoder reads
        (tmp_path / name).write_bytes(data)
        answers.append(upload(api, tmp_path / name))
    answers.append(api.get("/playlists/No Such List"))
    answers.append(api.get("/playlists/No Such List/recommendations"))
    answers.append(api.post("/tracks", json={"track_uri": "spotify:track:x", "url": "https://example.org/a.ogg"}))
    for reply in answers:
        assert reply.status_code in (403, 404, 415, 422), reply.text
        detail = assert_problem(reply, reply.status_code)["detail"]
        assert detail and not [word for word in _private_words(config) if word in detail], detail
    assert "the upload" in answers[0].json()["detail"]
    assert not list((config.settings.home / "uploads").iterdir())


def test_refused_uploads_leave_the_store_as_it_was(config: ServiceConfig, tmp_path: Path) -> None:
    before = dump_store(config.settings.home)
    flac = write_audio(tmp_path / "a.flac", chord(3.0)).read_bytes()
    (tmp_path / "cut.flac").write_bytes(flac[: len(flac) // 3])
    small = replace(config, max_body_bytes=100_000)
    with serving(small) as base, httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
        assert_problem(upload(client, tmp_path / "cut.flac"), 415)
        big_json = {"track_uri": "spotify:track:x", "url": "https://example.org/" + "a" * 200_000}
        assert_problem(client.post("/tracks", json=big_json), 413, "larger than")  # JSON: the small limit
    assert dump_store(config.settings.home) == before


# ---- slow clients -----------------------------------------------------------------------------------------


def _slow_upload(port: int) -> socket.socket:
    """An upload whose head arrives at once and whose body will trickle in a byte at a time."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /tracks HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY.encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
    )
    sock.setblocking(False)
    return sock


def _answer(sock: socket.socket, received: dict[socket.socket, bytes]) -> bool:
    """Read what the server sent so far; True once it has closed the connection."""
    try:
        chunk = sock.recv(65536)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    received[sock] = received.get(sock, b"") + chunk
    return not chunk


def test_slow_bodies_cannot_hold_the_upload_queue(api: httpx.Client, tmp_path: Path) -> None:
    slow = [_slow_upload(_port(api)) for _ in range(8)]  # as many as the queue holds (queue_limit 8)
    received: dict[socket.socket, bytes] = {}
    closed: set[socket.socket] = set()
    held = False
    try:
        for _ in range(200):  # a byte from each every 0.1 s; their 1 s deadline ends them long before 20 s
            held = held or _gauge(api, "siamrec_uploads_in_flight") == 8
            for sock in set(slow) - closed:
                if _answer(sock, received):
                    closed.add(sock)
                    continue
                with contextlib.suppress(OSError):
                    sock.send(b"x")
            if len(closed) == len(slow):
                break
            _pause(0.1)
    finally:
        for sock in slow:
            sock.close()
    assert held, "the slow uploads never filled the queue"
    assert len(closed) == len(slow), "slow uploads kept their connections"
    for sock in slow:
        assert received[sock].startswith(b"HTTP/1.1 408 "), received[sock][:200]
        assert b"application/problem+json" in received[sock] and b"too slowly" in received[sock]
    assert _gauge(api, "siamrec_uploads_in_flight") == 0
    song = write_audio(tmp_path / "real.wav", chord(2.0, 311.0))
    assert upload(api, song, track_uri="spotify:track:real1").status_code == 201


def test_a_new_upload_takes_the_place_of_one_behind_the_minimum_rate(config: ServiceConfig, tmp_path: Path) -> None:
    song = write_audio(tmp_path / "real.wav", chord(2.0, 311.0))
    patient = replace(config, body_timeout_s=600.0)  # no deadline ends the slow uploads during this test
    with serving(patient) as base, httpx.Client(base_url=base, timeout=30, headers=AUTH) as api:
        slow = [_slow_upload(_port(api)) for _ in range(8)]
        received: dict[socket.socket, bytes] = {}
        try:
            for _ in range(100):  # 503 while the slow ones are young; then one of them gives way (within 20 s)
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.send(b"x")
                answer = upload(api, song, track_uri="spotify:track:real2")
                if answer.status_code != 503:
                    break
                _pause(0.2)
            assert answer.status_code == 201, answer.text
            cut = [sock for sock in slow if _answer(sock, received) or received.get(sock)]
            assert len(cut) == 1 and received[cut[0]].startswith(b"HTTP/1.1 408 ")
            assert "siamrec_uploads_cut_slow_total 1.0" in api.get("/metrics").text
        finally:
            for sock in slow:
                sock.close()


def _pause(seconds: float) -> None:
    """Pace a trickling client (not a timing measurement)."""
    time.sleep(seconds)


def test_a_trickled_request_head_is_cut_off(api: httpx.Client) -> None:
    idle = socket.create_connection(("127.0.0.1", _port(api)))
    trickling = socket.create_connection(("127.0.0.1", _port(api)))
    trickling.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")
    for sock in (idle, trickling):
        sock.setblocking(False)
    received: dict[socket.socket, bytes] = {}
    closed: set[socket.socket] = set()
    try:
        for _ in range(100):  # a header byte every 0.1 s: the 1 s head deadline closes both long before 10 s
            closed |= {sock for sock in (idle, trickling) if sock not in closed and _answer(sock, received)}
            if len(closed) == 2:
                break
            with contextlib.suppress(OSError):
                trickling.send(b"X")
            _pause(0.1)
    finally:
        idle.close()
        trickling.close()
    assert len(closed) == 2, "a connection without a whole request head stayed open"
    assert api.get("/health").status_code == 200


# ---- start-up -----------------------------------------------------------------------------------------------


@pytest.fixture
def serve_env(tmp_path: Path, tiny_model: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SIAMREC_API_KEY"}
    return env | {"SIAMREC_HOME": str(tmp_path / "home"), "SIAMREC_MODEL": str(tiny_model)}


def test_serve_on_a_port_in_use_is_one_line(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        result = run_siamrec("serve", "--port", str(port), env=serve_env, timeout=60)
    finally:
        holder.close()
    assert_one_error_line(result, f"port {port} on 127.0.0.1 is in use", alone=True)
    assert "serving" not in result.stderr
    assert not (tmp_path / "home").exists()  # refused before any store was opened


@pytest.mark.parametrize("key", ["", "   ", "\tkey ", "clé-secrète", "key\x1b[2J"])
def test_serve_refuses_an_api_key_no_client_can_send(
    serve_env: dict[str, str], tmp_path: Path, key: str
) -> None:
    result = run_siamrec("serve", env={**serve_env, "SIAMREC_API_KEY": key}, timeout=60)
    assert_one_error_line(result, "SIAMREC_API_KEY", alone=True)
    assert "serving" not in result.stderr and not (tmp_path / "home").exists()


def test_serve_announces_the_port_it_is_listening_on(serve_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "siamrec", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=serve_env,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("siamrec: serving http://127.0.0.1:"), line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        assert port > 0
        # bound and listening when announced: the first request is queued, not refused
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=60).json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(60)


# ---- URIs and DELETE --------------------------------------------------------------------------------------


def test_uris_with_an_encoded_slash_reach_every_route(api: httpx.Client, config: ServiceConfig) -> None:
    stored = api.get("/playlists/Chords").json()["track_uris"]
    uri, quoted = "spotify:playlist:mix/2024", "spotify:playlist:mix%2F2024"
    created = api.put(f"/playlists/{quoted}", json={"name": "Mix", "track_uris": stored})
    assert created.status_code == 201, created.text
    assert created.json()["playlist_uri"] == uri
    assert api.get(f"/playlists/{quoted}").json()["track_uris"] == stored
    assert api.get(f"/playlists/{quoted}/recommendations", params={"k": 1}).status_code == 200
    assert uri in api.get(f"/tracks/{stored[0]}").json()["playlists"]
    assert api.delete(f"/playlists/{quoted}").json()["deleted"] == uri
    assert_problem(api.get(f"/playlists/{quoted}"), 404)
    assert_problem(api.put(f"/playlists/{quoted}/recommendations", json={"name": "x", "track_uris": []}), 405)


def test_delete_track_removes_its_upload_and_nothing_else(
    api: httpx.Client, config: ServiceConfig, library_files: dict[str, Path], tmp_path: Path
) -> None:
    uploads = config.settings.home / "uploads"
    shared = write_audio(tmp_path / "shared.wav", chord(2.0, 330.0))
    other = write_audio(tmp_path / "other.wav", chord(2.0, 392.0))
    for path, uri in ((shared, "spotify:track:a"), (shared, "spotify:track:b/1"), (other, "spotify:track:c")):
        assert upload(api, path, track_uri=uri).status_code == 201
    kept = sorted(uploads.iterdir())
    assert len(kept) == 2
    assert api.delete("/tracks/spotify:track:a").status_code == 200
    assert sorted(uploads.iterdir()) == kept  # the same file still holds spotify:track:b/1
    assert api.get("/tracks/spotify:track:b%2F1/playlists").status_code == 200
    assert api.delete("/tracks/spotify:track:b%2F1").json()["deleted"] == "spotify:track:b/1"
    remaining = sorted(uploads.iterdir())
    assert len(remaining) == 1 and remaining[0] in kept
    assert api.get("/tracks/spotify:track:c").json()["has_audio"]
    library_track = local_track_uri(identify(library_files["drums_120.wav"]))
    assert api.delete(f"/tracks/{library_track}").status_code == 200
    assert library_files["drums_120.wav"].is_file()  # a library file is the user's, never the service's
    assert sorted(uploads.iterdir()) == remaining


# ---- URL fetching (--allow-fetch) ---------------------------------------------------------------------------


class _TricklingAudio(http.server.BaseHTTPRequestHandler):
    """Answers 200 at once, then one byte of a WAV header every 0.2 s for up to a minute."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.end_headers()
        with contextlib.suppress(OSError):
            for byte in (b"RIFF\x24\x00\x00\x00WAVE" * 30)[:300]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                _pause(0.2)

    def log_message(self, *args: object) -> None: ...


def test_a_trickling_fetch_is_cut_off_at_its_deadline(config: ServiceConfig) -> None:
    fetching = replace(config, allow_fetch=True, fetch_allow_networks=("127.0.0.1/32",), fetch_deadline_s=1.0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TricklingAudio)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = dump_store(config.settings.home)
    try:
        with serving(fetching) as base, httpx.Client(base_url=base, timeout=30, headers=AUTH) as client:
            url = f"http://127.0.0.1:{server.server_address[1]}/song.wav"
            answer = client.post("/tracks", json={"track_uri": "spotify:track:slow", "url": url})
            body = assert_problem(answer, answer.status_code, "did not finish within 1 s")
            assert answer.status_code >= 400 and "/tmp" not in answer.text, body
    finally:
        server.shutdown()
        server.server_close()
    assert dump_store(config.settings.home) == before
