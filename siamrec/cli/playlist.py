"""`siamrec playlist create|import|list|show`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from siamrec.cli.common import (
    Settings,
    json_option,
    print_failures,
    print_json,
    progress,
    stdout,
    store_options,
)
from siamrec.embed import load_encoder
from siamrec.errors import NotFoundError
from siamrec.store import Store, StoredTrack


@click.group("playlist")
def playlist_group() -> None:
    """Create, import, list and show playlists."""


@playlist_group.command("create")
@click.argument("name")
@click.argument("items", nargs=-1, required=True)
@store_options
@json_option
def playlist_create(name: str, items: tuple[str, ...], settings: Settings, as_json: bool) -> None:
    """Make playlist NAME from audio files and/or track URIs (same name again replaces it)."""
    from siamrec.uris import URI_SCHEMES

    uris = [i for i in items if i.startswith(URI_SCHEMES)]
    files = [Path(i) for i in items if not i.startswith(URI_SCHEMES)]
    _save_playlist(name, files, uris, settings, as_json)


@playlist_group.command("import")
@click.argument("m3u_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@store_options
@json_option
def playlist_import(m3u_files: tuple[Path, ...], settings: Settings, as_json: bool) -> None:
    """Import M3U/M3U8 playlists (their files are added to the store)."""
    from siamrec.connectors.local import read_m3u

    for m3u in m3u_files:
        entries = read_m3u(m3u)
        _save_playlist(entries.name, entries.files, entries.uris, settings, as_json)


def _save_playlist(name: str, files: list[Path], uris: list[str], settings: Settings, as_json: bool) -> None:
    from siamrec.playlists import create_playlist

    encoder = load_encoder(settings.model_path, settings.device)
    with Store.open(settings) as store, progress() as bar:
        task = bar.add_task(f"playlist {name}", total=len(files))
        playlist, report = create_playlist(
            store, encoder, name, files, uris, on_progress=lambda n: bar.advance(task, n)
        )
        with_audio = store.get_tracks(playlist.track_uris, with_vectors=True)
    audio_count = sum(1 for t in with_audio.values() if t.vector is not None)
    if as_json:
        print_json(
            {
                "playlist_uri": playlist.playlist_uri,
                "name": name,
                "tracks": len(playlist.track_uris),
                "with_audio": audio_count,
                "failed": report.as_dict()["failed"],
            }
        )
    else:
        print_failures(report.failed)
        stdout.print(
            f"playlist {name!r} ({playlist.playlist_uri}): {len(playlist.track_uris)} tracks, {audio_count} with audio"
        )
    if report.failed:
        sys.exit(1)


@playlist_group.command("list")
@store_options
@json_option
def playlist_list(settings: Settings, as_json: bool) -> None:
    """List the stored playlists."""
    with Store.open(settings) as store:
        playlists = list(store.iter_playlists()) if store.stored_model() else []
    rows = [
        {"playlist_uri": p.playlist_uri, "name": p.name, "source": p.source, "tracks": len(p.track_uris)}
        for p in sorted(playlists, key=lambda p: p.name.casefold())
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "tracks", "source", "uri", title=f"{len(rows)} playlists")
    for row in rows:
        table.add_row(row["name"], str(row["tracks"]), row["source"], row["playlist_uri"])
    stdout.print(table)


@playlist_group.command("show")
@click.argument("playlist")
@store_options
@json_option
def playlist_show(playlist: str, settings: Settings, as_json: bool) -> None:
    """Show one playlist's tracks (by name or URI)."""
    with Store.open(settings) as store:
        store.bind_stored_model()
        record = store.find_playlist(playlist)
        tracks = store.get_tracks(record.track_uris, with_vectors=True)
    rows = [_track_row(uri, tracks.get(uri)) for uri in record.track_uris]
    if as_json:
        print_json({"playlist_uri": record.playlist_uri, "name": record.name, "tracks": rows})
        return
    table = Table("#", "title", "artist", "audio", "uri", title=f"{record.name} ({record.playlist_uri})")
    for i, row in enumerate(rows, 1):
        table.add_row(str(i), row["title"], row["artist"], "yes" if row["has_audio"] else "no", row["track_uri"])
    stdout.print(table)


def _track_row(uri: str, track: StoredTrack | None) -> dict[str, Any]:
    record = track.record if track else None
    return {
        "track_uri": uri,
        "title": record.title if record else "",
        "artist": record.artist if record else "",
        "has_audio": bool(track and track.vector is not None),
    }


def _require_store(store: Store) -> None:
    model = store.stored_model()
    if model is None:
        raise NotFoundError("the store is empty: add tracks with `siamrec add-track` first")
    store.bind_model(*model, create=False)
