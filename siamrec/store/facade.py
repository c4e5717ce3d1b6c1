"""The store, in the project's own words: tracks and playlists with their vectors, bound to one model.

Callers see TrackRecord/PlaylistRecord/StoredTrack and scored results, never an engine's types. Behind it
sits one backend class (siamrec.store.backend.Backend): Qdrant Edge embedded under SIAMREC_HOME by default,
qdrant-client for a Qdrant server or cluster by URL. Point ids are uuid5(NAMESPACE_URL, uri), so writing the
same track or playlist twice updates one point. A collection's model vector is named after the model that made
it; a different model is refused. Derived vectors sit beside it as `<model>+<suffix>`: `<model>+adapted` holds
each track's vector in the playlist-adapted metric (siamrec.whitening) once `siamrec adapt` has fitted one, and
every later write keeps it in step.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Any

import numpy as np

from siamrec import constants as C
from siamrec.config import Settings
from siamrec.errors import ModelError, NotFoundError, StoreError
from siamrec.store.backend import EVERYTHING, Backend, Hit, Point, Where
from siamrec.store.by_name import NamePage, index_words, playlists_by_name, rank_missing
from siamrec.store.location import open_backend
from siamrec.store.metric import ADAPTED, DERIVED, WRITE_BATCH, AdaptedMetric
from siamrec.store.queries import COLD, Queries
from siamrec.store.records import (
    PLAYLIST_INDEXES,
    PLAYLIST_KEYWORD_FIELDS,
    PLAYLIST_OWN_KEYS,
    TRACK_KEYWORD_FIELDS,
    PlaylistRecord,
    StoredTrack,
    TrackRecord,
    playlist_from_payload,
    playlist_payload,
    record_payload,
    track_from_payload,
)
from siamrec.uris import point_id
from siamrec.vectors import l2_normalise

PAGE = 1000
AUDIO_FIELDS = ("audio_id", "audio_sha1")  # keyword-indexed fields that name a track's audio
CENTROID_TRACKS = 20_000  # member tracks per centroid group: bounds the vectors held at once


class Store(AdaptedMetric, Queries):
    """Tracks and playlists bound to one model (its name is the collections' vector name)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._model: tuple[str, int] | None = None
        self._wrote = False
        self._names_ranked = False  # whether this store's playlists are known to carry their name rank
        self._names_indexed = False  # whether their names are known to have their text index (word searches)
        self._forget_adaptation()
        self.metric = "plain"  # which vectors queries rank with: "plain" or "adapted" (use_metric)

    @classmethod
    def open(cls, settings: Settings) -> Store:
        return cls(open_backend(settings))

    @classmethod
    def memory(cls) -> Store:
        """An in-memory store (tests, throwaway work)."""
        from siamrec.store.client import ClientBackend

        return cls(ClientBackend.memory())

    @property
    def location(self) -> str:
        return self.backend.location

    def close(self) -> None:
        """Index what was written (embedded store), then release the store."""
        try:
            optimize = getattr(self.backend, "optimize", None)
            if self._wrote and optimize is not None:
                optimize()
        finally:
            self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- model binding ------------------------------------------------------------------------------

    def stored_model(self) -> tuple[str, int] | None:
        """(vector name, dimension) the tracks collection was created for, or None when it does not exist."""
        vectors = self.backend.vectors(C.TRACKS_COLLECTION)
        if vectors is None:
            return None
        models = [(name, dim) for name, dim in vectors.items() if DERIVED not in name]
        if len(models) != 1:
            raise StoreError(f"collection '{C.TRACKS_COLLECTION}' was not created by siamrec")
        return models[0]

    def bind_model(self, name: str, dim: int, create: bool = True) -> None:
        """Check the model against the collections (creating them if allowed); refuse any mismatch."""
        stored = self.stored_model()
        if stored is None:
            if not create:
                raise NotFoundError("the store is empty: add tracks with `siamrec add-track` first")
            for collection, keys, indexes in (
                (C.TRACKS_COLLECTION, TRACK_KEYWORD_FIELDS, None),
                (C.PLAYLISTS_COLLECTION, PLAYLIST_KEYWORD_FIELDS, PLAYLIST_INDEXES),
            ):
                if self.backend.vectors(collection) is None:
                    self.backend.create(collection, {name: dim, f"{name}{DERIVED}{ADAPTED}": dim}, keys, indexes)
        elif stored != (name, dim):
            raise ModelError(
                f"the store holds vectors of model '{stored[0]}' (dim {stored[1]}) but the model is '{name}' "
                f"(dim {dim}): use --model with that model, or a fresh --home to re-embed with this one"
            )
        self._model = (name, dim)
        self._forget_adaptation()

    def bind_stored_model(self) -> tuple[str, int]:
        """Bind to the model the store was filled with (for commands that read but never embed)."""
        stored = self.stored_model()
        if stored is None:
            raise NotFoundError("the store is empty: add tracks with `siamrec add-track` first")
        self._model = stored
        self._forget_adaptation()
        return stored

    @property
    def vector_name(self) -> str:
        if self._model is None:
            raise StoreError("internal: bind a model before reading or writing vectors")
        return self._model[0]

    def _write(self, collection: str, points: list[Point]) -> None:
        for start in range(0, len(points), WRITE_BATCH):
            self.backend.upsert(collection, points[start : start + WRITE_BATCH])
        self._wrote = self._wrote or bool(points)

    def _vector(self, hit: Hit, using: str | None = None) -> np.ndarray | None:
        return hit.vectors.get(using or self.vector_name)

    # ---- tracks -------------------------------------------------------------------------------------

    def get_tracks(
        self, uris: Iterable[str], with_vectors: bool = False, using: str | None = None
    ) -> dict[str, StoredTrack]:
        """The stored tracks among `uris` (missing ones are simply absent from the result), with the model's
        vectors (or those named by `using`, e.g. `query_vector`) when asked."""
        return self._tracks_by_id([point_id(uri) for uri in uris], with_vectors, using)

    def _tracks_by_id(
        self, ids: list[str], with_vectors: bool = False, using: str | None = None
    ) -> dict[str, StoredTrack]:
        """`get_tracks` by point ids (a writer that has the ids already does not hash each URI twice)."""
        name = using or self.vector_name
        wanted = [name] if with_vectors else []
        found: dict[str, StoredTrack] = {}
        for start in range(0, len(ids), PAGE):
            for hit in self.backend.retrieve(C.TRACKS_COLLECTION, ids[start : start + PAGE], wanted):
                record = track_from_payload(hit.payload)
                found[record.track_uri] = StoredTrack(record, self._vector(hit, name))
        return found

    def model_vectors(self, ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Point id → the bound model's vector, for the stored tracks among `ids` that have one (payloads left
        unread: a fit needs only the vectors, and reading a payload costs as much as reading a vector)."""
        ids = list(ids)
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), PAGE):
            page = ids[start : start + PAGE]
            for hit in self.backend.retrieve(C.TRACKS_COLLECTION, page, [self.vector_name], with_payload=False):
                if (vector := self._vector(hit)) is not None:
                    found[hit.id] = vector
        return found

    def upsert_tracks(self, records: list[TrackRecord], vectors: np.ndarray | list[np.ndarray | None]) -> set[str]:
        """Write tracks, keeping the playlists and added_at already stored; returns the URIs that were stored.

        The records are updated in place with the merged playlists. A vector of None writes metadata only and
        *replaces* a stored vector with none (points are written whole): pass the stored vector back to keep it.
        """
        ids = [point_id(r.track_uri) for r in records]  # once per point: hashing is a tenth of a write
        existing = self._tracks_by_id(ids)
        matrix = isinstance(vectors, np.ndarray)  # one matrix: one conversion, its rows are views
        vectors = (
            list(np.asarray(vectors, np.float32))
            if matrix
            else [v if v is None else np.asarray(v, np.float32) for v in vectors]
        )
        twins = iter(self._adapted_twins([v for v in vectors if v is not None]))
        points = []
        for pid, record, vector in zip(ids, records, vectors, strict=True):
            previous = existing.get(record.track_uri)
            if previous is not None:
                record.playlists = sorted(set(previous.record.playlists) | set(record.playlists))
                record.added_at = previous.record.added_at
            named = {} if vector is None else {self.vector_name: vector}
            if named and (twin := next(twins, None)) is not None:
                named[self.adapted_vector] = twin
            points.append(Point(pid, named, record_payload(record)))
        self._write(C.TRACKS_COLLECTION, points)
        return set(existing)

    def set_track_payload(self, uri: str, payload: dict[str, Any]) -> None:
        self.backend.set_payload(C.TRACKS_COLLECTION, [point_id(uri)], payload)

    def delete_tracks(self, uris: Iterable[str]) -> None:
        """Remove tracks (and their membership in the playlists that listed them; centroids follow)."""
        gone = self.get_tracks(uris)
        if not gone:
            return
        touched = {p for track in gone.values() for p in track.record.playlists}
        self.backend.delete(C.TRACKS_COLLECTION, [point_id(uri) for uri in gone])
        self._wrote = True
        playlists = [record for record, _ in self.get_playlists(touched, with_centroids=False).values()]
        for playlist in playlists:
            playlist.track_uris = [uri for uri in playlist.track_uris if uri not in gone]
        self.refresh_centroids(playlists)

    def iter_tracks(self, with_vectors: bool = True, cold_only: bool = False) -> Iterator[StoredTrack]:
        """Every stored track, a page at a time."""
        wanted = [self.vector_name] if with_vectors else []
        for hit in self.backend.scroll(C.TRACKS_COLLECTION, COLD if cold_only else EVERYTHING, wanted):
            yield StoredTrack(track_from_payload(hit.payload), self._vector(hit))

    def tracks_at(self, paths: Iterable[str]) -> dict[str, TrackRecord]:
        """Stored tracks by the file path they were embedded from (keyword index on `path`)."""
        found: dict[str, TrackRecord] = {}
        paths = list(paths)
        for start in range(0, len(paths), PAGE):
            where = Where(any_of={"path": paths[start : start + PAGE]})
            for hit in self.backend.scroll(C.TRACKS_COLLECTION, where):
                record = track_from_payload(hit.payload)
                if record.path is not None:
                    found[record.path] = record
        return found

    def tracks_with_audio(self, field: str, values: Iterable[str]) -> dict[str, StoredTrack]:
        """`field` value → a stored track made from that audio, with the bound model's vector (keyword index on
        `audio_id`, the decoded audio, or `audio_sha1`, the file's bytes): audio stored under another URI (a file
        added, then synced from a playlist; a file moved or copied) is not decoded or embedded again."""
        if field not in AUDIO_FIELDS:
            raise ValueError(f"tracks are looked up by audio through {AUDIO_FIELDS}, not {field!r}")
        found: dict[str, StoredTrack] = {}
        wanted = sorted(set(values))
        for start in range(0, len(wanted), PAGE):
            where = Where(any_of={field: wanted[start : start + PAGE]})
            for hit in self.backend.scroll(C.TRACKS_COLLECTION, where, [self.vector_name]):
                value, vector = hit.payload.get(field), self._vector(hit)
                if isinstance(value, str) and vector is not None and value not in found:
                    found[value] = StoredTrack(track_from_payload(hit.payload), vector)
        return found

    def tracks_under(self, folder: str) -> Iterator[TrackRecord]:
        """Stored local tracks whose file lies under `folder` (to report files that disappeared): a prefix of the
        keyword-indexed path, so a folder costs what it holds, not what the store holds."""
        where = Where(any_of={"source": ["local"]}, prefix={"path": folder.rstrip("/") + "/"})
        for hit in self.backend.scroll(C.TRACKS_COLLECTION, where):
            yield track_from_payload(hit.payload)

    def sample_tracks(self, limit: int, seed: int = 0) -> tuple[int, list[StoredTrack]]:
        """(how many stored tracks have a vector, up to `limit` of them drawn at random, with vectors): a bounded
        page of the library whatever its size. Point ids are UUIDs hashed from the URIs, so the `limit` points
        that follow a random id (wrapping past the last) are a random draw that reads only what it returns."""
        having = Where(has_vector=self.vector_name)
        total = self.backend.count(C.TRACKS_COLLECTION, having)
        start = str(uuid.UUID(bytes=np.random.default_rng(seed).bytes(16))) if total > limit else None
        hits = list(islice(self.backend.scroll(C.TRACKS_COLLECTION, having, [self.vector_name], start=start), limit))
        if start is not None and len(hits) < limit:  # past the last id: go on from the first
            hits += islice(self.backend.scroll(C.TRACKS_COLLECTION, having, [self.vector_name]), limit - len(hits))
        tracks = [StoredTrack(track_from_payload(hit.payload), self._vector(hit)) for hit in hits]
        return total, [track for track in tracks if track.vector is not None]

    def uris_with_vectors(self, uris: Iterable[str]) -> set[str]:
        """Which of `uris` are stored tracks with a vector (their audio was embedded), asked of the indexes: a
        playlist of 10,000 tracks in 0.12 s, where reading their vectors took 0.8-1.5 s."""
        uris = list(dict.fromkeys(uris))
        found: set[str] = set()
        for start in range(0, len(uris), PAGE):
            where = Where(any_of={"track_uri": uris[start : start + PAGE]}, has_vector=self.vector_name)
            found.update(
                str(hit.payload["track_uri"])
                for hit in self.backend.scroll(C.TRACKS_COLLECTION, where, with_payload=["track_uri"])
            )
        return found

    def count_tracks(self, cold_only: bool = False) -> int:
        """Exact count, done by the engine (no payloads travel)."""
        return self.backend.count(C.TRACKS_COLLECTION, COLD if cold_only else EVERYTHING)

    def count_playlists(self) -> int:
        return self.backend.count(C.PLAYLISTS_COLLECTION)

    # ---- playlists ----------------------------------------------------------------------------------

    def get_playlist(self, uri: str) -> PlaylistRecord | None:
        hits = self.backend.retrieve(C.PLAYLISTS_COLLECTION, [point_id(uri)])
        return playlist_from_payload(hits[0].payload) if hits else None

    def get_playlists(
        self, uris: Iterable[str], with_centroids: bool = True
    ) -> dict[str, tuple[PlaylistRecord, np.ndarray | None]]:
        """The stored playlists among `uris` with their centroids in the metric in use (None: no track had a
        vector, or `with_centroids` off: a caller that needs only the records reads no vectors)."""
        ids = [point_id(uri) for uri in uris]
        wanted = [self.query_vector] if with_centroids else []
        found: dict[str, tuple[PlaylistRecord, np.ndarray | None]] = {}
        for start in range(0, len(ids), PAGE):
            for hit in self.backend.retrieve(C.PLAYLISTS_COLLECTION, ids[start : start + PAGE], wanted):
                record = playlist_from_payload(hit.payload)
                found[record.playlist_uri] = (record, self._vector(hit, self.query_vector) if wanted else None)
        return found

    def playlist_page(
        self, limit: int, after: tuple[str, str] | None = None, starting: str = "", words: str = ""
    ) -> NamePage:
        """Up to `limit` playlists in name order after the cursor `after`, their names starting with `starting`
        and holding a word that starts with each of `words` (ignoring case): a page costs what it shows, not what
        the store holds. A store made before the name rank, or the names' text index, gets it here, once."""
        if self.backend.vectors(C.PLAYLISTS_COLLECTION) is None:
            return NamePage([], None)
        if not self._names_ranked:
            self._wrote |= rank_missing(self.backend) > 0
            self._names_ranked = True
        if words.strip() and not self._names_indexed:
            self._wrote |= index_words(self.backend)
            self._names_indexed = True
        return playlists_by_name(self.backend, limit, after, starting, words)

    def iter_playlists(self, starting: str = "") -> Iterator[PlaylistRecord]:
        """Every playlist, in no set order; `starting` keeps those whose name starts with it (any case)."""
        where = Where(prefix={"name_key": starting.casefold()}) if starting else EVERYTHING
        for hit in self.backend.scroll(C.PLAYLISTS_COLLECTION, where):
            yield playlist_from_payload(hit.payload)

    def playlists_holding(self, track_uri: str) -> list[str]:
        """The playlists a track is in, from the track's own `playlists` payload field."""
        stored = self.get_tracks([track_uri]).get(track_uri)
        return list(stored.record.playlists) if stored else []

    def playlists_named(self, name: str) -> list[PlaylistRecord]:
        """The stored playlists whose name is `name`, ignoring case (the `name_key` index)."""
        hits = self.backend.scroll(C.PLAYLISTS_COLLECTION, Where(any_of={"name_key": [name.casefold()]}))
        return [playlist_from_payload(hit.payload) for hit in hits]

    def find_playlist(self, key: str) -> PlaylistRecord:
        """A playlist by URI, or by name (case-insensitive, through the `name_key` index); unknown or ambiguous
        names are errors."""
        found = self.get_playlist(key)
        if found is not None:
            return found
        matches = self.playlists_named(key)
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
        self.backend.delete(C.PLAYLISTS_COLLECTION, [point_id(uri)])
        self._wrote = True

    def delete_track(self, uri: str) -> list[str]:
        """Remove one track (see delete_tracks); returns the playlists it was taken out of."""
        track = self.get_tracks([uri]).get(uri)
        if track is None:
            raise NotFoundError(f"no track {uri!r} in the store")
        self.delete_tracks([uri])
        return sorted(track.record.playlists)

    def refresh_centroids(self, playlists: list[PlaylistRecord]) -> None:
        """Recompute each playlist's centroid from its tracks that have vectors (none yet: no vector); the point is
        written whole, keeping what its payload holds beside the record. Playlists go in groups of about
        CENTROID_TRACKS member tracks: one read and one adapted-metric product per group, each track once."""
        group: list[PlaylistRecord] = []
        for playlist in playlists:
            group.append(playlist)
            if sum(len(p.track_uris) for p in group) >= CENTROID_TRACKS:
                self._refresh_group(group)
                group = []
        if group:
            self._refresh_group(group)

    def _refresh_group(self, playlists: list[PlaylistRecord]) -> None:
        members = self.get_tracks({uri for playlist in playlists for uri in playlist.track_uris}, with_vectors=True)
        vectors = {uri: track.vector for uri, track in members.items() if track.vector is not None}
        twins = dict(zip(vectors, self._adapted_twins(list(vectors.values())), strict=False))  # none: no adaptation
        kept = self._beside_records(playlists)
        points = []
        for playlist in playlists:
            uris = [uri for uri in dict.fromkeys(playlist.track_uris) if uri in vectors]
            named = {self.vector_name: playlist_centroid(np.stack([vectors[uri] for uri in uris]))} if uris else {}
            if uris and twins:
                named[self.adapted_vector] = playlist_centroid(np.stack([twins[uri] for uri in uris]))
            pid = point_id(playlist.playlist_uri)
            points.append(Point(pid, named, {**playlist_payload(playlist), **kept.get(pid, {})}))
        self._write(C.PLAYLISTS_COLLECTION, points)

    def _beside_records(self, playlists: list[PlaylistRecord]) -> dict[str, dict[str, Any]]:
        """Point id → the payload keys stored beside each playlist's record (its listener's feedback, what was
        published from it): a whole-point rewrite of the record must keep them."""
        ids = [point_id(playlist.playlist_uri) for playlist in playlists]
        kept = {}
        for start in range(0, len(ids), PAGE):
            for hit in self.backend.retrieve(C.PLAYLISTS_COLLECTION, ids[start : start + PAGE]):
                beside = {key: value for key, value in hit.payload.items() if key not in PLAYLIST_OWN_KEYS}
                if beside:
                    kept[hit.id] = beside
        return kept


def playlist_centroid(vectors: np.ndarray) -> np.ndarray:
    """The L2-normalised mean of L2-normalised track vectors `[n, D]` → `[D]`."""
    return l2_normalise(vectors.mean(axis=0))
