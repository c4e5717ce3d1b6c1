"""`siamrec serve` under hostile clients over loopback (prints figures).

    .venv/bin/python benchmarks/service_hostile.py [--uploads 10] [--slow 8] [--trickle-s 2] [--junk 10000]
        [--body-timeout-s 30] [--model FILE.onnx]

Starts the real `siamrec serve --port 0` on a fresh home (the port is the one it announces) and measures:
(a) the latency of real uploads, one after another, alone and then while `--slow` clients hold upload
connections by trickling a byte of body every `--trickle-s` seconds (reconnecting whenever they are cut off);
an upload answered 503 is retried after its Retry-After, and its latency counts from the first try;
(b) the size of /metrics and the service's memory before and after `--junk` requests with made-up 1 kB
methods and paths, sent back to back on keep-alive connections.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from serve_load import audio_bytes

SLOW_HEAD = (
    b"POST /tracks HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    b"Content-Length: 10000000\r\n\r\n--b\r\n"
)


def start_service(home: Path, model: Path | None, body_timeout_s: float) -> tuple[subprocess.Popen[str], str]:
    """The real `siamrec serve` on a free port; returns the process and the URL it announced."""
    command = [sys.executable, "-m", "siamrec", "serve", "--port", "0", "--home", str(home)]
    command += ["--body-timeout-s", str(body_timeout_s)] + (["--model", str(model)] if model else [])
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"serving (http://\S+)", line)
    if not found:
        process.kill()
        raise SystemExit(f"siamrec serve did not start: {line.strip()}")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep its log from filling the pipe
    return process, found[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class SlowClients:
    """`count` threads, each holding an upload connection open by trickling its body; they reconnect when cut."""

    def __init__(self, port: int, count: int, trickle_s: float) -> None:
        self.port, self.trickle_s = port, trickle_s
        self.stop = threading.Event()
        self.answers: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._hold, daemon=True) for _ in range(count)]

    def __enter__(self) -> SlowClients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _hold(self) -> None:
        while not self.stop.is_set():
            with socket.create_connection(("127.0.0.1", self.port)) as sock:
                sock.sendall(SLOW_HEAD)
                sock.settimeout(self.trickle_s)
                answer = b""
                while not self.stop.is_set():
                    try:
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
                    except TimeoutError:
                        try:
                            sock.send(b"x")
                        except OSError:
                            break
                    except OSError:
                        break
            if self.stop.is_set() and not answer:
                return  # ended by the benchmark, not by the service
            status = answer[9:12].decode() if answer.startswith(b"HTTP/1.1 ") else "closed"
            with self.lock:
                self.answers[status] += 1


def timed_uploads(base: str, count: int, seed: int) -> tuple[list[float], int]:
    """Upload `count` distinct 10 s clips one after another; (latencies in s, 503 answers on the way)."""
    latencies, busy = [], 0
    with httpx.Client(base_url=base, timeout=600) as client:
        for i in range(count):
            body = audio_bytes(10.0, seed + i)
            started = time.perf_counter()
            while True:
                response = client.post("/tracks", files={"audio": ("clip", body)})
                if response.status_code != 503:
                    break
                busy += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
            if response.status_code not in (200, 201):
                raise SystemExit(f"upload failed: {response.status_code} {response.text[:200]}")
            latencies.append(time.perf_counter() - started)
    return latencies, busy


def junk(port: int, total: int, per_connection: int = 500) -> Counter[int]:
    """`total` requests with made-up 1 kB methods and paths, pipelined on keep-alive connections."""
    statuses: Counter[int] = Counter()
    for start in range(0, total, per_connection):
        requests = b"".join(
            f"J{i:06d}".ljust(1_000, "X").encode() + f" /junk{i}/{'p' * 1_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            for i in range(start, min(start + per_connection, total))
        )
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(requests)
            answers = b""
            while answers.count(b"HTTP/1.1 ") < min(per_connection, total - start):
                answers += sock.recv(1 << 20)
        statuses.update(int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", answers))
    return statuses


def summary(latencies: list[float]) -> str:
    return f"p50 {statistics.median(latencies):6.2f} s   max {max(latencies):6.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=10, help="real uploads timed in each phase")
    parser.add_argument("--slow", type=int, default=8, help="slow clients (the default queue holds 8 uploads)")
    parser.add_argument("--trickle-s", type=float, default=2.0, help="seconds between a slow client's bytes")
    parser.add_argument("--junk", type=int, default=10_000, help="junk requests before /metrics is measured")
    parser.add_argument("--body-timeout-s", type=float, default=30.0, help="passed to siamrec serve")
    parser.add_argument("--model", type=Path, default=None, help="ONNX encoder (default: the shipped one)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="siamrec-hostile-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        process, base = start_service(scratch / "home", args.model, args.body_timeout_s)
        port = int(base.rsplit(":", 1)[1])
        try:
            timed_uploads(base, 1, seed=10_000)  # warm-up
            alone, _ = timed_uploads(base, args.uploads, seed=0)
            print(f"(a) upload, alone:                   {summary(alone)}", flush=True)
            with SlowClients(port, args.slow, args.trickle_s) as slow:
                time.sleep(3 * args.trickle_s)  # let them fill the queue and fall behind the minimum rate
                held, busy = timed_uploads(base, args.uploads, seed=1_000)
            print(f"(a) upload, {args.slow} slow clients holding: {summary(held)}   503s on the way: {busy}")
            print(f"    slow connections ended by the service: {dict(slow.answers)}", flush=True)
            before = httpx.get(f"{base}/metrics").text
            rss_before = rss_mb(process.pid)
            statuses = junk(port, args.junk)
            after = httpx.get(f"{base}/metrics").text
            print(
                f"(b) /metrics: {len(before):,} bytes before, {len(after):,} after {args.junk:,} junk requests "
                f"(answered {dict(statuses)}); service memory {rss_before:.0f} -> {rss_mb(process.pid):.0f} MB"
            )
        finally:
            process.terminate()
            process.wait(30)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
