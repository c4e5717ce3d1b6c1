"""Where one track write's time goes in the embedded store (Qdrant Edge), in microseconds per point.

`store_scale.py` measures upserts/s through `Store.upsert_tracks`; this script splits that cost into its parts
so the ceiling is visible: numpy rows to Python floats (`tolist`), the binding turning a vector and a payload
into a `qdrant_edge.Point`, the engine's `update` (float16 originals, write-ahead log), and siamrec's own share
(ids, existing-track lookup, payload dicts, the disk-room estimate). It also checks whether the engine's
`update` lets another thread run Python meanwhile (if it held the GIL, overlapping conversion with writing
cannot help), and what a write costs with the write-ahead log off (a shard option fixed at creation).

    .venv/bin/python benchmarks/upsert_cost.py [--points 20000] [--dim 1296]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from siamrec.store import Store, TrackRecord
from siamrec.store.edge import EdgeBackend
from siamrec.store.layout import DEFAULT
from siamrec.store.metric import WRITE_BATCH
from siamrec.store.records import record_payload

VECTOR = "v"


def records(n: int) -> list[TrackRecord]:
    return [
        TrackRecord(f"bench:track:{i}", title=f"title {i}", artist=f"artist {i % 500}", album=f"album {i % 2000}",
                    duration_s=200.0, audio_sha1=f"{i:040x}", path=f"/music/{i % 500}/{i}.flac", size=8_000_000,
                    mtime=1.7e9)
        for i in range(n)
    ]  # fmt: skip


def per_point(n: int, work: Callable[[], Any]) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) / n * 1e6


def shard(folder: Path, dim: int, wal: bool) -> Any:
    config = DEFAULT.config("tracks", {VECTOR: dim})
    if not wal:
        config = qe.EdgeConfig(vectors=config.vectors, hnsw_config=config.hnsw_config,
                               quantization_config=config.quantization_config, wal_enabled=False)  # fmt: skip
    return qe.EdgeShard.create(str(folder), config)


def engine_update(folder: Path, points: list[Any], wal: bool, dim: int) -> float:
    target = shard(folder, dim, wal)

    def write() -> None:
        for start in range(0, len(points), WRITE_BATCH):
            target.update(qe.UpdateOperation.upsert_points(points[start : start + WRITE_BATCH]))
        target.flush()

    try:
        return per_point(len(points), write)
    finally:
        target.close()


def overlap(folder: Path, points: list[Any], matrix: np.ndarray, dim: int) -> dict[str, float]:
    """The engine writing in a thread while this one converts floats: together ≈ the sum means no overlap."""
    target = shard(folder, dim, True)
    batches = [points[s : s + WRITE_BATCH] for s in range(0, len(points), WRITE_BATCH)]

    def write() -> None:
        for batch in batches:
            target.update(qe.UpdateOperation.upsert_points(batch))

    convert = per_point(len(points), matrix.tolist)
    alone = per_point(len(points), write)
    thread = threading.Thread(target=write)
    start = time.perf_counter()
    thread.start()
    matrix.tolist()
    thread.join()
    together = (time.perf_counter() - start) / len(points) * 1e6
    target.close()
    return {"convert_alone_us": convert, "update_alone_us": alone, "both_in_two_threads_us": together}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=1296)
    args = parser.parse_args()
    n, dim = args.points, args.dim
    matrix = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    payloads = [record_payload(r) for r in records(n)]
    figures: dict[str, float] = {}
    rows: list[list[float]] = []
    figures["tolist_us"] = per_point(n, lambda: rows.extend(matrix.tolist()))
    figures["point_vector_only_us"] = per_point(n, lambda: [qe.Point(i, {VECTOR: r}) for i, r in enumerate(rows)])
    figures["point_payload_only_us"] = per_point(n, lambda: [qe.Point(i, {VECTOR: [0.0]}, p) for i, p in
                                                              enumerate(payloads)])  # fmt: skip
    strings = {f"k{j}": "abcdefgh" for j in range(8)}
    figures["payload_string_field_us"] = per_point(n, lambda: [qe.Point(i, {VECTOR: [0.0]}, strings) for i in
                                                                range(n)]) / 8  # fmt: skip
    points = [qe.Point(i + 1, {VECTOR: r}, p) for i, (r, p) in enumerate(zip(rows, payloads, strict=True))]
    with tempfile.TemporaryDirectory(prefix="upsert_cost_") as tmp:
        root = Path(tmp)
        figures["engine_update_us"] = engine_update(root / "wal", points, True, dim)
        figures["engine_update_without_wal_us"] = engine_update(root / "nowal", points, False, dim)
        figures.update(overlap(root / "overlap", points, matrix, dim))
        store = Store(EdgeBackend(root / "store", DEFAULT))
        store.bind_model("bench", dim)
        tracks = records(n)
        figures["store_upsert_tracks_us"] = per_point(n, lambda: [
            store.upsert_tracks(tracks[s : s + 10_000], matrix[s : s + 10_000]) for s in range(0, n, 10_000)])
        store.close()
    figures["store_points_per_s"] = 1e6 / figures["store_upsert_tracks_us"]
    print(f"{n} points of {dim} floats, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for key, value in figures.items():
        print(f"  {key:32s} {value:10.1f}")
    print(json.dumps({key: round(value, 2) for key, value in figures.items()}))


if __name__ == "__main__":
    main()
