"""`siamrec adapt` on a store of many playlist tracks: the whole command as a process, and the fit alone.

A Qdrant Edge store is filled with `--tracks` synthetic tracks at the shipped model's dimension (read from its
metadata, as `siamrec add-track` would store them; `--dim` overrides), every one of them in a playlist of 10-30
tracks drawn from one cluster (the clustered, low-intrinsic-dimension vectors of benchmarks/store_scale.py),
plus `--cold` tracks in none. Then `siamrec adapt --json` runs as a process (start-up, the fit with its
cross-validation, every adapted vector and centroid written), and the fit alone (`siamrec.adapt.fit_store`,
no writes) is timed in this process on the same store.

    .venv/bin/python benchmarks/adapt_speed.py --tracks 50000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

CHUNK = 10_000


def _store_scale() -> ModuleType:
    """benchmarks/store_scale.py, for its synthetic clustered tracks (one generator for both benchmarks)."""
    spec = importlib.util.spec_from_file_location("store_scale", Path(__file__).with_name("store_scale.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_dim() -> int:
    """The shipped model's vector size, from its metadata."""
    from siamrec.embed import load_encoder

    return load_encoder(None, "cpu", check=False).dim


def playlists_over(n_tracks: int, clusters: int, seed: int = 7) -> list[np.ndarray]:
    """Every track in exactly one playlist of 10-30 tracks, all from one cluster (track i is in cluster i % k)."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for cluster in range(clusters):
        members = rng.permutation(np.arange(cluster, n_tracks, clusters))
        start = 0
        while start < len(members):
            size = int(rng.integers(10, 31))
            out.append(np.sort(members[start : start + size]))
            start += size
    return out


def fill(home: Path, tracks: int, cold: int, dim: int) -> dict[str, float]:
    """The store: `tracks` playlist tracks and `cold` others, their playlists with centroids."""
    from siamrec.config import resolve_settings
    from siamrec.store import PlaylistRecord, Store, TrackRecord

    scale = _store_scale()
    total = tracks + cold
    clusters = max(1, total // scale.PER_CLUSTER)
    rng = np.random.default_rng(0)
    centers = 2.0 * rng.standard_normal((clusters, scale.LATENT)).astype(np.float32)
    mix = rng.standard_normal((scale.LATENT, dim)).astype(np.float32) / np.sqrt(scale.LATENT)
    playlists = playlists_over(tracks, clusters)
    owner = {int(row): f"synthetic:playlist:{p}" for p, rows in enumerate(playlists) for row in rows}
    start = time.perf_counter()
    with Store.open(resolve_settings(home=str(home))) as store:
        store.bind_model("synthetic", dim)
        for first in range(0, total, CHUNK):
            count = min(CHUNK, total - first)
            records = [
                TrackRecord(f"synthetic:track:{i}", title=f"title {i}", artist=f"artist {i % 5000}",
                            duration_s=200.0, playlists=[owner[i]] if i in owner else [])
                for i in range(first, first + count)
            ]  # fmt: skip
            store.upsert_tracks(records, scale.synthetic_chunk(first, count, centers, mix))
        records = [
            PlaylistRecord(f"synthetic:playlist:{p}", f"playlist {p}", track_uris=[f"synthetic:track:{i}" for i in r])
            for p, r in enumerate(playlists)
        ]
        for first in range(0, len(records), 500):
            store.refresh_centroids(records[first : first + 500])
    return {"playlists": len(playlists), "fill_s": time.perf_counter() - start}


def adapt_process(home: Path) -> tuple[float, dict[str, object]]:
    """Wall time and JSON summary of a whole `siamrec adapt --json` process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "siamrec", "adapt", "--json"],
        env={**os.environ, "SIAMREC_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, json.loads(done.stdout)


def fit_alone(home: Path) -> float:
    """Seconds of `fit_store` (reading the playlists and vectors, cross-validation, the fit), nothing written."""
    from siamrec.adapt import fit_store
    from siamrec.config import resolve_settings
    from siamrec.store import Store

    with Store.open(resolve_settings(home=str(home))) as store:
        store.bind_stored_model()
        start = time.perf_counter()
        fit_store(store)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=50_000, help="tracks in playlists")
    parser.add_argument("--cold", type=int, default=0, help="tracks in no playlist")
    parser.add_argument("--dim", type=int, default=None, help="vector size (default: the shipped model's)")
    parser.add_argument("--repeats", type=int, default=1, help="adapt processes on the same store (median)")
    parser.add_argument("--dir", type=Path, default=None, help="where the store is written (default: a temp dir)")
    args = parser.parse_args()
    dim = args.dim or model_dim()
    work = Path(tempfile.mkdtemp(prefix="adapt-speed-", dir=args.dir))
    try:
        home = work / "home"
        figures: dict[str, object] = {"tracks": args.tracks, "cold": args.cold, "dim": dim}
        figures.update(fill(home, args.tracks, args.cold, dim))
        runs = [adapt_process(home) for _ in range(args.repeats)]
        figures["adapt_process_s"] = float(np.median([took for took, _ in runs]))
        summary = runs[-1][1]
        figures.update({key: summary.get(key) for key in ("shrinkage", "projected", "chosen_by", "tracks_written")})
        figures["fit_alone_s"] = fit_alone(home)
        figures["peak_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures["load_1min"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
