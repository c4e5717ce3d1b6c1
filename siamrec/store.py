"""The Qdrant store: one point per track and one per playlist, embedded locally or on a server/cluster.

Point ids are uuid5(NAMESPACE_URL, uri), so writing the same track or playlist twice updates one point.
Each collection holds one named vector, named after the model that made it; a different model is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from siamrec import constants as C
from siamrec.config import Settings
from siamrec.errors import ModelError, NotFoundError, StoreError
from siamrec.uris import point_id

SCROLL_PAGE = 1000
WRITE_BATCH = 256
TRACK_KEYWORD_FIELDS = ("track_uri", "playlists", "audio_sha1", "source")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class TrackRecord:
    """A track's payload (the DESIGN.md schema plus the audio path that bench baselines re-read)."""

    track_uri: str
    title: str = ""
    artist: str = ""
    album: str = ""
    duration_s: float | None = None
    source: str = "local"
    audio_sha1: str | None = None
    path: str | None = None
    added_at: str = field(default_factory=now_iso)
    playlists: list[str] = field(default_factory=list)


@dataclass
class PlaylistRecord:
    """A playlist's payload; its point's vector is the centroid of its tracks' vectors."""

    playlist_uri: str
    name: str
    source: str = "local"
    track_uris: list[str] = field(default_factory=list)
    followers: int | None = None
    description: str = ""


@dataclass(frozen=True)
class StoredTrack:
    record: TrackRecord
    vector: np.ndarray | None


def track_from_payload(payload: dict[str, Any]) -> TrackRecord:
    known = TrackRecord.__dataclass_fields__
    return TrackRecord(**{key: value for key, value in payload.items() if key in known})


def playlist_from_payload(payload: dict[str, Any]) -> PlaylistRecord:
    known = PlaylistRecord.__dataclass_fields__
    return PlaylistRecord(**{key: value for key, value in payload.items() if key in known})


def open_client(settings: Settings) -> QdrantClient:
    """A server client when a URL is configured, else the embedded store under SIAMREC_HOME."""
    if settings.qdrant_url:
        return QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=30)
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(settings.qdrant_path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreError(
                f"the store at {settings.qdrant_path} is in use by another siamrec process: wait for it to "
                "finish, or run a Qdrant server and pass --qdrant-url"
            ) from exc
        raise StoreError(f"cannot open the store at {settings.qdrant_path}: {exc}") from exc


class Store:
    """Tracks and playlists in Qdrant, bound to one model (its name is the collections' vector name)."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client
        self._model: tuple[str, int] | None = None

    @classmethod
    def open(cls, settings: Settings) -> Store:
        return cls(open_client(settings))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- schema -------------------------------------------------------------------------------------

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call, turning connection failures into one-line StoreErrors."""
        try:
            return func(*args, **kwargs)
        except (ResponseHandlingException, UnexpectedResponse, ConnectionError) as exc:
            raise StoreError(f"Qdrant {what} failed: {str(exc).splitlines()[0]}") from exc

    def stored_model(self) -> tuple[str, int] | None:
        """(vector name, dimension) the tracks collection was created for, or None when it does not exist."""
        if not self._call("collection check", self.client.collection_exists, C.TRACKS_COLLECTION):
            return None
        vectors = self.client.get_collection(C.TRACKS_COLLECTION).config.params.vectors
        if not isinstance(vectors, dict) or len(vectors) != 1:
            raise StoreError(f"collection '{C.TRACKS_COLLECTION}' was not created by siamrec")
        ((name, params),) = vectors.items()
        return name, params.size

    def bind_model(self, name: str, dim: int, create: bool = True) -> None:
        """Check the model against the collections (creating them if allowed); refuse any mismatch."""
        stored = self.stored_model()
        if stored is None:
            if not create:
                raise NotFoundError("the store is empty: add tracks with `siamrec add-track` first")
            self._create_collections(name, dim)
        elif stored != (name, dim):
            raise ModelError(
                f"the store holds vectors of model '{stored[0]}' (dim {stored[1]}) but the model is '{name}' "
                f"(dim {dim}): use --model with that model, or a fresh --home to re-embed with this one"
            )
        self._model = (name, dim)

    def bind_stored_model(self) -> tuple[str, int]:
        """Bind to the model the store was filled with (for commands that read but never embed)."""
        stored = self.stored_model()
        if stored is None:
            raise NotFoundError("the store is empty: add tracks with `siamrec add-track` first")
        self._model = stored
        return stored

    def _create_collections(self, name: str, dim: int) -> None:
        vectors = {name: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)}
        for collection in (C.TRACKS_COLLECTION, C.PLAYLISTS_COLLECTION):
            if not self.client.collection_exists(collection):
                self._call("create", self.client.create_collection, collection, vectors_config=vectors)
        with warnings.catch_warnings():  # the embedded store ignores payload indexes (and says so); servers use them
            warnings.simplefilter("ignore", UserWarning)
            for key in TRACK_KEYWORD_FIELDS:
                self.client.create_payload_index(C.TRACKS_COLLECTION, key, qm.PayloadSchemaType.KEYWORD)
            self.client.create_payload_index(C.PLAYLISTS_COLLECTION, "name", qm.PayloadSchemaType.KEYWORD)

    @property
    def vector_name(self) -> str:
        if self._model is None:
            raise StoreError("internal: bind a model before reading or writing vectors")
        return self._model[0]

    # ---- tracks -------------------------------------------------------------------------------------

    def get_tracks(self, uris: Iterable[str], with_vectors: bool = False) -> dict[str, StoredTrack]:
        """The stored tracks among `uris` (missing ones are simply absent from the result)."""
        ids = [point_id(uri) for uri in uris]
        found: dict[str, StoredTrack] = {}
        for start in range(0, len(ids), SCROLL_PAGE):
            points = self._call(
                "retrieve",
                self.client.retrieve,
                C.TRACKS_COLLECTION,
                ids[start : start + SCROLL_PAGE],
                with_payload=True,
                with_vectors=[self.vector_name] if with_vectors else False,
            )
            for point in points:
                record = track_from_payload(point.payload or {})
                found[record.track_uri] = StoredTrack(record, self._vector_of(point))
        return found

    def _vector_of(self, point: Any) -> np.ndarray | None:
        vectors = point.vector if isinstance(point.vector, dict) else {}
        vector = vectors.get(self.vector_name)
        return None if vector is None else np.asarray(vector, dtype=np.float32)

    def upsert_tracks(self, records: list[TrackRecord], vectors: np.ndarray | list[np.ndarray | None]) -> set[str]:
        """Write tracks, keeping the playlists and added_at already stored; returns the URIs that were stored.

        The records are updated in place with the merged playlists. A vector of None writes metadata only and
        *replaces* a stored vector with none (Qdrant upserts whole points): pass the stored vector back to keep it.
        """
        existing = self.get_tracks([r.track_uri for r in records])
        points = []
        for record, vector in zip(records, vectors, strict=True):
            previous = existing.get(record.track_uri)
            if previous is not None:
                record.playlists = sorted(set(previous.record.playlists) | set(record.playlists))
                record.added_at = previous.record.added_at
            points.append(
                qm.PointStruct(
                    id=point_id(record.track_uri),
                    vector={} if vector is None else {self.vector_name: np.asarray(vector).tolist()},
                    payload=asdict(record),
                )
            )
        for start in range(0, len(points), WRITE_BATCH):
            self._call("upsert", self.client.upsert, C.TRACKS_COLLECTION, points[start : start + WRITE_BATCH])
        return set(existing)

    def set_track_payload(self, uri: str, payload: dict[str, Any]) -> None:
        self._call("set payload", self.client.set_payload, C.TRACKS_COLLECTION, payload, [point_id(uri)])

    def iter_tracks(self, with_vectors: bool = True, cold_only: bool = False) -> Iterator[StoredTrack]:
        """Every stored track, a page at a time."""
        offset = None
        query_filter = self.cold_filter() if cold_only else None
        while True:
            points, offset = self._call(
                "scroll",
                self.client.scroll,
                C.TRACKS_COLLECTION,
                scroll_filter=query_filter,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=[self.vector_name] if with_vectors else False,
            )
            for point in points:
                yield StoredTrack(track_from_payload(point.payload or {}), self._vector_of(point))
            if offset is None:
                return

    def count_tracks(self, cold_only: bool = False) -> int:
        """Exact count, done by Qdrant (no payloads travel)."""
        query_filter = self.cold_filter() if cold_only else None
        return self._call("count", self.client.count, C.TRACKS_COLLECTION, count_filter=query_filter).count

    def count_playlists(self) -> int:
        return self._call("count", self.client.count, C.PLAYLISTS_COLLECTION).count

    @staticmethod
    def cold_filter() -> qm.Filter:
        """Tracks in no playlist: the cold-start candidates."""
        return qm.Filter(must=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key="playlists"))])

    # ---- playlists ----------------------------------------------------------------------------------

    def get_playlist(self, uri: str) -> PlaylistRecord | None:
        points = self._call("retrieve", self.client.retrieve, C.PLAYLISTS_COLLECTION, [point_id(uri)])
        return playlist_from_payload(points[0].payload) if points else None

    def get_playlists(self, uris: Iterable[str]) -> dict[str, tuple[PlaylistRecord, np.ndarray | None]]:
        """The stored playlists among `uris` with their centroids (None: no track had a vector)."""
        points = self._call(
            "retrieve",
            self.client.retrieve,
            C.PLAYLISTS_COLLECTION,
            [point_id(uri) for uri in uris],
            with_payload=True,
            with_vectors=[self.vector_name],
        )
        records = [playlist_from_payload(point.payload or {}) for point in points]
        return {r.playlist_uri: (r, self._vector_of(point)) for r, point in zip(records, points, strict=True)}

    def iter_playlists(self) -> Iterator[PlaylistRecord]:
        offset = None
        while True:
            points, offset = self._call(
                "scroll",
                self.client.scroll,
                C.PLAYLISTS_COLLECTION,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
            for point in points:
                yield playlist_from_payload(point.payload or {})
            if offset is None:
                return

    def find_playlist(self, key: str) -> PlaylistRecord:
        """A playlist by URI, or by name (case-insensitive); unknown or ambiguous names are errors."""
        found = self.get_playlist(key)
        if found is not None:
            return found
        matches = [p for p in self.iter_playlists() if p.name.casefold() == key.casefold()]
        if not matches:
            raise NotFoundError(f"no playlist named {key!r}: `siamrec playlist list` shows the stored ones")
        if len(matches) > 1:
            uris = ", ".join(p.playlist_uri for p in matches)
            raise NotFoundError(f"{len(matches)} playlists are named {key!r}: name one by URI ({uris})")
        return matches[0]

    def save_playlist(self, playlist: PlaylistRecord) -> None:
        """Store the playlist, mark membership in its tracks' payloads, and refresh its centroid.

        Member URIs not stored yet get a metadata-only point, so audio added for them later (add-track --uri,
        sync) finds its playlist and refreshes the centroid.
        """
        previous = self.get_playlist(playlist.playlist_uri)
        dropped = set(previous.track_uris) - set(playlist.track_uris) if previous else set()
        stored = self.get_tracks(set(playlist.track_uris) | dropped)
        for uri, track in stored.items():
            members = set(track.record.playlists)
            wanted = members - {playlist.playlist_uri} if uri in dropped else members | {playlist.playlist_uri}
            if wanted != members:
                self.set_track_payload(uri, {"playlists": sorted(wanted)})
        unseen = [uri for uri in dict.fromkeys(playlist.track_uris) if uri not in stored]
        if unseen:
            records = [TrackRecord(uri, source=playlist.source, playlists=[playlist.playlist_uri]) for uri in unseen]
            self.upsert_tracks(records, [None] * len(records))
        self.refresh_centroids([playlist])

    def delete_playlist(self, uri: str) -> None:
        """Remove a playlist and its mark on its tracks' payloads; the tracks themselves stay."""
        playlist = self.get_playlist(uri)
        if playlist is None:
            raise NotFoundError(f"no playlist {uri!r} in the store")
        self.save_playlist(replace(playlist, track_uris=[]))  # unmarks every member first: a retry finishes the job
        self._call("delete", self.client.delete, C.PLAYLISTS_COLLECTION, [point_id(uri)])

    def delete_track(self, uri: str) -> list[str]:
        """Remove a track and take it out of every playlist that lists it; returns those playlists' URIs."""
        track = self.get_tracks([uri]).get(uri)
        if track is None:
            raise NotFoundError(f"no track {uri!r} in the store")
        holding = [playlist for playlist, _ in self.get_playlists(track.record.playlists).values()]
        for playlist in holding:  # playlists first: an interrupted delete leaves a track that a retry removes
            self.save_playlist(replace(playlist, track_uris=[u for u in playlist.track_uris if u != uri]))
        self._call("delete", self.client.delete, C.TRACKS_COLLECTION, [point_id(uri)])
        return sorted(playlist.playlist_uri for playlist in holding)

    def refresh_centroids(self, playlists: list[PlaylistRecord]) -> None:
        """Recompute each playlist's centroid from its tracks that have vectors (none yet: no vector)."""
        points = []
        for playlist in playlists:
            tracks = self.get_tracks(playlist.track_uris, with_vectors=True).values()
            vectors = [t.vector for t in tracks if t.vector is not None]
            centroid = playlist_centroid(np.stack(vectors)) if vectors else None
            points.append(
                qm.PointStruct(
                    id=point_id(playlist.playlist_uri),
                    vector={} if centroid is None else {self.vector_name: centroid.tolist()},
                    payload=asdict(playlist),
                )
            )
        for start in range(0, len(points), WRITE_BATCH):
            self._call("upsert", self.client.upsert, C.PLAYLISTS_COLLECTION, points[start : start + WRITE_BATCH])

    # ---- queries ------------------------------------------------------------------------------------

    def query(
        self,
        query: Any,
        limit: int,
        exclude_uris: Iterable[str] = (),
        cold_only: bool = True,
        collection: str = C.TRACKS_COLLECTION,
    ) -> list[qm.ScoredPoint]:
        """Nearest points to a vector or a RecommendQuery, never returning `exclude_uris`."""
        must_not: list[qm.Condition] = []
        excluded = [point_id(uri) for uri in exclude_uris]
        if excluded:
            must_not.append(qm.HasIdCondition(has_id=excluded))
        must = self.cold_filter().must if cold_only else None
        response = self._call(
            "query",
            self.client.query_points,
            collection,
            query=query,
            using=self.vector_name,
            query_filter=qm.Filter(must=must, must_not=must_not or None),
            limit=limit,
            with_payload=True,
            with_vectors=[self.vector_name],
        )
        return list(response.points)


def playlist_centroid(vectors: np.ndarray) -> np.ndarray:
    """The L2-normalised mean of L2-normalised track vectors `[n, D]` → `[D]`."""
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
