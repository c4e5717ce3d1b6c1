"""`siamrec playlist create|import|list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from siamrec.cli.common import (
    Settings,
    json_option,
    plural,
    print_json,
    stdout,
    store_options,
)
from siamrec.store import PlaylistRecord, Store, StoredTrack
from siamrec.store.by_name import MAX_BATCH, order_key


@click.group("playlist")
def playlist_group() -> None:
    """Create, import, list and show playlists."""


@playlist_group.command("create")
@click.argument("name")
@click.argument("items", nargs=-1, required=True)
@store_options
@json_option
def playlist_create(name: str, items: tuple[str, ...], settings: Settings, as_json: bool) -> None:
    """Make playlist NAME from audio files and/or track URIs (the same name again updates it).

    Files are embedded (idempotent); URIs are referenced and count once their audio is added. Files that
    are missing or not audio are reported; if none of the items is usable, a stored playlist stays as it was.
    """
    from siamrec.cli.sync import run_sync
    from siamrec.connectors.local import LocalSource
    from siamrec.connectors.sync import SyncOptions
    from siamrec.uris import is_uri

    entries: list[Path | str] = [item if is_uri(item) else Path(item) for item in items]
    run_sync(settings, [LocalSource(named=[(name, entries)])], SyncOptions(), as_json, f"playlist {name}")


@playlist_group.command("import")
@click.argument("playlist_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@store_options
@json_option
def playlist_import(playlist_files: tuple[Path, ...], settings: Settings, as_json: bool) -> None:
    """Import M3U/M3U8/PLS playlists (their files are added to the store); the same as sync-playlists --m3u.

    Each file is imported on its own: a bad one is reported and the others are still imported.
    """
    from siamrec.cli.sync import run_sync
    from siamrec.connectors.local import LocalSource
    from siamrec.connectors.sync import SyncOptions

    run_sync(settings, [LocalSource(playlist_files)], SyncOptions(), as_json, "playlist import")


@playlist_group.command("list")
@click.option("--name", "starting", default="", help="Only playlists whose name starts with this (any case).")
@click.option(
    "--words", default="", help="Only playlists with a word starting with each of these (any case or accent)."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many, by name (default: all).")
@store_options
@json_option
def playlist_list(starting: str, words: str, limit: int | None, settings: Settings, as_json: bool) -> None:
    """List the stored playlists by name (`--words "road tr"` finds "Chill road-trip")."""
    with Store.open(settings) as store:
        rows = _rows_by_name(store, starting, words, limit) if store.stored_model() else []
    if as_json:
        print_json(rows)
        return
    table = Table("name", "tracks", "source", "uri", title=plural(len(rows), "playlist"))
    for row in rows:
        table.add_row(row["name"], str(row["tracks"]), row["source"], row["playlist_uri"])
    stdout.print(table)


def _row(playlist: PlaylistRecord) -> dict[str, Any]:
    return {
        "playlist_uri": playlist.playlist_uri,
        "name": playlist.name,
        "source": playlist.source,
        "tracks": len(playlist.track_uris),
    }


def _rows_by_name(store: Store, starting: str, words: str, limit: int | None) -> list[dict[str, Any]]:
    """The playlists to list, each kept as its row only (not its member URIs, most of a playlist's bytes).

    The first `limit` are one page (a page costs what it shows). A word search without a limit reads page after
    page (the text index skips what it leaves out). Otherwise all of them are read in one pass and sorted here,
    four times quicker than paging through a whole store (benchmarks/playlist_pages.py)."""
    if limit is not None:
        return [_row(p) for p in store.playlist_page(limit, starting=starting, words=words).playlists]
    if words.strip():
        rows, after = [], None
        while True:
            page = store.playlist_page(MAX_BATCH, after, starting, words)
            rows += [_row(p) for p in page.playlists]
            if (after := page.after) is None:
                return rows
    keyed = [(order_key(p), _row(p)) for p in store.iter_playlists(starting)]
    return [row for _, row in sorted(keyed, key=lambda pair: pair[0])]


@playlist_group.command("show")
@click.argument("playlist")
@store_options
@json_option
def playlist_show(playlist: str, settings: Settings, as_json: bool) -> None:
    """Show one playlist's tracks (by name or URI)."""
    with Store.open(settings) as store:
        store.bind_stored_model()
        record = store.find_playlist(playlist)
        tracks = store.get_tracks(record.track_uris)
        with_audio = store.uris_with_vectors(record.track_uris)
    rows = [_track_row(uri, tracks.get(uri), uri in with_audio) for uri in record.track_uris]
    if as_json:
        print_json({"playlist_uri": record.playlist_uri, "name": record.name, "tracks": rows})
        return
    table = Table("#", "title", "artist", "audio", "uri", title=f"{record.name} ({record.playlist_uri})")
    for i, row in enumerate(rows, 1):
        table.add_row(str(i), row["title"], row["artist"], "yes" if row["has_audio"] else "no", row["track_uri"])
    stdout.print(table)


def _track_row(uri: str, track: StoredTrack | None, has_audio: bool) -> dict[str, Any]:
    record = track.record if track else None
    return {
        "track_uri": uri,
        "title": record.title if record else "",
        "artist": record.artist if record else "",
        "has_audio": has_audio,
    }
