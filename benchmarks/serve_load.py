"""Load on `siamrec serve` over loopback: N concurrent clients for a fixed time (prints figures).

    .venv/bin/python benchmarks/serve_load.py [--tracks 20000] [--playlists 200] [--clients 8] [--seconds 20]
        [--upload-clients 2] [--model FILE.onnx] [--home DIR]

Fills a fresh store (default: under /dev/shm) with synthetic unit vectors bound to the model's name and
dimension, starts the real `siamrec serve` process on 127.0.0.1, and runs four phases: recommendations for
random stored playlists (mean, then best-score), uploads of real generated audio, and recommendations while
uploads run. Each phase prints requests, errors, throughput and p50/p95/p99 latency; an upload answered 503
(queue full, Retry-After) is counted apart: it is the bound working, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from siamrec import constants as C
from siamrec.config import resolve_settings
from siamrec.embed import load_encoder
from siamrec.store import PlaylistRecord, Store, TrackRecord
from siamrec.testing import chord, drums

BATCH = 2000


def fill_store(home: Path, model: Path | None, n_tracks: int, n_playlists: int, seed: int = 0) -> list[str]:
    """Synthetic tracks and playlists (10–50 tracks each) in a fresh store; returns the playlist URIs."""
    encoder = load_encoder(model)
    rng = np.random.default_rng(seed)
    with Store.open(resolve_settings(home=str(home), model=str(model) if model else None)) as store:
        store.bind_model(encoder.name, encoder.dim, create=True)
        for start in range(0, n_tracks, BATCH):
            count = min(BATCH, n_tracks - start)
            vectors = rng.standard_normal((count, encoder.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            records = [TrackRecord(f"synthetic:track:{start + i}", title=f"t{start + i}") for i in range(count)]
            store.upsert_tracks(records, vectors)
        playlists = [
            PlaylistRecord(
                f"synthetic:playlist:{p}",
                f"playlist {p}",
                track_uris=[f"synthetic:track:{i}" for i in rng.choice(n_tracks, rng.integers(10, 51), False)],
            )
            for p in range(n_playlists)
        ]
        for playlist in playlists:
            store.save_playlist(playlist)
    return [p.playlist_uri for p in playlists]


def audio_bytes(seconds: float, seed: int) -> bytes:
    """A distinct clip per upload (new bytes → a new track each time), as FLAC."""
    rng = np.random.default_rng(seed)
    signal = chord(seconds, float(rng.uniform(110, 440))) + drums(seconds, float(rng.uniform(80, 160)), seed=seed)
    buffer = io.BytesIO()
    sf.write(buffer, signal * 0.5, C.SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    busy: int = 0

    def line(self, name: str, seconds: float) -> str:
        ms = np.percentile(np.array(self.latencies) * 1000, [50, 95, 99]) if self.latencies else [float("nan")] * 3
        errors = sum(self.errors.values())
        detail = f" {self.errors}" if errors else ""
        return (
            f"{name:<28} {len(self.latencies):>7} {errors:>6} {self.busy:>5} {len(self.latencies) / seconds:>8.1f}"
            f" {ms[0]:>8.1f} {ms[1]:>8.1f} {ms[2]:>8.1f}{detail}"
        )


async def run_clients(
    base: str, count: int, seconds: float, call: Callable[[httpx.AsyncClient], Awaitable[int]]
) -> Tally:
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                status = await call(client)
                if status == 503:
                    tally.busy += 1
                    await asyncio.sleep(0.2)
                elif status >= 400:
                    tally.errors[status] = tally.errors.get(status, 0) + 1
                else:
                    tally.latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(client_loop() for _ in range(count)))
    return tally


def recommender(playlists: list[str], strategy: str) -> Callable[[httpx.AsyncClient], Awaitable[int]]:
    async def call(client: httpx.AsyncClient) -> int:
        uri = random.choice(playlists)
        response = await client.get(f"/playlists/{uri}/recommendations", params={"k": 20, "strategy": strategy})
        return response.status_code

    return call


def uploader(seconds: float) -> Callable[[httpx.AsyncClient], Awaitable[int]]:
    counter = iter(range(10**9))

    async def call(client: httpx.AsyncClient) -> int:
        body = audio_bytes(seconds, next(counter))
        response = await client.post("/tracks", files={"audio": ("clip", body)}, params={"k": 10})
        return response.status_code

    return call


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(home: Path, model: Path | None, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "siamrec", "serve", "--port", str(port), "--home", str(home)]
    command += ["--model", str(model)] if model else []
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("siamrec serve did not start")


async def phases(base: str, args: argparse.Namespace, playlists: list[str]) -> None:
    print(f"{'phase':<28} {'ok':>7} {'errors':>6} {'503':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    await run_clients(base, 2, 2, recommender(playlists, "mean"))  # warm-up
    for strategy in ("mean", "best-score"):
        tally = await run_clients(base, args.clients, args.seconds, recommender(playlists, strategy))
        print(tally.line(f"recommend {strategy} x{args.clients}", args.seconds), flush=True)
    if args.upload_clients == 0:
        return
    tally = await run_clients(base, args.upload_clients, args.seconds, uploader(args.clip_seconds))
    print(tally.line(f"upload {args.clip_seconds:g}s x{args.upload_clients}", args.seconds), flush=True)
    recs, ups = await asyncio.gather(
        run_clients(base, args.clients, args.seconds, recommender(playlists, "mean")),
        run_clients(base, args.upload_clients, args.seconds, uploader(args.clip_seconds)),
    )
    print(recs.line(f"  mixed: recommend x{args.clients}", args.seconds))
    print(ups.line(f"  mixed: upload x{args.upload_clients}", args.seconds), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=20_000)
    parser.add_argument("--playlists", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--upload-clients", type=int, default=2, help="0: recommendations only")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="length of each uploaded clip")
    parser.add_argument("--model", type=Path, default=None, help="ONNX encoder (default: the shipped one)")
    parser.add_argument("--home", type=Path, default=None, help="store folder (default: a fresh one in /dev/shm)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="siamrec-load-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    home = args.home or scratch / "home"
    try:
        start = time.perf_counter()
        playlists = fill_store(home, args.model, args.tracks, args.playlists)
        print(f"store: {args.tracks} tracks, {args.playlists} playlists, filled in {time.perf_counter() - start:.0f} s")
        port = free_port()
        service = start_service(home, args.model, port)
        try:
            asyncio.run(phases(f"http://127.0.0.1:{port}", args, playlists))
        finally:
            service.terminate()
            service.wait(30)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
