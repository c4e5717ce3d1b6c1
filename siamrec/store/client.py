"""The qdrant-client backend: a Qdrant server or cluster by URL (and `:memory:` for tests, the old local mode
for migration)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from siamrec.errors import StoreError
from siamrec.redact import one_line
from siamrec.store.backend import EVERYTHING, PAGE, Hit, IndexKind, Point, Where, payload_keys, pick_vectors

T = TypeVar("T")


def client_filter(where: Where) -> qm.Filter | None:
    """The filter for a Qdrant server, less `where.prefix` (servers before 1.19 have no prefix match: `scroll`
    tests it on the payloads)."""
    if not where:
        return None
    must: list[qm.Condition] = [qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key)) for key in where.empty]
    must += [qm.FieldCondition(key=key, match=qm.MatchAny(any=list(values))) for key, values in where.any_of.items()]
    must += [qm.FieldCondition(key=key, match=qm.MatchValue(value=value)) for key, value in where.equals.items()]
    must += [qm.FieldCondition(key=key, match=qm.MatchText(text=text)) for key, text in where.words.items()]
    must += [qm.HasVectorCondition(has_vector=where.has_vector)] if where.has_vector else []
    must_not: list[qm.Condition] = [qm.HasIdCondition(has_id=list(where.not_ids))] if where.not_ids else []
    must_not += [
        qm.FieldCondition(key=key, match=qm.MatchAny(any=list(values))) for key, values in where.none_of.items()
    ]
    return qm.Filter(must=must or None, must_not=must_not or None)


class ClientBackend:
    """Collections in Qdrant through qdrant-client."""

    def __init__(self, client: QdrantClient, location: str, api_key: str | None = None) -> None:
        self.client = client
        self.location = location
        self._api_key = api_key or ""

    @classmethod
    def server(cls, url: str, api_key: str | None) -> ClientBackend:
        """A client for the server at `url`, checked to be Qdrant before anything is read or written."""
        with warnings.catch_warnings():  # "api key over http" and version notes: the URL is the user's choice
            warnings.simplefilter("ignore")
            client = QdrantClient(url=url, api_key=api_key, timeout=30, check_compatibility=False)
            backend = cls(client, url, api_key)
        found = backend._call("version check", backend.client.info)
        if "qdrant" not in str(getattr(found, "title", "")).lower():
            backend.close()
            raise StoreError(f"the server at {url} is not a Qdrant server (check --qdrant-url)")
        return backend

    @classmethod
    def memory(cls) -> ClientBackend:
        return cls(QdrantClient(location=":memory:"), ":memory:")

    @classmethod
    def local(cls, path: str) -> ClientBackend:
        """qdrant-client's local mode (brute force, SQLite): only read, to migrate it."""
        try:
            return cls(QdrantClient(path=path), path)
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreError(f"the store at {path} is in use by another siamrec process: wait for it") from exc
            raise StoreError(f"cannot open the old store at {path}: {exc}") from exc

    def _call(self, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a client call, turning connection failures and answers that are not Qdrant's (HTML, `{}`, cut-off
        JSON: the client trips on them with its own asserts and parse errors) into one-line StoreErrors."""
        try:
            return func(*args, **kwargs)
        except UnexpectedResponse as exc:  # an HTTP error status: Qdrant's own words, or a proxy's
            raise StoreError(f"Qdrant {what} at {self.location} failed: {one_line(exc, self._api_key)}") from exc
        except ResponseHandlingException as exc:  # the client wraps both a lost connection and a bad answer
            if isinstance(exc.source, httpx.TransportError | ConnectionError):
                raise self._unreachable(what, exc.source) from exc
            raise self._not_qdrant(what, exc.source or exc) from exc
        except (httpx.TransportError, ConnectionError) as exc:
            raise self._unreachable(what, exc) from exc
        except (ValueError, AssertionError, TypeError, KeyError, AttributeError) as exc:
            raise self._not_qdrant(what, exc) from exc

    def _unreachable(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"Qdrant {what} at {self.location} failed: {one_line(exc, self._api_key)}")

    def _not_qdrant(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"Qdrant {what} at {self.location} failed: the answer is not from a Qdrant server "
            f"({type(exc).__name__}): check --qdrant-url"
        )

    def vectors(self, collection: str) -> dict[str, int] | None:
        if not self._call("collection check", self.client.collection_exists, collection):
            return None
        params = self._call("collection info", self.client.get_collection, collection).config.params.vectors
        if not isinstance(params, dict):
            return {}
        return {name: p.size for name, p in params.items()}

    def create(
        self, collection: str, vectors: dict[str, int], keyword_fields: Sequence[str],
        indexes: Mapping[str, IndexKind] | None = None,
    ) -> None:  # fmt: skip
        config = {name: qm.VectorParams(size=dim, distance=qm.Distance.COSINE) for name, dim in vectors.items()}
        self._call("create", self.client.create_collection, collection, vectors_config=config)
        for key in keyword_fields:
            self._index(collection, key, qm.PayloadSchemaType.KEYWORD)
        for key, kind in (indexes or {}).items():
            self.add_index(collection, key, kind)

    def _index(self, collection: str, key: str, schema: qm.PayloadSchemaType | qm.PayloadSchemaParams) -> None:
        with warnings.catch_warnings():  # local mode ignores payload indexes (and says so); servers use them
            warnings.simplefilter("ignore", UserWarning)
            self._call("index", self.client.create_payload_index, collection, key, schema)

    def indexed(self, collection: str) -> set[str]:
        return set(self._call("collection info", self.client.get_collection, collection).payload_schema)

    def add_index(self, collection: str, key: str, kind: IndexKind) -> None:
        schema: qm.PayloadSchemaParams = (
            qm.IntegerIndexParams(type=qm.IntegerIndexType.INTEGER, lookup=True, range=True)
            if kind == "integer"
            else qm.TextIndexParams(
                type=qm.TextIndexType.TEXT, tokenizer=qm.TokenizerType.PREFIX, lowercase=True, ascii_folding=True
            )
        )
        self._index(collection, key, schema)

    def add_vector(self, collection: str, name: str, dim: int) -> None:
        raise StoreError(
            f"a Qdrant server cannot add the vector {name!r} to an existing collection: recreate '{collection}'"
        )

    def drop(self, collection: str) -> None:
        self._call("delete collection", self.client.delete_collection, collection)

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        structs = [
            qm.PointStruct(id=p.id, vector={k: v.tolist() for k, v in p.vectors.items()}, payload=p.payload)
            for p in points
        ]
        self._call("upsert", self.client.upsert, collection, structs, wait=True)

    def set_payload(self, collection: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        self._call("set payload", self.client.set_payload, collection, payload, list(ids))

    def set_vectors(self, collection: str, vectors: dict[str, dict[str, np.ndarray]]) -> None:
        points = [
            qm.PointVectors(id=i, vector={k: v.tolist() for k, v in named.items()}) for i, named in vectors.items()
        ]
        self._call("update vectors", self.client.update_vectors, collection, points, wait=True)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self._call("delete", self.client.delete, collection, qm.PointIdsList(points=list(ids)))

    def retrieve(
        self, collection: str, ids: Sequence[str], vectors: Sequence[str] = (), with_payload: bool = True
    ) -> list[Hit]:
        points = self._call(
            "retrieve",
            self.client.retrieve,
            collection,
            list(ids),
            with_payload=with_payload,
            with_vectors=list(vectors) or False,
        )
        return [Hit(str(p.id), p.payload or {}, pick_vectors(p.vector, vectors)) for p in points]

    def _scroll(
        self, collection: str, where: Where, limit: int, with_payload: bool | list[str], offset: str | None = None,
        vectors: Sequence[str] = (), order_by: qm.OrderBy | None = None,
    ) -> tuple[list[qm.Record], Any]:  # fmt: skip
        """One page of the server's scroll under `where` (less its prefix conditions: see `client_filter`)."""
        return self._call(
            "scroll",
            self.client.scroll,
            collection,
            scroll_filter=client_filter(where),
            limit=limit,
            offset=offset,
            order_by=order_by,
            with_payload=with_payload,
            with_vectors=list(vectors) or False,
        )

    def scroll(
        self, collection: str, where: Where = EVERYTHING, vectors: Sequence[str] = (),
        with_payload: bool | Sequence[str] = True, start: str | None = None,
    ) -> Iterator[Hit]:  # fmt: skip
        if where.prefix and not with_payload:
            raise ValueError("a prefix condition is tested on the payloads: scroll them")
        if not isinstance(with_payload, bool):  # the keys a prefix is tested on are read too
            with_payload = list(dict.fromkeys([*with_payload, *where.prefix]))
        offset: str | None = start
        while True:
            points, offset = self._scroll(collection, where, PAGE, with_payload, offset=offset, vectors=vectors)
            for p in points:
                if where.holds_prefixes(p.payload or {}):
                    yield Hit(str(p.id), p.payload or {}, pick_vectors(p.vector, vectors))
            if offset is None:
                return

    def ordered(
        self, collection: str, key: str, start_from: int, limit: int, with_payload: bool | Sequence[str] = True,
        where: Where = EVERYTHING,
    ) -> list[Hit]:  # fmt: skip
        if where.prefix:  # tested on payloads after each page, it would shorten pages the walk counts on
            raise ValueError("a prefix condition is for scroll only")
        order = qm.OrderBy(key=key, start_from=start_from)
        points, _ = self._scroll(collection, where, limit, payload_keys(with_payload), order_by=order)
        return [Hit(str(p.id), p.payload or {}) for p in points]

    def count(self, collection: str, where: Where = EVERYTHING) -> int:
        if where.prefix:
            raise ValueError("a prefix condition is for scroll only")
        return self._call("count", self.client.count, collection, count_filter=client_filter(where)).count

    def _query(self, collection: str, using: str, query: Any, limit: int, where: Where, exact: bool) -> list[Hit]:
        if where.prefix:
            raise ValueError("a prefix condition is for scroll only")
        response = self._call(
            "query",
            self.client.query_points,
            collection,
            query=query,
            using=using,
            query_filter=client_filter(where),
            search_params=qm.SearchParams(exact=True) if exact else None,
            limit=limit,
            with_payload=True,
            with_vectors=[using],
        )
        return [Hit(str(p.id), p.payload or {}, pick_vectors(p.vector, [using]), p.score) for p in response.points]

    def nearest(
        self, collection: str, using: str, vector: np.ndarray, limit: int, where: Where, exact: bool = False
    ) -> list[Hit]:
        return self._query(collection, using, vector.tolist(), limit, where, exact)

    def best_score(
        self, collection: str, using: str, positives: np.ndarray, limit: int, where: Where, exact: bool = False,
        negatives: np.ndarray | None = None,
    ) -> list[Hit]:  # fmt: skip
        query = qm.RecommendQuery(
            recommend=qm.RecommendInput(
                positive=[row.tolist() for row in positives],
                negative=[] if negatives is None else [row.tolist() for row in negatives],
                strategy=qm.RecommendStrategy.BEST_SCORE,
            )
        )
        return self._query(collection, using, query, limit, where, exact)

    def close(self) -> None:
        self.client.close()
