"""Whole-store dumps that tests compare before and after a command (nothing stored may change when it fails),
and the small library the service and web-page tests serve."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from siamrec.config import resolve_settings
from siamrec.store import Store, embedded_path
from tests.cli import answer, home_env


def fill_chords_and_beats(home: Path, model: Path, files: dict[str, Path]) -> dict[str, str]:
    """Every library file added through the CLI, then the playlists 'Chords' (two chords) and 'Beats' (a drum
    loop); returns the environment that names this home and model."""
    env = home_env(home, model)
    answer("add-track", *(str(p) for p in files.values()), env=env)
    answer("playlist", "create", "Chords", str(files["chord_a.wav"]), str(files["chord_c.flac"]), env=env)
    answer("playlist", "create", "Beats", str(files["drums_120.wav"]), env=env)
    return env


def dump_store(home: Path | None = None) -> dict[str, Any]:
    """Every track and playlist of the store under `home`, {collection: {uri: ({vector name: rounded vector},
    payload)}}, read through the Store API (whatever the backend); {} when no store exists yet. Without
    `home`: the configured store (SIAMREC_HOME)."""
    settings = resolve_settings(home=None if home is None else str(home))
    if not any(path.exists() for path in (embedded_path(settings), settings.qdrant_path)):
        return {}
    with Store.open(settings) as store:
        if store.stored_model() is None:
            return {}
        name, _ = store.bind_stored_model()

        def named(vector: Any) -> dict[str, list[float]]:
            return {} if vector is None else {name: vector.round(6).tolist()}

        tracks = {t.record.track_uri: (named(t.vector), asdict(t.record)) for t in store.iter_tracks(with_vectors=True)}
        uris = [p.playlist_uri for p in store.iter_playlists()]
        playlists = {
            uri: (named(centroid), asdict(record)) for uri, (record, centroid) in store.get_playlists(uris).items()
        }
    return {"tracks": tracks, "playlists": playlists}


def full_dump(home: Path) -> dict[str, Any]:
    """Every point of both collections, every named vector (rounded) and the whole payload: feedback included."""
    with Store.open(resolve_settings(home=str(home))) as store:
        store.bind_stored_model()
        dump = {}
        for collection in ("tracks", "playlists"):
            names = sorted(store.backend.vectors(collection) or {})
            dump[collection] = {
                hit.id: ({k: v.round(5).tolist() for k, v in hit.vectors.items()}, hit.payload)
                for hit in store.backend.scroll(collection, vectors=names)
            }
    return dump


def snapshot(store: Store, relative_to: Path | None = None) -> dict[str, Any]:
    """Everything stored, comparable across stores (added_at and file mtimes dropped, cache paths relative)."""
    model = store.stored_model()
    assert model is not None
    store.bind_model(*model, create=False)
    tracks = {}
    for track in store.iter_tracks():
        payload = {**track.record.__dict__, "added_at": None, "mtime": None}
        if relative_to is not None and payload["path"]:
            payload["path"] = str(Path(payload["path"]).relative_to(relative_to))
        vector = None if track.vector is None else track.vector.round(5).tolist()
        tracks[track.record.track_uri] = (payload, vector)
    uris = [p.playlist_uri for p in store.iter_playlists()]
    playlists = {
        uri: (record.__dict__, None if centroid is None else centroid.round(5).tolist())
        for uri, (record, centroid) in store.get_playlists(uris).items()
    }
    return {"tracks": tracks, "playlists": playlists}
