"""Fit the playlist-adapted metric on a store's own playlists and write it beside the plain vectors.

`siamrec adapt` (and sync or playlist commands, when the user switched `--auto` on) run this. The fit reads the
playlists and their tracks' vectors only (bounded: at most FIT_TRACKS tracks, whole playlists at a time); then
every track gets its adapted twin vector and every playlist its adapted centroid, a page at a time, each model
vector read once (the fit's are kept for the rewrite). The stored map says `ready` only once all of that is
written, so an interrupted run leaves queries on the plain metric, and a re-run finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from siamrec.store import PlaylistRecord, Store
from siamrec.store.adaptation import Adaptation
from siamrec.uris import point_id
from siamrec.whitening import TooFewPlaylistsError, fit_whitening

FIT_TRACKS = 50_000  # enough for a D×D covariance at any D we ship; bounds the fit's memory


@dataclass(frozen=True)
class AdaptReport:
    adaptation: Adaptation
    tracks_written: int
    playlists_written: int

    def as_dict(self) -> dict[str, object]:
        return {
            **self.adaptation.summary(),
            "tracks_written": self.tracks_written,
            "playlists_written": self.playlists_written,
            "metric": "adapted" if self.adaptation.ready else "plain",
        }


def fit_store(store: Store, shrinkage: float | None = None, project: bool | None = None) -> Adaptation:
    """The within-playlist whitening of the store's playlists (TooFewPlaylistsError when there are too few).

    `shrinkage` and `project` (the centroid projection): None chooses them by cross-validation."""
    return _fit(store, shrinkage, project)[0]


def _fit(
    store: Store, shrinkage: float | None = None, project: bool | None = None
) -> tuple[Adaptation, dict[str, np.ndarray]]:
    """`fit_store`, and the model vectors it read by point id (the rewrite that follows reads none of them again)."""
    chosen: list[PlaylistRecord] = []
    budget = FIT_TRACKS
    for playlist in store.iter_playlists():
        members = list(dict.fromkeys(playlist.track_uris))
        if len(members) < 2 or len(members) > budget:
            continue
        chosen.append(playlist)
        budget -= len(members)
        if budget < 2:
            break
    ids = {uri: point_id(uri) for p in chosen for uri in p.track_uris}
    stored = store.model_vectors(ids.values())
    with_vector = [uri for uri in ids if ids[uri] in stored]
    row = {uri: i for i, uri in enumerate(with_vector)}
    dim = store.bind_stored_model()[1]
    vectors = np.stack([stored[ids[uri]] for uri in with_vector]) if with_vector else np.zeros((0, dim))
    groups = [np.array([row[u] for u in dict.fromkeys(p.track_uris) if u in row], dtype=np.int64) for p in chosen]
    whitening = fit_whitening(vectors, groups, shrinkage, project)
    seen = [p.playlist_uri for p, g in zip(chosen, groups, strict=True) if len(g) >= 2]
    return Adaptation(whitening, seen), stored


def adapt_store(
    store: Store,
    shrinkage: float | None = None,
    auto: bool | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> AdaptReport:
    """Fit, store the map, rewrite every adapted vector and centroid, then mark it ready.

    `auto`: None keeps the stored choice (off for a first fit). `on_progress(what, done, total)`.
    """
    previous = store.adaptation_summary()
    fitted, known = _fit(store, shrinkage)
    keep_auto = previous["auto"] if previous is not None else False
    adaptation = replace(fitted, auto=keep_auto if auto is None else auto)
    store.save_adaptation(adaptation)  # not ready: queries stay plain until every twin is written
    done, written = store.rewrite_adapted(known, on_progress)
    del known
    adaptation = adaptation.finished()
    store.save_adaptation(adaptation)
    return AdaptReport(adaptation, done, written)


def switch_off(store: Store) -> bool:
    """Forget the stored adaptation (queries and writes go back to the plain metric); False if there was none."""
    if store.adaptation_summary() is None:
        return False
    store.save_adaptation(None)
    return True


def refit_if_auto(store: Store, playlists_changed: bool) -> dict[str, object] | None:
    """After a sync or playlist change: refit when the user switched `auto` on (None when nothing was due).

    Too few playlists left to fit keeps the stored map (it still ranks as before) and says why.
    """
    found = store.adaptation_summary()
    if not playlists_changed or found is None or not found["auto"]:
        return None
    try:
        return adapt_store(store).as_dict()
    except TooFewPlaylistsError as exc:
        return {"refit": False, "reason": str(exc), "metric": "adapted" if found["ready"] else "plain"}
