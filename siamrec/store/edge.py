"""The embedded backend: Qdrant Edge (Qdrant's own engine in-process: HNSW, payload indexes, a write-ahead log).

One folder holds one shard per collection, `collections.json` (each collection's named vectors, which Edge
does not report back) and `store.lock`, an OS lock that keeps a second process out while this one runs.
A folder that holds shards is never re-created: when `collections.json` is missing, damaged or disagrees with
the shards, it is rebuilt from each shard's own `edge_config.json` (the engine writes it on creation and on
every added vector); when that cannot be read either, the store is refused in one line and left as it is.
A write is acknowledged once it is in the shard's write-ahead log, so a killed process loses nothing it was
told had been stored. New points are searched exactly until `optimize()` builds their HNSW index (the Store
does it when a command that wrote closes), so results never depend on whether indexing has run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from siamrec.errors import StoreError
from siamrec.logs import get_logger
from siamrec.store.backend import EVERYTHING, PAGE, Hit, IndexKind, Point, Where, payload_keys, pick_vectors
from siamrec.store.conversions import as_lists, edge_filter
from siamrec.store.disk import (
    check_room,
    disk_error,
    folder_error,
    guard_bus_errors,
    points_bytes,
    take_lock,
    write_json_atomically,
)
from siamrec.store.layout import DEFAULT, Layout, needs_upgrade, stored_datatypes
from siamrec.store.warmup import Warming, files_to_warm, memory_budget

log = get_logger(__name__)
COSINE = qe.Distance.Cosine
FLUSH_BYTES = 512 << 20  # a long write flushes this often: its log would otherwise hold every point (8 GB at 1M)
META = "collections.json"
SHARD_CONFIG = "edge_config.json"  # Qdrant Edge's own record of a shard's vectors
Meta = dict[str, dict[str, int]]


def _damaged(root: Path, what: str) -> StoreError:
    return StoreError(
        f"the store at {root} is damaged ({what}): restore its backup (`siamrec store restore BACKUP --force`) "
        "or move the folder away and rebuild with `siamrec add-track`/`sync-playlists`"
    )


def _vectors_of(value: object) -> dict[str, int] | None:
    """`{name: dim}` when `value` is one (positive integer dims, at least one vector), else None."""
    if not isinstance(value, dict) or not value:
        return None
    if not all(isinstance(k, str) and type(v) is int and v > 0 for k, v in value.items()):
        return None
    return dict(value)


def parse_meta(text: str) -> Meta | None:
    """collections.json's content when it is well formed, else None (missing keys, wrong types, bad JSON)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    meta = {name: _vectors_of(vectors) for name, vectors in raw.items()}
    return None if any(v is None for v in meta.values()) else meta  # type: ignore[return-value]


def shard_config(folder: Path) -> dict[str, Any] | None:
    """The engine's own record of a shard's config (`edge_config.json`), None when missing or unreadable."""
    try:
        raw = json.loads((folder / SHARD_CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def shard_vectors(folder: Path) -> dict[str, int] | None:
    """A shard's `{name: dim}` from the engine's own config file, None when there is none or it is unreadable."""
    raw = shard_config(folder)
    vectors = raw.get("vectors") if raw is not None else None
    if not isinstance(vectors, dict):
        return None
    sizes = {name: p.get("size") if isinstance(p, dict) else None for name, p in vectors.items()}
    return _vectors_of(sizes)


def shard_folders(root: Path) -> list[Path]:
    """The folders under `root` that hold a shard (anything but the metadata, lock and temporary files)."""
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise folder_error(root, exc) from exc


def holds_data(root: Path) -> bool:
    """Whether a store folder holds shards or their metadata (a lock alone, or nothing, is a new store)."""
    return (root / META).exists() or bool(shard_folders(root))


def read_meta(root: Path) -> Meta:
    """The collections of the store at `root`: collections.json when it agrees with the shards, else rebuilt
    from the shards' own configs (and written back), else a one-line refusal. Never re-creates anything."""
    folders = shard_folders(root)
    try:
        text: str | None = (root / META).read_text()
    except FileNotFoundError:
        text = None
    except (OSError, ValueError) as exc:
        raise _damaged(root, f"{META} unreadable: {exc}") from exc
    meta = None if text is None else parse_meta(text)
    if meta is not None and _agrees(root, meta, folders):
        return meta
    if text is None and not folders:
        return {}  # a new store
    what = "missing" if text is None else "damaged" if meta is None else "out of step with the shards"
    if not folders:
        raise _damaged(root, f"{META} is {what} and there are no shards to rebuild it from")
    rebuilt: Meta = {}
    for folder in folders:
        vectors = shard_vectors(folder)
        if vectors is None:
            raise _damaged(root, f"{META} is {what}, and {folder.name}/{SHARD_CONFIG} cannot be read to rebuild it")
        rebuilt[folder.name] = vectors
    log.warning("%s of the store at %s was %s: rebuilt it from the shards", META, root, what)
    try:
        write_json_atomically(root / META, rebuilt)
    except OSError as exc:  # read-only or full: the rebuilt copy serves this command, the next one rebuilds again
        log.warning("could not write the rebuilt %s: %s", META, exc.strerror or exc)
    return rebuilt


def _agrees(root: Path, meta: Meta, folders: list[Path]) -> bool:
    """Whether collections.json tells the truth about the shards: each listed shard has the vectors its engine
    config lists, and a shard it does not list holds no points (what a creation killed before collections.json
    named it leaves; the next creation replaces it)."""
    for folder in folders:
        found = shard_vectors(folder)
        if folder.name in meta:
            if found is not None and found != meta[folder.name]:
                return False
        elif found is not None and _points_in(root, folder) > 0:
            return False
    return True


def _points_in(root: Path, folder: Path) -> int:
    """How many points a shard holds (it is loaded: only for a shard collections.json does not name)."""
    try:
        shard = qe.EdgeShard.load(str(folder))
        try:
            return int(shard.count(qe.CountRequest(exact=True)))
        finally:
            shard.close()
    except BaseException as exc:  # the engine raises its own (Rust panic) types on damaged files
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise _damaged(root, f"{folder.name} is not named in {META} and cannot be read") from exc


def settle_log(shard: qe.EdgeShard) -> None:
    """Bring every segment of a just-optimized shard to the current version, so that opening it reads no log.

    The engine starts the empty segment it writes into next at version 0, and every later load re-reads the whole
    retained write-ahead log for it (up to 64 MB: 0.1-0.2 s a shard, in every command). An update of one point
    that sets no payload key changes nothing stored, but stamps that segment with the current version.
    """
    records, _ = shard.scroll(qe.ScrollRequest(limit=1, with_payload=False, with_vector=False))
    if records:
        shard.update(qe.UpdateOperation.set_payload([records[0].id], {}))


class EdgeBackend:
    """Collections as Qdrant Edge shards under one folder, held by one process at a time."""

    def __init__(self, root: Path, layout: Layout = DEFAULT) -> None:
        self.root = root
        self.location = str(root)
        self.layout = layout
        self._lock = take_lock(root)
        guard_bus_errors()
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dirty: set[str] = set()
        self._unflushed = 0  # bytes written since the last flush
        try:
            self._meta: Meta = read_meta(root)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)  # closing the descriptor drops the flock
            self._lock = -1

    def _shard(self, collection: str) -> qe.EdgeShard:
        shard = self._shards.get(collection)
        if shard is None:
            if collection not in self._meta:
                raise StoreError(f"internal: collection {collection!r} does not exist")
            try:
                shard = self._load(collection)
            except StoreError:
                raise
            except BaseException as exc:  # the engine raises its own (Rust panic) types on damaged files
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise _damaged(self.root, f"{collection}: {reason}") from exc
            self._shards[collection] = shard
        return shard

    def _load(self, collection: str) -> qe.EdgeShard:
        """Load a shard; one created before the current layout gets it now (the quantized copy is built once, the
        points themselves are not rewritten), unless the disk lacks room for that (it stays searchable as is)."""
        folder = self.root / collection
        found = shard_config(folder)
        if found is None or not needs_upgrade(found, self.layout):
            return qe.EdgeShard.load(str(folder))
        needed = sum(p.stat().st_size for p in (folder / "segments").rglob("*") if p.is_file())  # rebuilt beside
        try:
            check_room(self.root, needed, f"adding the quantized search copy to '{collection}'")
        except StoreError as exc:
            log.warning("%s (searches use the stored vectors meanwhile)", exc)
            return qe.EdgeShard.load(str(folder))
        config = self.layout.config(collection, self._meta[collection], stored_datatypes(found))
        shard = qe.EdgeShard.load(str(folder), config)
        log.warning("the store's '%s' gets the current layout (a quantized search copy): once", collection)
        try:
            for key, index in shard.info().payload_schema.items():  # mapped, not read into memory on every open
                if index.data_type == qe.PayloadSchemaType.Keyword:
                    shard.update(qe.UpdateOperation.create_field_index(key, self.layout.keyword_index()))
                elif index.data_type == qe.PayloadSchemaType.Integer:
                    shard.update(qe.UpdateOperation.create_field_index(key, self.layout.integer_index()))
            shard.optimize()
            settle_log(shard)
        except Exception as exc:
            shard.close()
            full = disk_error(self.root, exc)
            if full is None:
                raise
            raise full from exc
        return shard

    def _write_meta(self) -> None:
        write_json_atomically(self.root / META, self._meta)

    def vectors(self, collection: str) -> dict[str, int] | None:
        found = self._meta.get(collection)
        return None if found is None else dict(found)

    def create(
        self, collection: str, vectors: dict[str, int], keyword_fields: Sequence[str],
        indexes: Mapping[str, IndexKind] | None = None,
    ) -> None:  # fmt: skip
        config = self.layout.config(collection, vectors)
        path = self.root / collection
        if path.exists():  # a creation interrupted before collections.json named it: nothing acknowledged there
            shutil.rmtree(path, ignore_errors=True)
        shard = qe.EdgeShard.create(str(path), config)
        for key in keyword_fields:
            shard.update(qe.UpdateOperation.create_field_index(key, self.layout.keyword_index()))
        for key, kind in (indexes or {}).items():
            shard.update(qe.UpdateOperation.create_field_index(key, self.layout.index(kind)))
        shard.flush()
        self._shards[collection] = shard
        self._meta[collection] = dict(vectors)
        self._write_meta()

    def indexed(self, collection: str) -> set[str]:
        return set(self._shard(collection).info().payload_schema)

    def add_index(self, collection: str, key: str, kind: IndexKind) -> None:
        self._shard(collection).update(qe.UpdateOperation.create_field_index(key, self.layout.index(kind)))
        self._dirty.add(collection)

    def add_vector(self, collection: str, name: str, dim: int) -> None:
        datatype = self.layout.datatype(collection)
        self._shard(collection).update(qe.UpdateOperation.create_dense_vector(name, dim, COSINE, datatype=datatype))
        self._meta[collection][name] = dim
        self._write_meta()

    def drop(self, collection: str) -> None:
        shard = self._shards.pop(collection, None)
        if shard is not None:
            shard.close()
        self._meta.pop(collection, None)
        self._dirty.discard(collection)
        self._write_meta()
        hidden = self.root / f".dropped-{collection}"  # out of sight at once, so a kill mid-way leaves no half shard
        shutil.rmtree(hidden, ignore_errors=True)
        if (self.root / collection).exists():
            os.replace(self.root / collection, hidden)
        shutil.rmtree(hidden, ignore_errors=True)

    def _update(self, collection: str, operation: Any, needed: int, what: str) -> None:
        """Apply a write once the disk has room for it (`needed` bytes); a full disk is one line."""
        shard = self._shard(collection)
        check_room(self.root, needed, what)
        try:
            shard.update(operation)
            self._unflushed += needed
            if self._unflushed > FLUSH_BYTES:  # the write-ahead log is cut back only when the segments are flushed
                shard.flush()
                self._unflushed = 0
        except Exception as exc:  # the engine's own error types; a full disk is the one a user can fix
            full = disk_error(self.root, exc)
            if full is None:
                raise
            raise full from exc

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        rows = as_lists([p.vectors for p in points])
        edge_points = [qe.Point(p.id, named, p.payload) for p, named in zip(points, rows, strict=True)]
        needed = points_bytes(self._meta.get(collection, {}), [p.vectors for p in points], [p.payload for p in points])
        what = f"{len(points)} point" + ("s" if len(points) != 1 else "")
        self._update(collection, qe.UpdateOperation.upsert_points(edge_points), needed, what)
        self._dirty.add(collection)

    def set_payload(self, collection: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        needed = points_bytes({}, [], [payload] * len(ids))
        self._update(collection, qe.UpdateOperation.set_payload(list(ids), payload), needed, "a payload update")

    def set_vectors(self, collection: str, vectors: dict[str, dict[str, np.ndarray]]) -> None:
        updates = [
            qe.PointVectors(i, named) for i, named in zip(vectors, as_lists(list(vectors.values())), strict=True)
        ]
        needed = points_bytes(self._meta.get(collection, {}), vectors.values(), [])
        what = f"{len(updates)} vector" + ("s" if len(updates) != 1 else "")
        self._update(collection, qe.UpdateOperation.update_vectors(updates), needed, what)
        self._dirty.add(collection)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self._update(collection, qe.UpdateOperation.delete_points(list(ids)), 0, "a deletion")

    def retrieve(
        self, collection: str, ids: Sequence[str], vectors: Sequence[str] = (), with_payload: bool = True
    ) -> list[Hit]:
        wanted = list(vectors) or False
        records = self._shard(collection).retrieve(list(ids), with_payload=with_payload, with_vector=wanted)
        return [Hit(str(r.id), r.payload or {}, pick_vectors(r.vector, vectors)) for r in records]

    def scroll(
        self, collection: str, where: Where = EVERYTHING, vectors: Sequence[str] = (),
        with_payload: bool | Sequence[str] = True, start: str | None = None,
    ) -> Iterator[Hit]:  # fmt: skip
        payload = payload_keys(with_payload)
        shard = self._shard(collection)
        offset: str | None = start
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=PAGE,
                filter=edge_filter(where),
                with_payload=payload,
                with_vector=list(vectors) or False,
            )
            records, offset = shard.scroll(request)
            for r in records:
                yield Hit(str(r.id), r.payload or {}, pick_vectors(r.vector, vectors))
            if offset is None:
                return

    def ordered(
        self, collection: str, key: str, start_from: int, limit: int, with_payload: bool | Sequence[str] = True,
        where: Where = EVERYTHING,
    ) -> list[Hit]:  # fmt: skip
        order, payload = qe.OrderBy(key, start_from=start_from), payload_keys(with_payload)
        request = qe.ScrollRequest(limit=limit, with_payload=payload, order_by=order, filter=edge_filter(where))
        records, _ = self._shard(collection).scroll(request)
        return [Hit(str(r.id), r.payload or {}) for r in records]

    def count(self, collection: str, where: Where = EVERYTHING) -> int:
        # Without a filter the engine's estimate is each segment's live point count, summed: exact here (no
        # optimizer runs beside this process), where an "exact" count collects every id (0.12 s at 1M tracks).
        return self._shard(collection).count(qe.CountRequest(filter=edge_filter(where), exact=bool(where)))

    def _query(self, collection: str, using: str, query: Any, limit: int, where: Where, exact: bool) -> list[Hit]:
        request = qe.QueryRequest(
            limit=limit,
            query=query,
            filter=edge_filter(where),
            with_payload=True,
            with_vector=[using],
            params=self.layout.search(exact),
        )
        points = self._shard(collection).query(request)
        return [Hit(str(p.id), p.payload or {}, pick_vectors(p.vector, [using]), p.score) for p in points]

    def nearest(
        self, collection: str, using: str, vector: np.ndarray, limit: int, where: Where, exact: bool = False
    ) -> list[Hit]:
        return self._query(collection, using, qe.Query.Nearest(vector.tolist(), using=using), limit, where, exact)

    def best_score(
        self, collection: str, using: str, positives: np.ndarray, limit: int, where: Where, exact: bool = False,
        negatives: np.ndarray | None = None,
    ) -> list[Hit]:  # fmt: skip
        against = [] if negatives is None else [row.tolist() for row in negatives]
        examples = qe.RecommendQuery([row.tolist() for row in positives], against)
        query = qe.Query.RecommendBestScore(examples, using=using)
        return self._query(collection, using, query, limit, where, exact)

    def optimize(self) -> None:
        """Build the HNSW index over what was written since the last time (blocking)."""
        for collection in sorted(self._dirty):
            shard = self._shard(collection)
            # the index is built into new segments beside the old ones: room for the collection's vectors again
            needed = 2 * self.count(collection) * sum(self._meta.get(collection, {}).values()) * 4
            try:
                check_room(self.root, needed, f"indexing '{collection}'")
            except StoreError as exc:
                log.warning("%s (searches stay exact until the next write indexes it)", exc)
                continue
            try:
                shard.optimize()
                settle_log(shard)
            except Exception as exc:
                full = disk_error(self.root, exc)
                if full is None:
                    raise
                raise full from exc
        self._dirty.clear()

    def warm(self, vector: str | None = None, limit: int | None = None) -> Warming:
        """Load every collection now and read the store into the page cache in the background (warmup)."""
        for collection in self._meta:
            self._shard(collection)
        files = files_to_warm((self.root / collection for collection in self._meta), vector)
        return Warming(files, memory_budget() if limit is None else limit)

    def close(self) -> None:
        try:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
        finally:
            self._release()
