"""The embedded store at scale: upserts/s, adapt, index build, open time, recommend latency, recall, disk, RSS.

Synthetic tracks at the shipped model's dimension (read from its metadata; `--dim` overrides): clusters of about
500 tracks in a 16-d latent space mapped into D dims with a little noise (embeddings of music have a low
intrinsic dimension; isotropic noise has none, and makes every neighbour a tie), half of them in playlists
(warm), half cold; playlists of 10-30 tracks drawn from one cluster, so recommending for them is a real search.
Then `adapt` fits the playlist-adapted metric and writes every track's adapted vector, as `siamrec adapt` does,
so the store holds both vectors. Each size runs in its own process, so its peak RSS is its own. Latency and
recall@10 are measured in both metrics (plain, adapted) for both strategies; recall compares the engine's
search (HNSW over the quantized copy, rescored) with an exact float search under the same filter (cold only,
playlist excluded). Then the store is closed, its pages dropped from the page cache, and the first pass of
queries timed twice: on the cold store, and after `warm_store` (what `siamrec serve` does as it opens) has read
the store ahead. `--no-quantization` builds the store with the layout stores had before (float32 originals
in RAM, no quantized copy), `--int8` with scalar int8 copies instead of 4-bit ones, for comparison.

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
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

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


def fill(store: Any, n: int, membership: dict[int, list[str]], centers: np.ndarray, mix: np.ndarray) -> float:
    """Write n synthetic tracks through `Store.upsert_tracks`; returns points per second."""
    from siamrec.store import TrackRecord

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
    return n / (time.perf_counter() - start)


def time_queries(store: Any, chosen: list[Any], figures: dict[str, float], prefix: str) -> None:
    """p50/p99 of `recommend_tracks` over `chosen`, the strategies taking turns per playlist."""
    from siamrec.recommend import recommend_tracks

    times: dict[str, list[float]] = {"mean": [], "best-score": []}
    for playlist in chosen:
        for strategy, spent in times.items():
            t = time.perf_counter()
            recommend_tracks(store, playlist, k=10, strategy=strategy)
            spent.append(time.perf_counter() - t)
    for strategy, spent in times.items():
        figures[f"{prefix}{strategy}_p50_ms"] = float(np.percentile(spent, 50) * 1000)
        figures[f"{prefix}{strategy}_p99_ms"] = float(np.percentile(spent, 99) * 1000)


def latency_and_recall(store: Any, chosen: list[Any], metric: str, figures: dict[str, float]) -> None:
    """p50/p99 of `recommend_tracks` and recall@10 against exact search, per strategy, in one metric."""
    from siamrec.store import playlist_centroid

    store.use_metric(metric)
    tag = "" if metric == "plain" else "adapted_"
    # Two passes, the strategies taking turns per playlist so neither warms the page cache for the other: the
    # first pass reads the store's mapped pages from disk (a store just opened, a one-off command), the second
    # finds them in memory (a service that has been running a while): both are reported.
    for when in ("first_pass_", ""):
        time_queries(store, chosen, figures, f"{when}{tag}")
    hits = {"mean": 0, "best-score": 0}
    for playlist in chosen:
        seeds = store.get_tracks(playlist.track_uris, with_vectors=True, using=store.query_vector)
        examples = np.stack([s.vector for s in seeds.values()])
        for strategy in hits:
            search = store.nearest_tracks if strategy == "mean" else store.best_score_tracks
            query = playlist_centroid(examples) if strategy == "mean" else examples
            approx = {t.record.track_uri for t in search(query, 10, playlist.track_uris)}
            exact = {t.record.track_uri for t in search(query, 10, playlist.track_uris, exact=True)}
            hits[strategy] += len(approx & exact)
    for strategy, found in hits.items():
        figures[f"{tag}{strategy}_recall_at_10"] = found / (10 * len(chosen))


def evict(root: Path) -> None:
    """Drop a closed store's pages from the page cache (written back first), as after a restart of the machine."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cold_and_warmed(root: Path, layout: Any, chosen: list[Any], figures: dict[str, float]) -> None:
    """The first pass of queries on a store whose pages are all on disk, then the same after `warm_store` (what
    a service does as it opens) has read the store ahead; both with the shards already loaded."""
    from siamrec import constants as C
    from siamrec.store import Store
    from siamrec.store.edge import EdgeBackend
    from siamrec.store.warmup import warm_store

    for mode in ("cold", "warmed"):
        evict(root)
        store = Store(EdgeBackend(root, layout))
        store.bind_stored_model()
        store.backend.count(C.PLAYLISTS_COLLECTION)
        store.count_tracks()
        if mode != "cold":
            start = time.perf_counter()
            warming = warm_store(store)
            figures["warm_read_mb"] = warming.wait() / 1e6 if warming else 0.0
            figures["warm_s"] = time.perf_counter() - start
        time_queries(store, chosen, figures, f"{mode}_")
        store.backend.close()


def process_s(home: Path, *args: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of a whole `siamrec` process (start-up, opening the store, the
    command): on a busy machine the CPU time is the figure a quiet one would show as wall time."""
    env = {**os.environ, "SIAMREC_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "siamrec", *args], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


class MemorySampler:
    """The process's resident memory every 0.2 s, split as Linux counts it: anonymous (the heap: what the
    process itself holds) and file-backed (pages of the store's memory-mapped files, which the kernel can drop
    and read again). `ru_maxrss` is their sum's peak; the split says which one a phase raised."""

    def __init__(self) -> None:
        self.peak = {"anon": 0.0, "file": 0.0}
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for line in Path("/proc/self/status").read_text().splitlines():
                for kind, key in (("anon", "RssAnon:"), ("file", "RssFile:")):
                    if line.startswith(key):
                        self.peak[kind] = max(self.peak[kind], int(line.split()[1]) / 1024)

    def phase(self, figures: dict[str, float], name: str) -> None:
        """Record the peaks since the last phase under `name`, and start counting afresh."""
        figures[f"{name}_peak_anon_mb"] = self.peak["anon"]
        figures[f"{name}_peak_file_mb"] = self.peak["file"]
        self.peak = {"anon": 0.0, "file": 0.0}


def progress(figures: dict[str, float]) -> None:
    """The figures so far on stderr (a long run that is stopped still says how far it got)."""
    print(json.dumps({key: round(value, 3) for key, value in figures.items()}), file=sys.stderr, flush=True)


def run_one(n: int, n_playlists: int, dim: int, queries: int, work: Path, layout: Any) -> dict[str, float]:
    from siamrec.adapt import adapt_store
    from siamrec.store import PlaylistRecord, Store
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
    figures: dict[str, float] = {"tracks": n, "playlists": n_playlists, "dim": dim}

    memory = MemorySampler()
    store = Store(EdgeBackend(root, layout))
    store.bind_model("synthetic", dim)
    figures["upsert_points_per_s"] = fill(store, n, membership, centers, mix)
    memory.phase(figures, "fill")
    progress(figures)
    start = time.perf_counter()
    records = [
        PlaylistRecord(f"synthetic:playlist:{p}", f"playlist {p}", track_uris=[f"synthetic:track:{i}" for i in rows])
        for p, rows in enumerate(playlists)
    ]
    for first in range(0, len(records), 500):
        store.refresh_centroids(records[first : first + 500])
    figures["playlists_s"] = time.perf_counter() - start
    progress(figures)
    start = time.perf_counter()
    adapt_store(store)  # the adapted metric and every track's adapted vector, as `siamrec adapt` writes them
    figures["adapt_s"] = time.perf_counter() - start
    memory.phase(figures, "adapt")
    progress(figures)
    first = min(CHUNK, n)  # upserts once an adaptation is stored: each point's adapted twin is written with it
    figures["upsert_adapted_points_per_s"] = fill(store, first, membership, centers, mix)
    start = time.perf_counter()
    store.close()  # builds the HNSW index (and the quantized copy) over what was written
    figures["index_build_s"] = time.perf_counter() - start
    memory.phase(figures, "index_build")
    progress(figures)

    start = time.perf_counter()
    store = Store(EdgeBackend(root, layout))
    store.bind_stored_model()
    store.count_tracks()
    figures["open_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    in_folder = sum(1 for _ in store.tracks_under("/music/7"))  # what `add-track FOLDER` reads to find vanished files
    figures["folder_tracks_ms"] = (time.perf_counter() - start) * 1000
    assert in_folder == len(range(7, n, 5000))
    progress(figures)
    rng = np.random.default_rng(3)
    chosen = [records[p] for p in rng.choice(len(records), size=min(queries, len(records)), replace=False)]
    for metric in ("plain", "adapted"):
        latency_and_recall(store, chosen, metric, figures)
        progress(figures)
    memory.phase(figures, "queries")
    store.use_metric("plain")
    start = time.perf_counter()
    read = sum(1 for track in store.iter_tracks(with_vectors=True) if track.vector is not None)
    figures["read_all_vectors_s"] = time.perf_counter() - start  # what `bench --candidates library` reads
    assert read == n
    memory.phase(figures, "read_all")
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.backend.close()  # nothing written: no index build
    cold_and_warmed(root, layout, chosen, figures)
    progress(figures)

    figures["disk_mb"] = sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file()) / 1e6  # allocated
    progress(figures)
    if layout.quantized:  # a process opens the store with the default layout: the comparison store would be upgraded
        recommend = ("recommend", "--playlist", chosen[0].name, "-k", "10", "--json")
        figures["cli_recommend_s"], figures["cli_recommend_cpu_s"] = process_s(home, *recommend)
        figures["cli_info_s"], figures["cli_info_cpu_s"] = process_s(home, "info", "--json")
    return figures


def model_dim() -> int:
    """The shipped model's vector size, from its metadata (what `siamrec add-track` would store)."""
    from siamrec.embed import load_encoder

    return load_encoder(None, "cpu").dim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000, 1_000_000])
    parser.add_argument("--playlists", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=None, help="vector size (default: the shipped model's)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-quantization", action="store_true", help="the layout stores had before, to compare")
    parser.add_argument("--int8", action="store_true", help="scalar int8 search copies instead of 4-bit ones")
    parser.add_argument("--hnsw-ef", type=int, default=None, help="search breadth (default: the store's)")
    parser.add_argument("--oversampling", type=float, default=None, help="quantized candidates per result")
    parser.add_argument("--dir", type=Path, default=None, help="where the stores are written (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="leave the stores in --dir (to time commands on them)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from siamrec.store.layout import DEFAULT, LEGACY

    tuned = {key: value for key, value in (("hnsw_ef", args.hnsw_ef), ("oversampling", args.oversampling)) if value}
    layout = replace(LEGACY if args.no_quantization else DEFAULT, **tuned, **({"turbo4": False} if args.int8 else {}))
    dim = args.dim or model_dim()
    if args.one:
        work = Path(tempfile.mkdtemp(prefix=f"store_scale_{args.one}_", dir=args.dir))
        try:
            print(json.dumps(run_one(args.one, args.playlists, dim, args.queries, work, layout)))
        finally:
            if args.keep:
                print(f"store kept: {work / 'home'}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
        return
    print(f"Qdrant Edge, dim {dim}, {layout}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    for n in args.sizes:
        command = [sys.executable, __file__, "--one", str(n), "--playlists", str(args.playlists), "--dim", str(dim),
                   "--queries", str(args.queries)]  # fmt: skip
        command += ["--dir", str(args.dir)] if args.dir else []
        command += ["--keep"] if args.keep else []
        command += ["--no-quantization"] if args.no_quantization else []
        command += ["--int8"] if args.int8 else []
        command += ["--hnsw-ef", str(args.hnsw_ef)] if args.hnsw_ef else []
        command += ["--oversampling", str(args.oversampling)] if args.oversampling else []
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        print(json.dumps({key: round(value, 3) for key, value in figures.items()}), flush=True)


if __name__ == "__main__":
    main()
