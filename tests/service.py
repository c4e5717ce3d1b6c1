"""The service in a thread on 127.0.0.1 and the checks its HTTP answers share, for every test that serves."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from siamrec.config import resolve_settings
from siamrec.service.app import create_app
from siamrec.service.config import ServiceConfig
from siamrec.service.server import ServerConfig

PROBLEM = "application/problem+json"


def service_config(home: Path, model: Path, **options: Any) -> ServiceConfig:
    """A service's configuration for the store under `home` and `model`, as `siamrec serve --home --model` makes it."""
    return ServiceConfig(resolve_settings(home=str(home), model=str(model)), **options)


@contextmanager
def serving(config: ServiceConfig) -> Iterator[str]:
    """The service on a free port of `config.host`, in a thread, as `siamrec serve` runs it; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, 0))
    server = uvicorn.Server(ServerConfig(create_app(config), config, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def upload(client: httpx.Client, path: Path, k: int = 10, **fields: str) -> httpx.Response:
    with open(path, "rb") as handle:
        return client.post("/tracks", params={"k": k}, files={"audio": ("whatever.bin", handle)}, data=fields)


def assert_problem(response: httpx.Response, status: int, fragment: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and fragment in body["detail"], body
    assert "Traceback" not in response.text
    return body
