"""The embedded store's layout (siamrec.store.layout): new stores get the 4-bit search copy, float16 track vectors
and memory-mapped parts; a store written before it is upgraded when opened, with every point, vector and payload
as it was; the approximate search still finds what the exact one finds; a service reads the store ahead, the
search path first."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siamrec import constants as C
from siamrec.store import PlaylistRecord, Store, TrackRecord
from siamrec.store.edge import EdgeBackend
from siamrec.store.layout import DEFAULT, LEGACY, Layout
from siamrec.store.migrate import COPIED
from siamrec.store.warmup import ON_DEMAND_FILES, ON_DEMAND_FOLDERS, data_ranges, files_to_warm, read_ahead, warm_store
from siamrec.uris import point_id
from tests.cli import run_siamrec

DIM = 1296  # the shipped model's size: 4,000 float16 vectors pass the engine's indexing threshold (10 MB)
TRACKS = 4_000


def write_store(backend: EdgeBackend, tracks: int = TRACKS, dim: int = DIM) -> None:
    """Tracks in 50 clusters, half of them in playlists, written through the Store as any command writes them."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((50, dim)).astype(np.float32)
    vectors = centers[np.arange(tracks) % 50] + 0.3 * rng.standard_normal((tracks, dim)).astype(np.float32)
    playlists = [PlaylistRecord(f"p:{p}", f"P {p}", track_uris=[f"t:{i}" for i in range(p, tracks // 2, 50)])
                 for p in range(50)]  # fmt: skip
    with Store(backend) as store:
        store.bind_model("m", dim)
        store.upsert_tracks([TrackRecord(f"t:{i}", title=f"title {i}", path=f"/music/{i}.flac") for i in range(tracks)],
                            vectors)  # fmt: skip
        for playlist in playlists:
            store.save_playlist(playlist)


@pytest.fixture(scope="module")
def new_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store written with the current layout, big enough to be indexed (one for the module: it takes seconds)."""
    root = tmp_path_factory.mktemp("layout") / "store"
    write_store(EdgeBackend(root))
    return root


def dump(root: Path, layout: Layout = DEFAULT) -> dict[str, dict[str, Any]]:
    """Every collection's points: payload and every named vector, by id (read with `layout`: LEGACY leaves a
    store written before the layout as it is)."""
    backend = EdgeBackend(root, layout)
    try:
        found: dict[str, dict[str, Any]] = {}
        for collection in COPIED:
            vectors = backend.vectors(collection)
            if vectors is None:
                continue
            found[collection] = {
                hit.id: (hit.payload, {name: v.tolist() for name, v in sorted(hit.vectors.items())})
                for hit in backend.scroll(collection, vectors=list(vectors))
            }
        return found
    finally:
        backend.close()


def engine_config(root: Path, collection: str = C.TRACKS_COLLECTION) -> dict[str, Any]:
    return json.loads((root / collection / "edge_config.json").read_text())  # type: ignore[no-any-return]


def keyword_index_memory(root: Path, collection: str = C.TRACKS_COLLECTION) -> set[str]:
    """Where each segment's keyword indexes live ("ram" for indexes made before the layout)."""
    found = set()
    for config in (root / collection / "segments").glob("*/payload_index/config.json"):
        for field in json.loads(config.read_text())["indexed_fields"].values():
            found.add(field.get("memory", "ram") if isinstance(field, dict) else "ram")
    return found


def quantized_copies(root: Path, collection: str = C.TRACKS_COLLECTION) -> list[Path]:
    """The engine's quantized-vector files under a collection's segments."""
    return [p for p in (root / collection / "segments").rglob("*") if "quantized" in p.name]


def test_a_new_store_has_the_4bit_copy_float16_tracks_and_cold_parts(new_store: Path) -> None:
    root = new_store
    config = engine_config(root)
    assert config["quantization_config"]["turbo"]["bits"] == "bits4"
    assert {v["datatype"] for v in config["vectors"].values()} == {"float16"}
    assert {v["memory"] for v in config["vectors"].values()} == {"cold"}
    assert config["payload_memory"] == "cold" and config["hnsw_config"]["memory"] == "cold"
    assert keyword_index_memory(root) == {"cold"}
    assert quantized_copies(root), "the index build wrote no quantized vectors"
    centroids = engine_config(root, C.PLAYLISTS_COLLECTION)["vectors"]
    assert {v.get("datatype", "float32") for v in centroids.values()} == {"float32"}  # few, and kept exact


def test_the_approximate_search_finds_what_the_exact_one_finds(new_store: Path) -> None:
    with Store(EdgeBackend(new_store)) as store:
        store.bind_stored_model()
        found = 0
        for p in range(20):
            seeds = store.get_tracks([f"t:{i}" for i in range(p, TRACKS // 2, 50)], with_vectors=True)
            query = np.stack([s.vector for s in seeds.values()]).mean(axis=0)
            approx = [t.record.track_uri for t in store.nearest_tracks(query, 10, seeds)]
            exact = [t.record.track_uri for t in store.nearest_tracks(query, 10, seeds, exact=True)]
            assert len(approx) == 10 and approx[0] == exact[0]
            found += len(set(approx) & set(exact))
        assert found / 200 >= 0.95


def test_warming_reads_the_search_path_first_then_the_vector_in_use_and_never_the_log(new_store: Path) -> None:
    """What a service reads ahead as it opens (siamrec.store.warmup): the 4-bit copies first, then the HNSW graphs
    and the rest a search walks, then payloads and float originals (the vector in use before the other), never
    the write-ahead log; queries answer the same while and after it reads."""
    files = files_to_warm([new_store / C.TRACKS_COLLECTION, new_store / C.PLAYLISTS_COLLECTION], "m+adapted")
    parts = [path.relative_to(new_store).parts for path in files]
    assert "quantized" in "/".join(parts[0][-2:])
    assert not [p for p in parts if "wal" in p]
    on_demand = [bool(set(p) & ON_DEMAND_FOLDERS) or p[-1] in ON_DEMAND_FILES for p in parts]
    assert on_demand == sorted(on_demand) and any(on_demand)  # everything a search walks comes first
    graphs = [i for i, p in enumerate(parts) if any(part.startswith("vector_index") for part in p)]
    assert graphs and max(graphs) < on_demand.index(True)
    originals = [p for p in parts if p[-1] == "matrix.dat"]
    assert [p[-2] for p in originals] == ["vector_storage-m+adapted", "vector_storage-m"]  # the one in use first
    with Store(EdgeBackend(new_store)) as store:
        store.bind_stored_model()
        seeds = store.get_tracks([f"t:{i}" for i in range(0, TRACKS // 2, 50)], with_vectors=True)
        query = np.stack([s.vector for s in seeds.values()]).mean(axis=0)
        before = [t.record.track_uri for t in store.nearest_tracks(query, 10, seeds)]
        warming = warm_store(store)
        assert warming is not None
        during = [t.record.track_uri for t in store.nearest_tracks(query, 10, seeds)]
        read = warming.wait(60)
        assert read > sum(p.stat().st_blocks for p in new_store.rglob("matrix.dat")) * 512 // 2  # originals too
        assert [t.record.track_uri for t in store.nearest_tracks(query, 10, seeds)] == during == before
        assert warm_store(store, limit=4096).wait(60) == 4096  # type: ignore[union-attr]  # and no more than it may


def test_read_ahead_keeps_to_its_limit_skips_what_vanished_and_reads_no_holes(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 << 20))
    assert read_ahead([tmp_path / "vanished.bin", data], limit=1 << 30) == 3 << 20
    assert read_ahead([data], limit=1000) == 1000
    sparse = tmp_path / "sparse.bin"  # as the engine preallocates its 32 MiB chunks
    with open(sparse, "wb") as handle:
        handle.seek(32 << 20)
        handle.write(b"end")
    fd = os.open(sparse, os.O_RDONLY)
    try:
        holes = data_ranges(fd) != [(0, (32 << 20) + 3)]
    finally:
        os.close(fd)
    if not holes:
        pytest.skip("this filesystem does not report holes (SEEK_DATA): a sparse file is read whole there")
    assert read_ahead([sparse], limit=1 << 30) < 1 << 20


def test_a_small_store_written_before_the_layout_gets_it_with_every_point_as_it_was(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_store(EdgeBackend(root, LEGACY), tracks=300, dim=16)  # the store as the code before this layout wrote it
    before = dump(root, LEGACY)
    assert "quantization_config" not in engine_config(root) and keyword_index_memory(root) == {"ram"}
    assert dump(root) == before  # opened with the current layout: upgraded, and nothing read back differs
    assert keyword_index_memory(root) == {"cold"}
    for collection in (C.TRACKS_COLLECTION, C.PLAYLISTS_COLLECTION):
        assert engine_config(root, collection)["quantization_config"]["turbo"]["bits"] == "bits4"
        stored = engine_config(root, collection)["vectors"].values()
        assert {v.get("datatype", "float32") for v in stored} == {"float32"}  # the engine keeps a stored datatype
    assert dump(root) == before  # and a second open finds it as the first left it


def test_a_store_with_the_int8_copy_keeps_it_with_every_point_as_it_was(tmp_path: Path) -> None:
    """Stores made when the search copy was int8 are not rebuilt by an open: their copy is a quantized one."""
    root = tmp_path / "store"
    int8 = Layout(turbo4=False)
    write_store(EdgeBackend(root, int8), tracks=300, dim=16)
    before = dump(root, int8)
    assert engine_config(root)["quantization_config"]["scalar"]["type"] == "int8"
    assert dump(root) == before  # opened with the current layout
    assert engine_config(root)["quantization_config"]["scalar"]["type"] == "int8"


@pytest.mark.slow
def test_a_store_written_before_the_layout_is_upgraded_by_a_command_with_nothing_changed(tmp_path: Path) -> None:
    root = tmp_path / "home" / "store"
    write_store(EdgeBackend(root, LEGACY))  # the store as the code before this layout wrote it
    assert "quantization_config" not in engine_config(root) and not quantized_copies(root)
    before = dump(root, LEGACY)
    home = root.parent
    env = {**os.environ, "SIAMREC_HOME": str(home)}
    done = run_siamrec("info", "--json", env=env, check=True)
    assert json.loads(done.stdout)["tracks"] == TRACKS
    assert engine_config(root)["quantization_config"]["turbo"]["bits"] == "bits4"
    assert quantized_copies(root), "the upgrade wrote no quantized vectors"
    assert {v.get("datatype", "float32") for v in engine_config(root)["vectors"].values()} == {"float32"}  # as stored
    assert dump(root) == before
    assert len(segment_versions(root, C.TRACKS_COLLECTION)) == 1  # and leaves no segment behind the log
    assert "quantized search copy" in done.stderr  # the upgrade says what it does, once:
    assert "quantized search copy" not in run_siamrec("info", "--json", env=env, check=True).stderr
    with Store(EdgeBackend(root)) as store:  # and it searches as before
        store.bind_stored_model()
        query = store.get_tracks(["t:0"], with_vectors=True)["t:0"].vector
        assert query is not None
        hits = store.nearest_tracks(query, 5, cold_only=False)
        assert hits[0].record.track_uri == "t:0" and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_counting_without_a_filter_agrees_with_the_points_after_moves_rewrites_and_deletes(
    new_store: Path, tmp_path: Path
) -> None:
    """The unfiltered count is the engine's live count per segment (not a scan of every id): it must stay exact
    when points leave the indexed segment (a vector update moves them), are written again, or are deleted."""
    root = tmp_path / "store"
    shutil.copytree(new_store, root)
    with Store(EdgeBackend(root)) as store:
        store.bind_stored_model()
        assert store.backend.vectors(C.TRACKS_COLLECTION) and quantized_copies(root)  # an indexed segment
        moved = {point_id(f"t:{i}"): {"m": np.ones(DIM, np.float32)} for i in range(0, 1000)}
        store.backend.set_vectors(C.TRACKS_COLLECTION, moved)
        store.upsert_tracks([TrackRecord(f"t:{i}") for i in range(500, 1500)], np.ones((1000, DIM), np.float32))
        store.delete_tracks([f"t:{i}" for i in range(0, TRACKS, 7)])
        store.upsert_tracks([TrackRecord(f"t:new:{i}") for i in range(30)], np.ones((30, DIM), np.float32))
        scrolled = sum(1 for _ in store.iter_tracks(with_vectors=False))
        assert store.count_tracks() == scrolled == TRACKS - len(range(0, TRACKS, 7)) + 30


def test_indexing_leaves_no_segment_behind_the_write_ahead_log(new_store: Path) -> None:
    """The engine starts the segment it writes into next at version 0, and every later load then re-reads the
    whole retained log for it (0.1-0.2 s a shard, in every command); the backend stamps it after indexing with an
    update that changes nothing (the store's points are checked unchanged by the upgrade tests' dumps)."""
    for collection in (C.TRACKS_COLLECTION, C.PLAYLISTS_COLLECTION):
        versions = segment_versions(new_store, collection)
        assert len(versions) == 1 and versions.pop() > 0, collection
    assert len(list((new_store / C.TRACKS_COLLECTION / "segments").iterdir())) >= 2  # indexed + appendable


def segment_versions(root: Path, collection: str) -> set[int]:
    """The operation number each of a collection's segments is at (the engine's `segment.json`)."""
    return {json.loads(p.read_text())["version"] for p in (root / collection / "segments").glob("*/segment.json")}
