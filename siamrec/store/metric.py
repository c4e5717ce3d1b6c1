"""The store's adapted metric (mixed into Store): which vectors queries rank with, the stored map, and the
adapted twin every write keeps beside a model vector.

The map's arrays (18 MB at 1,296-d) are read only when a vector must be mapped: a write, a query by audio.
`info`, `recommend --playlist` and a write into a store with no adaptation read its small summary alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

import numpy as np

from siamrec import constants as C
from siamrec.errors import ConfigError, ModelError, NotFoundError
from siamrec.store import adaptation as stored_adaptation
from siamrec.store.adaptation import Adaptation
from siamrec.store.backend import Backend
from siamrec.store.records import PlaylistRecord
from siamrec.uris import point_id
from siamrec.vectors import batched, l2_normalise

WRITE_BATCH = 512
PAGE = 1000
SUMMED_PLAYLISTS = 20_000  # playlists whose adapted centroids a rewrite sums as it goes (float32: 100 MB at 1,296-d)
DERIVED = "+"  # `<model>+<suffix>`: a vector derived from the model's (never the model binding itself)
ADAPTED = "adapted"
METRICS = C.METRICS
_UNREAD = object()


class AdaptedMetric:
    """The adapted metric of a Store's bound model (mixed into Store)."""

    backend: Backend
    metric: str
    _wrote: bool
    vector_name: str
    count_tracks: Callable[[], int]
    count_playlists: Callable[[], int]
    iter_playlists: Callable[[], Iterator[PlaylistRecord]]
    refresh_centroids: Callable[[list[PlaylistRecord]], None]
    model_vectors: Callable[[Iterable[str]], dict[str, np.ndarray]]

    def _forget_adaptation(self) -> None:
        """Read the stored adaptation afresh when next asked (a model was bound)."""
        self._adaptation: Any = _UNREAD
        self._adaptation_summary: Any = _UNREAD
        self._saved_map: tuple[Any, str | None] = (None, None)  # the map this process wrote, and its digest

    def derived_vector(self, suffix: str, dim: int) -> str:
        """The name of a vector derived from the model's (`<model>+<suffix>`), created on both collections."""
        name = f"{self.vector_name}{DERIVED}{suffix}"
        for collection in (C.TRACKS_COLLECTION, C.PLAYLISTS_COLLECTION):
            have = self.backend.vectors(collection) or {}
            if name not in have:
                self.backend.add_vector(collection, name, dim)
            elif have[name] != dim:
                raise ModelError(f"the store's vector {name!r} has dim {have[name]}, not {dim}: refit it")
        return name

    @property
    def adapted_vector(self) -> str:
        return f"{self.vector_name}{DERIVED}{ADAPTED}"

    def adaptation(self) -> Adaptation | None:
        """The adapted metric stored for the bound model, with its map (None: never fitted, or switched off)."""
        if self._adaptation is _UNREAD:
            self._adaptation = stored_adaptation.load(self.backend, self.vector_name)
        return self._adaptation  # type: ignore[no-any-return]

    def adaptation_summary(self) -> dict[str, Any] | None:
        """What the stored adaptation is (`Adaptation.summary()`: ready, auto, fitted on what), map unread."""
        if self._adaptation is not _UNREAD:
            return None if self._adaptation is None else self._adaptation.summary()
        if self._adaptation_summary is _UNREAD:
            self._adaptation_summary = stored_adaptation.load_summary(self.backend, self.vector_name)
        return self._adaptation_summary  # type: ignore[no-any-return]

    def save_adaptation(self, adaptation: Adaptation | None) -> None:
        """Store the model's adaptation (None removes it: queries and writes go back to the plain metric)."""
        if adaptation is not None:
            self.derived_vector(ADAPTED, adaptation.whitening.dim)
        saved, digest = self._saved_map
        stored = digest if adaptation is not None and adaptation.whitening is saved else None
        digest = stored_adaptation.save(self.backend, self.vector_name, adaptation, arrays_sha1=stored)
        self._adaptation = adaptation
        self._saved_map = (None if adaptation is None else adaptation.whitening, digest)
        self._wrote = True

    def use_metric(self, metric: str) -> str:
        """Rank with `plain` vectors, `adapted` ones (an error when none are ready) or `auto` (adapted when
        ready); returns the metric in use."""
        if metric not in METRICS:
            raise ConfigError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
        ready = (found := self.adaptation_summary()) is not None and found["ready"]
        if metric == "adapted" and not ready:
            raise NotFoundError("no adapted metric is stored for this model: run `siamrec adapt` first")
        self.metric = "adapted" if metric == "adapted" or (metric == "auto" and ready) else "plain"
        return self.metric

    @property
    def query_vector(self) -> str:
        """The vector name queries rank with (the metric in use)."""
        return self.adapted_vector if self.metric == "adapted" else self.vector_name

    def to_query_space(self, vectors: np.ndarray) -> np.ndarray:
        """Model vectors `[N, D]` or `[D]` as the metric in use sees them."""
        found = self.adaptation() if self.metric == "adapted" else None
        if found is None:
            return vectors
        return found.whitening.apply(np.atleast_2d(vectors)).astype(np.float32).reshape(np.shape(vectors))

    def _adapted_twins(self, vectors: list[np.ndarray]) -> list[np.ndarray]:
        """The adapted vectors of model vectors, when an adaptation is stored (ready or being written)."""
        if not vectors or self.adaptation_summary() is None:
            return []
        found = self.adaptation()
        if found is None:
            return []
        return list(found.whitening.apply(np.stack(vectors), single=True))  # stored as float16: float32 is plenty

    def rewrite_adapted(
        self, known: Mapping[str, np.ndarray], on_progress: Callable[[str, int, int], None] | None = None
    ) -> tuple[int, int]:
        """Every track's adapted twin and every playlist's adapted centroid, from the stored map: (tracks, playlists).

        Each track's model vector is read once, and not at all where `known` (point id → model vector, what the
        fit read) holds it. The first SUMMED_PLAYLISTS playlists' adapted centroids are summed from the twins as
        they are written and set alone, so no member is read again; a playlist with no member vector, and any
        beyond those, is rewritten whole by `refresh_centroids` (which also clears a centroid an earlier map left).
        """
        found = self.adaptation()
        if found is None:
            return 0, 0
        playlists = self.iter_playlists()
        summed = list(islice(playlists, SUMMED_PLAYLISTS))
        slots: dict[str, list[int]] = {}
        for slot, playlist in enumerate(summed):
            for uri in dict.fromkeys(playlist.track_uris):
                slots.setdefault(point_id(uri), []).append(slot)
        sums = np.zeros((len(summed), found.whitening.dim), dtype=np.float32)
        counts = np.zeros(len(summed), dtype=np.int64)
        total, done = self.count_tracks(), 0
        for page in batched(self.backend.scroll(C.TRACKS_COLLECTION, with_payload=False), PAGE):
            ids = [hit.id for hit in page]
            vectors = {i: known[i] for i in ids if i in known}
            vectors.update(self.model_vectors([i for i in ids if i not in vectors]))
            if vectors:
                twins = found.whitening.apply(np.stack(list(vectors.values())), single=True)
                self._set_adapted(C.TRACKS_COLLECTION, list(vectors), twins)
                pairs = [(row, slot) for row, i in enumerate(vectors) for slot in slots.get(i, ())]
                if pairs:
                    rows, into = np.array(pairs).T
                    np.add.at(sums, into, twins[rows])
                    np.add.at(counts, into, 1)
            done += len(ids)
            if on_progress:
                on_progress("tracks", done, total)
        return done, self._write_summed(summed, sums, counts, playlists, on_progress)

    def _set_adapted(self, collection: str, ids: list[str], rows: np.ndarray) -> None:
        """Set the adapted vector of points `ids` (row i for ids[i]), WRITE_BATCH points a write."""
        for batch in batched(zip(ids, rows, strict=True), WRITE_BATCH):
            self.backend.set_vectors(collection, {i: {self.adapted_vector: v} for i, v in batch})
        self._wrote = True

    def _write_summed(
        self,
        summed: list[PlaylistRecord],
        sums: np.ndarray,
        counts: np.ndarray,
        rest: Iterator[PlaylistRecord],
        on_progress: Callable[[str, int, int], None] | None,
    ) -> int:
        """Set the summed playlists' adapted centroids; refresh the rest whole. Returns how many playlists."""
        total = self.count_playlists()
        have = np.flatnonzero(counts)
        centroids = l2_normalise(sums[have])
        self._set_adapted(C.PLAYLISTS_COLLECTION, [point_id(summed[slot].playlist_uri) for slot in have], centroids)
        self.refresh_centroids([summed[slot] for slot in np.flatnonzero(counts == 0)])
        written = len(summed)
        if on_progress:
            on_progress("playlists", written, total)
        for page in batched(rest, PAGE):
            self.refresh_centroids(list(page))
            written += len(page)
            if on_progress:
                on_progress("playlists", written, total)
        self._wrote = True
        return written
