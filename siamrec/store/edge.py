"""The embedded backend: Qdrant Edge (Qdrant's own engine in-process: HNSW, payload indexes, a write-ahead log).

One folder holds one shard per collection, `collections.json` (each collection's named vectors, which Edge
does not report back) and `store.lock`, an OS lock that keeps a second process out while this one runs.
A write is acknowledged once it is in the shard's write-ahead log, so a killed process loses nothing it was
told had been stored. New points are searched exactly until `optimize()` builds their HNSW index (the Store
does it when a command that wrote closes), so results never depend on whether indexing has run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from siamrec.errors import StoreError
from siamrec.store.backend import EVERYTHING, PAGE, Hit, Point, Where, pick_vectors

META = "collections.json"
LOCK = "store.lock"
HNSW_EF = 128  # search breadth: recall@10 ≥ 0.95 at 1M tracks (benchmarks/store_scale.py)


def edge_filter(where: Where) -> qe.Filter | None:
    if not where:
        return None
    must: list[Any] = [qe.IsEmptyCondition(key) for key in where.empty]
    must += [qe.FieldCondition(key, match=qe.MatchAny(list(values))) for key, values in where.any_of.items()]
    must_not: list[Any] = [qe.HasIdCondition(set(where.not_ids))] if where.not_ids else []
    must_not += [qe.FieldCondition(key, match=qe.MatchAny(list(values))) for key, values in where.none_of.items()]
    return qe.Filter(must=must or None, must_not=must_not or None)


def _damaged(root: Path, what: str) -> StoreError:
    return StoreError(
        f"the store at {root} is damaged ({what}): restore its backup (`siamrec store restore`) "
        "or move the folder away and rebuild with `siamrec add-track`/`sync-playlists`"
    )


class EdgeBackend:
    """Collections as Qdrant Edge shards under one folder, held by one process at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self._lock = self._take_lock(root)
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dirty: set[str] = set()
        try:
            meta = root / META
            self._meta: dict[str, dict[str, int]] = json.loads(meta.read_text()) if meta.exists() else {}
        except (OSError, ValueError) as exc:
            self._release()
            raise _damaged(root, f"{META} unreadable: {exc}") from exc

    @staticmethod
    def _take_lock(root: Path) -> int:
        root.mkdir(parents=True, exist_ok=True)
        lock = root / LOCK
        if lock.exists() and not lock.is_file():
            raise StoreError(f"{lock} should be a file but is not: remove it (the data beside it is untouched)")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"the store at {root} is in use by another siamrec process: wait for it to finish, or run a Qdrant "
                "server and pass --qdrant-url"
            ) from None
        return fd

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
                shard = qe.EdgeShard.load(str(self.root / collection))
            except BaseException as exc:  # the engine raises its own (Rust panic) types on damaged files
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise _damaged(self.root, f"{collection}: {reason}") from exc
            self._shards[collection] = shard
        return shard

    def _write_meta(self) -> None:
        tmp = self.root / f"{META}.tmp"
        tmp.write_text(json.dumps(self._meta, indent=1, sort_keys=True))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / META)

    def vectors(self, collection: str) -> dict[str, int] | None:
        found = self._meta.get(collection)
        return None if found is None else dict(found)

    def create(self, collection: str, vectors: dict[str, int], keyword_fields: Sequence[str]) -> None:
        config = qe.EdgeConfig(
            vectors={name: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine) for name, dim in vectors.items()}
        )
        path = self.root / collection
        if path.exists():  # a creation interrupted before collections.json named it: nothing acknowledged there
            shutil.rmtree(path, ignore_errors=True)
        shard = qe.EdgeShard.create(str(path), config)
        for key in keyword_fields:
            shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword))
        shard.flush()
        self._shards[collection] = shard
        self._meta[collection] = dict(vectors)
        self._write_meta()

    def add_vector(self, collection: str, name: str, dim: int) -> None:
        self._shard(collection).update(qe.UpdateOperation.create_dense_vector(name, dim, qe.Distance.Cosine))
        self._meta[collection][name] = dim
        self._write_meta()

    def drop(self, collection: str) -> None:
        shard = self._shards.pop(collection, None)
        if shard is not None:
            shard.close()
        self._meta.pop(collection, None)
        self._dirty.discard(collection)
        self._write_meta()
        shutil.rmtree(self.root / collection, ignore_errors=True)

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        edge_points = [
            qe.Point(p.id, {k: v.astype(np.float32).tolist() for k, v in p.vectors.items()}, p.payload) for p in points
        ]
        self._shard(collection).update(qe.UpdateOperation.upsert_points(edge_points))
        self._dirty.add(collection)

    def set_payload(self, collection: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        self._shard(collection).update(qe.UpdateOperation.set_payload(list(ids), payload))

    def set_vectors(self, collection: str, vectors: dict[str, dict[str, np.ndarray]]) -> None:
        updates = [
            qe.PointVectors(i, {k: v.astype(np.float32).tolist() for k, v in named.items()})
            for i, named in vectors.items()
        ]
        self._shard(collection).update(qe.UpdateOperation.update_vectors(updates))
        self._dirty.add(collection)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self._shard(collection).update(qe.UpdateOperation.delete_points(list(ids)))

    def retrieve(self, collection: str, ids: Sequence[str], vectors: Sequence[str] = ()) -> list[Hit]:
        records = self._shard(collection).retrieve(list(ids), with_payload=True, with_vector=list(vectors) or False)
        return [Hit(str(r.id), r.payload or {}, pick_vectors(r.vector, vectors)) for r in records]

    def scroll(self, collection: str, where: Where = EVERYTHING, vectors: Sequence[str] = ()) -> Iterator[Hit]:
        shard = self._shard(collection)
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=PAGE,
                filter=edge_filter(where),
                with_payload=True,
                with_vector=list(vectors) or False,
            )
            records, offset = shard.scroll(request)
            for r in records:
                yield Hit(str(r.id), r.payload or {}, pick_vectors(r.vector, vectors))
            if offset is None:
                return

    def count(self, collection: str, where: Where = EVERYTHING) -> int:
        return self._shard(collection).count(qe.CountRequest(filter=edge_filter(where), exact=True))

    def _query(self, collection: str, using: str, query: Any, limit: int, where: Where, exact: bool) -> list[Hit]:
        request = qe.QueryRequest(
            limit=limit,
            query=query,
            filter=edge_filter(where),
            with_payload=True,
            with_vector=[using],
            params=qe.SearchParams(hnsw_ef=HNSW_EF, exact=exact),
        )
        points = self._shard(collection).query(request)
        return [Hit(str(p.id), p.payload or {}, pick_vectors(p.vector, [using]), p.score) for p in points]

    def nearest(
        self, collection: str, using: str, vector: np.ndarray, limit: int, where: Where, exact: bool = False
    ) -> list[Hit]:
        return self._query(collection, using, qe.Query.Nearest(vector.tolist(), using=using), limit, where, exact)

    def best_score(
        self, collection: str, using: str, positives: np.ndarray, limit: int, where: Where, exact: bool = False
    ) -> list[Hit]:
        query = qe.Query.RecommendBestScore(qe.RecommendQuery([row.tolist() for row in positives], []), using=using)
        return self._query(collection, using, query, limit, where, exact)

    def optimize(self) -> None:
        """Build the HNSW index over what was written since the last time (blocking)."""
        for collection in sorted(self._dirty):
            self._shard(collection).optimize()
        self._dirty.clear()

    def close(self) -> None:
        try:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
        finally:
            self._release()
