"""The store's adapted metric (mixed into Store): which vectors queries rank with, the stored map, and the
adapted twin every write keeps beside a model vector.

The map's arrays (18 MB at 1,296-d) are read only when a vector must be mapped: a write, a query by audio.
`info`, `recommend --playlist` and a write into a store with no adaptation read its small summary alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from siamrec import constants as C
from siamrec.errors import ConfigError, ModelError, NotFoundError
from siamrec.store import adaptation as stored_adaptation
from siamrec.store.adaptation import Adaptation
from siamrec.store.backend import Backend
from siamrec.store.records import StoredTrack
from siamrec.uris import point_id

WRITE_BATCH = 512
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

    def write_adapted(self, tracks: list[StoredTrack]) -> None:
        """(Re)write the adapted vectors of stored tracks from their model vectors; payloads stay as they are."""
        have = [t for t in tracks if t.vector is not None]
        twins = self._adapted_twins([t.vector for t in have])  # type: ignore[misc]
        if twins:
            ids = [point_id(t.record.track_uri) for t in have]
            for start in range(0, len(ids), WRITE_BATCH):
                batch = zip(ids[start : start + WRITE_BATCH], twins[start : start + WRITE_BATCH], strict=True)
                self.backend.set_vectors(C.TRACKS_COLLECTION, {i: {self.adapted_vector: v} for i, v in batch})
            self._wrote = True
