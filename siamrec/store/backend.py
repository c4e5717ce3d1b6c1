"""What a store backend does, in the project's words: the one interface every engine implements.

A backend holds named collections of points (id, named vectors, JSON payload). Everything above it (the
`Store`) speaks this interface only, so a new engine is one class and no caller ever sees an engine's types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

PAGE = 1000
IndexKind = Literal["integer", "text"]


@dataclass(frozen=True)
class Point:
    """A point to write: its id (uuid5 of a URI), its named vectors (may be empty) and its payload."""

    id: str
    vectors: dict[str, np.ndarray]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    """A point read back: payload, the vectors asked for, and a similarity score for query results."""

    id: str
    payload: dict[str, Any]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    score: float = 0.0


@dataclass(frozen=True)
class Where:
    """A filter: payload fields that must be empty, fields that must (`any_of`) or must not (`none_of`) hold
    one of some values, integer fields that must equal a number (`equals`), keyword fields that must start with a
    prefix (`prefix`; scroll only), text fields with a word starting with each word given (`words`, through their
    text index; qdrant-client's memory mode, which has no index, matches whole words only), a named vector the point
    must hold (`has_vector`), ids left out."""

    empty: tuple[str, ...] = ()
    any_of: dict[str, list[str]] = field(default_factory=dict)
    equals: dict[str, int] = field(default_factory=dict)
    not_ids: tuple[str, ...] = ()
    none_of: dict[str, list[str]] = field(default_factory=dict)
    prefix: dict[str, str] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)
    has_vector: str = ""

    def __bool__(self) -> bool:
        conditions = (self.empty, self.any_of, self.equals, self.not_ids, self.none_of, self.prefix, self.words)
        return any(conditions) or bool(self.has_vector)

    def holds_prefixes(self, payload: dict[str, object]) -> bool:
        """Whether `payload` passes the prefix conditions (for an engine that cannot test them itself)."""
        return all(str(payload.get(key, "")).startswith(start) for key, start in self.prefix.items())


EVERYTHING = Where()


class Backend(Protocol):
    """An engine holding collections of points; errors surface as StoreError with one line."""

    location: str

    def vectors(self, collection: str) -> dict[str, int] | None:
        """Name → dimension of the collection's dense vectors; None when the collection does not exist."""

    def create(
        self, collection: str, vectors: dict[str, int], keyword_fields: Sequence[str],
        indexes: Mapping[str, IndexKind] | None = None,
    ) -> None:  # fmt: skip
        """Create the collection (cosine vectors) with keyword indexes on `keyword_fields` and the `indexes` of
        other kinds (field → kind, as `add_index` makes them)."""

    def indexed(self, collection: str) -> set[str]:
        """The payload fields the collection has an index on."""

    def add_index(self, collection: str, key: str, kind: IndexKind) -> None:
        """Index a field of an existing collection, for stores made before it: an integer (equality and order) or
        a text (its words and their beginnings, any case and accent)."""

    def add_vector(self, collection: str, name: str, dim: int) -> None:
        """Add another named vector to an existing collection (e.g. a derived, adapted vector)."""

    def drop(self, collection: str) -> None: ...

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Write whole points (a point without a vector has none afterwards); acknowledged = durable."""

    def set_payload(self, collection: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Set some payload keys of existing points, leaving their vectors and other keys alone."""

    def set_vectors(self, collection: str, vectors: dict[str, dict[str, np.ndarray]]) -> None:
        """Set some named vectors of existing points ({id: {name: vector}}), leaving the rest of each alone."""

    def delete(self, collection: str, ids: Sequence[str]) -> None: ...

    def retrieve(
        self, collection: str, ids: Sequence[str], vectors: Sequence[str] = (), with_payload: bool = True
    ) -> list[Hit]:
        """The points among `ids` that exist. `with_payload` off may leave each payload unread (`{}`): a pass
        that needs only vectors then skips converting every payload."""

    def scroll(
        self, collection: str, where: Where = EVERYTHING, vectors: Sequence[str] = (),
        with_payload: bool | Sequence[str] = True, start: str | None = None,
    ) -> Iterator[Hit]:  # fmt: skip
        """Every point matching `where`, a page at a time, in the order of their ids (from the id `start`, when
        given: point ids are UUIDs hashed from the URIs, so the points after any id are a random draw). A list
        for `with_payload` reads only those keys."""

    def ordered(
        self, collection: str, key: str, start_from: int, limit: int, with_payload: bool | Sequence[str] = True,
        where: Where = EVERYTHING,
    ) -> list[Hit]:  # fmt: skip
        """The first `limit` points matching `where` whose integer `key` is at least `start_from`, in the order of
        that key (its integer index); points with equal values come in no set order."""

    def count(self, collection: str, where: Where = EVERYTHING) -> int: ...

    def nearest(
        self, collection: str, using: str, vector: np.ndarray, limit: int, where: Where, exact: bool = False
    ) -> list[Hit]:
        """Points by cosine similarity to `vector`, best first, with payload and the `using` vector."""

    def best_score(
        self, collection: str, using: str, positives: np.ndarray, limit: int, where: Where, exact: bool = False,
        negatives: np.ndarray | None = None,
    ) -> list[Hit]:  # fmt: skip
        """Qdrant's recommend best_score with raw example vectors `[n, D]` and optional negative ones (examples
        are not excluded)."""

    def close(self) -> None: ...


def as_vector(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def payload_keys(with_payload: bool | Sequence[str]) -> bool | list[str]:
    """All of each payload, none, or only some keys, as the engines take it."""
    return with_payload if isinstance(with_payload, bool) else list(with_payload)


def pick_vectors(raw: Any, wanted: Sequence[str]) -> dict[str, np.ndarray]:
    """An engine's named-vector dict reduced to the names asked for, as float32 arrays."""
    if not isinstance(raw, dict):
        return {}
    return {name: as_vector(raw[name]) for name in wanted if raw.get(name) is not None}
