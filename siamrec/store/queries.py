"""The store's searches: the tracks nearest a query (mean or best-score, with negative examples) and the
playlists nearest a vector, in whichever space the store queries (plain or adapted)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from siamrec import constants as C
from siamrec.store.backend import Backend, Hit, Where
from siamrec.store.records import (
    ScoredPlaylist,
    ScoredTrack,
    playlist_from_payload,
    track_from_payload,
)
from siamrec.uris import point_id

COLD = Where(empty=("playlists",))


class Queries:
    """Searches over a Store's backend, in its query space (mixed into Store)."""

    backend: Backend
    query_vector: str

    def nearest_tracks(
        self,
        vector: np.ndarray,
        limit: int,
        exclude_uris: Iterable[str] = (),
        cold_only: bool = True,
        exact: bool = False,
        exclude_audio: Iterable[str] = (),
    ) -> list[ScoredTrack]:
        """Tracks nearest to a vector, best first, never one of `exclude_uris` nor a track whose audio identity
        is in `exclude_audio` (the same recording stored under another URI)."""
        where = self._track_filter(exclude_uris, cold_only, exclude_audio)
        hits = self.backend.nearest(C.TRACKS_COLLECTION, self.query_vector, vector, limit, where, exact)
        return [self._scored_track(hit) for hit in hits]

    def best_score_tracks(
        self,
        examples: np.ndarray,
        limit: int,
        exclude_uris: Iterable[str] = (),
        cold_only: bool = True,
        exact: bool = False,
        exclude_audio: Iterable[str] = (),
        negatives: np.ndarray | None = None,
    ) -> list[ScoredTrack]:
        """Tracks by Qdrant's best-score recommendation from example vectors `[n, D]` (and negative ones: a
        candidate nearer a negative than every positive sinks), never `exclude_uris` nor the same audio
        (`exclude_audio`)."""
        where = self._track_filter(exclude_uris, cold_only, exclude_audio)
        hits = self.backend.best_score(C.TRACKS_COLLECTION, self.query_vector, examples, limit, where, exact, negatives)
        return [self._scored_track(hit) for hit in hits]

    def nearest_playlists(
        self, vector: np.ndarray, limit: int, exclude_uris: Iterable[str] = (), exact: bool = False
    ) -> list[ScoredPlaylist]:
        """Playlists whose centroid is nearest to a vector, best first, never one of `exclude_uris`."""
        where = Where(not_ids=tuple(point_id(uri) for uri in exclude_uris))
        hits = self.backend.nearest(C.PLAYLISTS_COLLECTION, self.query_vector, vector, limit, where, exact)
        return [ScoredPlaylist(playlist_from_payload(h.payload), h.vectors[self.query_vector], h.score) for h in hits]

    @staticmethod
    def _track_filter(exclude_uris: Iterable[str], cold_only: bool, exclude_audio: Iterable[str] = ()) -> Where:
        same_audio = sorted(set(exclude_audio))
        return Where(
            empty=COLD.empty if cold_only else (),
            not_ids=tuple(point_id(uri) for uri in exclude_uris),
            none_of={"audio_id": same_audio} if same_audio else {},
        )

    def _scored_track(self, hit: Hit) -> ScoredTrack:
        return ScoredTrack(track_from_payload(hit.payload), hit.vectors[self.query_vector], hit.score)
