"""Local playlists: made from files and track URIs, stored with their membership and centroid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from siamrec.embed import TrackEncoder
from siamrec.library import AddReport, AudioItem, add_audio
from siamrec.store import PlaylistRecord, Store
from siamrec.uris import local_playlist_uri


def create_playlist(
    store: Store,
    encoder: TrackEncoder,
    name: str,
    files: list[Path],
    uris: list[str],
    source: str = "local",
    on_progress: Callable[[int], None] | None = None,
) -> tuple[PlaylistRecord, AddReport]:
    """Add the files' audio (idempotent), then store the playlist of their URIs followed by `uris`."""
    missing = [(str(f), "no such file") for f in files if not f.is_file()]
    report = add_audio(store, encoder, [AudioItem(f) for f in files if f.is_file()], on_progress)
    report.failed = missing + report.failed
    added = [report.uri_by_path[str(f)] for f in files if str(f) in report.uri_by_path]
    track_uris = list(dict.fromkeys(added + uris))
    playlist = PlaylistRecord(playlist_uri=local_playlist_uri(name), name=name, source=source, track_uris=track_uris)
    store.save_playlist(playlist)
    return playlist, report
