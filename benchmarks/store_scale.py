"""The embedded store at scale: upserts/s, index build, open time, recommend latency, recall, disk, peak RSS.

Synthetic 256-d tracks: clusters of about 500 tracks in a 16-d latent space mapped into 256-d with a little
noise (embeddings of music have a low intrinsic dimension; isotropic 256-d noise has none, and makes every
neighbour a tie), half of them in playlists (warm), half cold; playlists of 10-30 tracks drawn from one
cluster, so recommending for them is a real search. Each size
runs in its own process, so its peak RSS is its own. Recall@10 compares the HNSW search with an exact search
under the same filter (cold only, playlist excluded).

    .venv/bin/python benchmarks/store_scale.py --sizes 20000 100000 1000000 --playlists 10000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 10_000
LATENT = 16
PER_CLUSTER = 500


def synthetic_chunk(start: int, n: int, centers: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Tracks start..start+n: latent cluster centre + spread, mapped to `dim`, plus a little noise."""
    rng = np.random.default_rng(start)
    clusters = np.arange(start, start + n) % len(centers)
    latent = centers[clusters] + 0.5 * rng.standard_normal((n, LATENT)).astype(np.float32)
    vectors = latent @ mix + 0.05 * rng.standard_normal((n, mix.shape[1])).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def playlists_of(n_tracks: int, n_playlists: int, clusters: int) -> list[list[int]]:
    """Playlist p draws 10-30 warm tracks (the first half) from cluster p % clusters."""
    rng = np.random.default_rng(7)
    warm = n_tracks // 2
    out = []
    for p in range(n_playlists):
        pool = np.arange(p % clusters, warm, clusters)
        out.append(sorted(rng.choice(pool, size=min(len(pool), int(rng.integers(10, 31))), replace=False).tolist()))
    return out


def run_one(n: int, n_playlists: int, dim: int, queries: int, work: Path) -> dict[str, float]:
    from siamrec.recommend import recommend_tracks
    from siamrec.store import PlaylistRecord, Store, TrackRecord, playlist_centroid
    from siamrec.store.edge import EdgeBackend

    home = work / "home"
    root = home / "store"
    clusters = max(1, n // PER_CLUSTER)
    rng = np.random.default_rng(0)
    centers = 2.0 * rng.standard_normal((clusters, LATENT)).astype(np.float32)
    mix = rng.standard_normal((LATENT, dim)).astype(np.float32) / np.sqrt(LATENT)
    playlists = playlists_of(n, n_playlists, clusters)
    membership: dict[int, list[str]] = {}
    for p, rows in enumerate(playlists):
        for row in rows:
            membership.setdefault(row, []).append(f"synthetic:playlist:{p}")
    figures: dict[str, float] = {"tracks": n, "playlists": n_playlists}

    store = Store(EdgeBackend(root))
    store.bind_model("synthetic", dim)
    start = time.perf_counter()
    for first in range(0, n, CHUNK):
        count = min(CHUNK, n - first)
        records = [
            TrackRecord(f"synthetic:track:{i}", title=f"title {i}", artist=f"artist {i % 5000}",
                        album=f"album {i % 20000}", duration_s=200.0, audio_sha1=f"{i:040x}",
                        path=f"/music/{i % 5000}/{i}.flac", size=8_000_000, mtime=1.7e9,
                        playlists=membership.get(i, []))
            for i in range(first, first + count)
        ]  # fmt: skip
        store.upsert_tracks(records, synthetic_chunk(first, count, centers, mix))
    figures["upsert_points_per_s"] = n / (time.perf_counter() - start)
    start = time.perf_counter()
    records = [
        PlaylistRecord(f"synthetic:playlist:{p}", f"playlist {p}", track_uris=[f"synthetic:track:{i}" for i in rows])
        for p, rows in enumerate(playlists)
    ]
    for first in range(0, len(records), 500):
        store.refresh_centroids(records[first : first + 500])
    figures["playlists_s"] = time.perf_counter() - start
    start = time.perf_counter()
    store.close()  # builds the HNSW index over what was written
    figures["index_build_s"] = time.perf_counter() - start

    start = time.perf_counter()
    store = Store(EdgeBackend(root))
    store.bind_stored_model()
    store.count_tracks()
    figures["open_ms"] = (time.perf_counter() - start) * 1000
    rng = np.random.default_rng(3)
    chosen = [records[p] for p in rng.choice(len(records), size=min(queries, len(records)), replace=False)]
    for strategy in ("mean", "best-score"):  # warm the page cache first: a cold one would go to the first strategy
        for playlist in chosen[:10]:
            recommend_tracks(store, playlist, k=10, strategy=strategy)
    for strategy in ("mean", "best-score"):
        times = []
        for playlist in chosen:
            t = time.perf_counter()
            recommend_tracks(store, playlist, k=10, strategy=strategy)
            times.append(time.perf_counter() - t)
        figures[f"{strategy}_p50_ms"] = float(np.percentile(times, 50) * 1000)
        figures[f"{strategy}_p99_ms"] = float(np.percentile(times, 99) * 1000)
    hits = {"mean": 0, "best-score": 0}
    for playlist in chosen:
        seeds = store.get_tracks(playlist.track_uris, with_vectors=True)
        examples = np.stack([s.vector for s in seeds.values()])
        for strategy in hits:
            search = store.nearest_tracks if strategy == "mean" else store.best_score_tracks
            query = playlist_centroid(examples) if strategy == "mean" else examples
            approx = {t.record.track_uri for t in search(query, 10, playlist.track_uris)}
            exact = {t.record.track_uri for t in search(query, 10, playlist.track_uris, exact=True)}
            hits[strategy] += len(approx & exact)
    for strategy, found in hits.items():
        figures[f"{strategy}_recall_at_10"] = found / (10 * len(chosen))
    start = time.perf_counter()
    read = sum(1 for track in store.iter_tracks(with_vectors=True) if track.vector is not None)
    figures["read_all_vectors_s"] = time.perf_counter() - start  # what `bench --candidates library` reads
    assert read == n
    store.backend.close()  # nothing written: no index build

    env = {**os.environ, "SIAMREC_HOME": str(home)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "siamrec", "recommend", "--playlist", chosen[0].name, "-k", "10", "--json"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    figures["cli_recommend_s"] = time.perf_counter() - start
    figures["disk_mb"] = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000, 1_000_000])
    parser.add_argument("--playlists", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None, help="where the stores are written (default: a temp dir)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        work = Path(tempfile.mkdtemp(prefix=f"store_scale_{args.one}_", dir=args.dir))
        try:
            print(json.dumps(run_one(args.one, args.playlists, args.dim, args.queries, work)))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    columns = ["tracks", "playlists", "upsert_points_per_s", "index_build_s", "open_ms", "mean_p50_ms", "mean_p99_ms",
               "best-score_p50_ms", "best-score_p99_ms", "mean_recall_at_10", "best-score_recall_at_10",
               "read_all_vectors_s", "cli_recommend_s", "disk_mb", "peak_rss_mb"]  # fmt: skip
    print(f"Qdrant Edge, dim {args.dim}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    for n in args.sizes:
        command = [sys.executable, __file__, "--one", str(n), "--playlists", str(args.playlists),
                   "--dim", str(args.dim), "--queries", str(args.queries)]  # fmt: skip
        command += ["--dir", str(args.dir)] if args.dir else []
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        print(json.dumps({key: round(figures[key], 3) for key in columns}), flush=True)


if __name__ == "__main__":
    main()
