"""Wall time of the bench protocol on synthetic vectors: 10k and 100k tracks, 1k playlists (prints figures).

    .venv/bin/python benchmarks/bench_speed.py [--tracks 10000 100000] [--playlists 1000] [--seeds 10] [--store]

Each figure is one full protocol run (splits + every draw scored + metrics + exact chance) for one method; the
`--store` flag also times reading the vectors and playlists back from an in-memory Qdrant store (the bench's
one read), which is what dominates on a real library.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from siamrec.bench.methods import read_library
from siamrec.bench.protocol import make_splits, score_method


def synthetic(n_tracks: int, n_playlists: int, dim: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unit vectors and playlists of 10–100 distinct tracks (MPD-like lengths), drawn at random."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_tracks, dim)).astype(np.float32)
    lengths = rng.integers(10, 101, n_playlists)
    playlists = [rng.choice(n_tracks, size=length, replace=False) for length in lengths]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), playlists


def time_protocol(vectors: np.ndarray, playlists: list[np.ndarray], seeds: int, mask: tuple[int, int],
                  strategy: str, candidates: str) -> float:  # fmt: skip
    start = time.perf_counter()
    splits = make_splits(playlists, len(vectors), mask[1], mask[0], seeds, candidates)
    score_method(vectors, splits, strategy)
    return time.perf_counter() - start


def time_store_read(vectors: np.ndarray, playlists: list[np.ndarray]) -> tuple[float, float]:
    """(seconds to fill an in-memory store — not part of a bench —, seconds for the bench's read)."""
    from siamrec.store import PlaylistRecord, Store, TrackRecord

    store = Store.memory()
    start = time.perf_counter()
    store.bind_model("synthetic", vectors.shape[1], create=True)
    store.upsert_tracks([TrackRecord(f"synthetic:track:{i}") for i in range(len(vectors))], vectors)
    store.refresh_centroids(
        [PlaylistRecord(f"synthetic:playlist:{p}", f"p{p}", track_uris=[f"synthetic:track:{i}" for i in rows])
         for p, rows in enumerate(playlists)]
    )  # fmt: skip
    filled = time.perf_counter() - start
    start = time.perf_counter()
    read_library(store)
    read = time.perf_counter() - start
    store.close()
    return filled, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--playlists", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--store", action="store_true", help="also time the read from an in-memory Qdrant store")
    args = parser.parse_args()
    print(f"{args.playlists} playlists, dim {args.dim}, {args.seeds} random splits per run, one method")
    print(f"{'tracks':>8} {'mask':>6} {'candidates':>10} {'strategy':>10} {'seconds':>8}")
    for n_tracks in args.tracks:
        vectors, playlists = synthetic(n_tracks, args.playlists, args.dim)
        for mask in ((10, 5), (10, 10)):
            for candidates in ("masked", "library"):
                for strategy in ("mean", "best-score"):
                    seconds = time_protocol(vectors, playlists, args.seeds, mask, strategy, candidates)
                    label = f"{mask[0]}/{mask[1]}"
                    print(f"{n_tracks:>8} {label:>6} {candidates:>10} {strategy:>10} {seconds:>8.2f}", flush=True)
        if args.store:
            filled, read = time_store_read(vectors, playlists)
            print(f"{n_tracks:>8} store: fill {filled:.1f} s (not part of a bench), bench read {read:.1f} s")


if __name__ == "__main__":
    main()
