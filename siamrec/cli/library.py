"""The library path: add-track, playlist, recommend, export, info."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from siamrec import constants as C
from siamrec.audio import track_windows
from siamrec.cli.common import (
    Settings,
    console,
    json_option,
    print_json,
    progress,
    stdout,
    store_options,
)
from siamrec.embed import load_encoder
from siamrec.errors import ConfigError, NotFoundError, SiamrecError
from siamrec.library import AddReport, AudioItem, add_audio, collect_audio_files
from siamrec.recommend import STRATEGIES, recommend_playlists, recommend_tracks
from siamrec.store import Store, StoredTrack


def _print_failures(report: AddReport) -> None:
    """One plain line per skipped file (no wrapping, so each stays greppable)."""
    for path, reason in report.failed:
        sys.stderr.write(f"skipped: {reason if path in reason else f'{path}: {reason}'}\n")


def _add_with_progress(store: Store, settings: Settings, items: list[AudioItem]) -> AddReport:
    encoder = load_encoder(settings.model_path, settings.device)
    with progress() as bar:
        task = bar.add_task("embedding", total=len(items))
        return add_audio(store, encoder, items, lambda n: bar.advance(task, n))


@click.command("add-track")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--uri", help="Track URI for a single file (default local:track:<sha1 of audio>).")
@click.option("--title", help="Title for a single file (default: from tags).")
@click.option("--artist", help="Artist for a single file (default: from tags).")
@click.option("--album", help="Album for a single file (default: from tags).")
@store_options
@json_option
def add_track(
    paths: tuple[Path, ...],
    uri: str | None,
    title: str | None,
    artist: str | None,
    album: str | None,
    settings: Settings,
    as_json: bool,
) -> None:
    """Add audio files or folders (recursive) to the store: decode, embed, upsert."""
    files, missing = collect_audio_files(paths)
    overrides = {k: v for k, v in {"track_uri": uri, "title": title, "artist": artist, "album": album}.items() if v}
    if overrides and len(files) != 1:
        raise ConfigError("--uri/--title/--artist/--album apply to exactly one file")
    items = [AudioItem(f) for f in files]
    if overrides:
        items = [AudioItem(files[0], overrides=overrides)]
    with Store.open(settings) as store:
        report = _add_with_progress(store, settings, items) if items else AddReport()
        total = store.count_tracks() if store.stored_model() else 0
    report.failed = missing + report.failed
    if as_json:
        print_json({**report.as_dict(), "tracks_in_store": total})
    else:
        _print_failures(report)
        stdout.print(
            f"added {len(report.added)}, updated {len(report.updated)}, failed {len(report.failed)}; "
            f"{total} tracks in the store"
        )
    if report.failed or not files:
        sys.exit(1)


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
    from connectors.local import URI_SCHEMES

    uris = [i for i in items if i.startswith(URI_SCHEMES)]
    files = [Path(i) for i in items if not i.startswith(URI_SCHEMES)]
    _save_playlist(name, files, uris, settings, as_json)


@playlist_group.command("import")
@click.argument("m3u_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@store_options
@json_option
def playlist_import(m3u_files: tuple[Path, ...], settings: Settings, as_json: bool) -> None:
    """Import M3U/M3U8 playlists (their files are added to the store)."""
    from connectors.local import read_m3u

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
        _print_failures(report)
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
        _require_store(store)
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


@click.command("recommend")
@click.option("--playlist", help="Playlist name or URI: recommend new tracks for it.")
@click.option("--track", help="Audio file or track URI: recommend playlists for it.")
@click.option("-k", "--top", "k", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default="mean",
    show_default=True,
    help="mean: cosine to the playlist centroid; best-score: Qdrant recommend (nearest seed).",
)
@click.option("--include-warm", is_flag=True, help="Also recommend tracks that are already in other playlists.")
@click.option("--m3u", "m3u_out", type=click.Path(path_type=Path), help="Write the recommended tracks as M3U.")
@store_options
@json_option
def recommend(
    playlist: str | None,
    track: str | None,
    k: int,
    strategy: str,
    include_warm: bool,
    m3u_out: Path | None,
    settings: Settings,
    as_json: bool,
) -> None:
    """Recommend new tracks for a playlist, or playlists for a track."""
    if (playlist is None) == (track is None):
        raise ConfigError("give exactly one of --playlist or --track")
    with Store.open(settings) as store:
        _require_store(store)
        if playlist is not None:
            _recommend_for_playlist(store, playlist, k, strategy, include_warm, m3u_out, as_json)
        else:
            _recommend_for_track(store, settings, track or "", k, as_json)


def _recommend_for_playlist(
    store: Store, name: str, k: int, strategy: str, include_warm: bool, m3u_out: Path | None, as_json: bool
) -> None:
    record = store.find_playlist(name)
    suggestions = recommend_tracks(store, record, k, strategy, include_warm)
    if m3u_out is not None:
        from connectors.local import write_m3u

        write_m3u(
            m3u_out,
            [
                (
                    s.track.path or s.track.track_uri,
                    f"{s.track.artist} - {s.track.title}".strip(" -"),
                    s.track.duration_s,
                )
                for s in suggestions
            ],
        )
    if as_json:
        print_json(
            {
                "playlist_uri": record.playlist_uri,
                "name": record.name,
                "strategy": strategy,
                "results": [
                    {
                        "rank": i,
                        "track_uri": s.track.track_uri,
                        "title": s.track.title,
                        "artist": s.track.artist,
                        "path": s.track.path,
                        "score": s.score,
                        "because_of": [r.__dict__ for r in s.because_of],
                    }
                    for i, s in enumerate(suggestions, 1)
                ],
            }
        )
        return
    table = Table("#", "score", "title", "artist", "because of", title=f"for {record.name} ({strategy})")
    for i, s in enumerate(suggestions, 1):
        reasons = ", ".join(f"{r.title} ({r.similarity:.2f})" for r in s.because_of)
        table.add_row(str(i), f"{s.score:.3f}", s.track.title, s.track.artist, reasons)
    stdout.print(table)
    if not suggestions:
        console.print("no candidate tracks: add new audio with `siamrec add-track` (or use --include-warm)")


def _recommend_for_track(store: Store, settings: Settings, track: str, k: int, as_json: bool) -> None:
    path = Path(track)
    if path.is_file():
        encoder = load_encoder(settings.model_path, settings.device)
        store.bind_model(encoder.name, encoder.dim, create=False)
        windows, _ = track_windows(path)
        vector = encoder.track_vectors([windows])[0]
        uri = None
    else:
        stored = store.get_tracks([track], with_vectors=True).get(track)
        if stored is None or stored.vector is None:
            raise NotFoundError(f"{track!r} is neither an audio file nor a stored track URI with audio")
        vector, uri = stored.vector, track
    suggestions = recommend_playlists(store, vector, k, exclude_track_uri=uri)
    if as_json:
        print_json(
            {
                "track": track,
                "results": [
                    {
                        "rank": i,
                        "playlist_uri": s.playlist.playlist_uri,
                        "name": s.playlist.name,
                        "score": s.score,
                        "because_of": [r.__dict__ for r in s.because_of],
                    }
                    for i, s in enumerate(suggestions, 1)
                ],
            }
        )
        return
    table = Table("#", "score", "playlist", "closest tracks in it", title=f"playlists for {track}")
    for i, s in enumerate(suggestions, 1):
        reasons = ", ".join(f"{r.title} ({r.similarity:.2f})" for r in s.because_of)
        table.add_row(str(i), f"{s.score:.3f}", s.playlist.name, reasons)
    stdout.print(table)


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="Model name stored in the file (default from the checkpoint).")
@click.option("--trained-on", help="What it was trained on (default from the checkpoint).")
@click.option(
    "--parity-audio",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Audio files or folders for the parity check (default: synthetic music-like signals).",
)
@json_option
def export(
    checkpoint: Path,
    output: Path,
    name: str | None,
    trained_on: str | None,
    parity_audio: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Export a training checkpoint to one ONNX file, checked against torch."""
    try:
        from export.onnx_export import export_checkpoint
    except ModuleNotFoundError as exc:
        raise SiamrecError(
            f"export needs the training stack ({exc.name} missing): pip install 'siamrec[train]'"
        ) from exc
    import numpy as np

    windows = None
    if parity_audio:
        files, _ = collect_audio_files(parity_audio)
        windows = np.concatenate([track_windows(f, 2)[0] for f in files[:16]]) if files else None
    report = export_checkpoint(checkpoint, output, name=name, trained_on=trained_on, parity_windows=windows)
    if as_json:
        print_json(report.__dict__)
    else:
        stdout.print(
            f"exported {report.name} (dim {report.dim}) to {report.path}: {report.size_bytes / 1e6:.1f} MB, "
            f"parity max |torch - onnx| = {report.max_abs_diff:.2e} over {report.parity_windows} windows"
        )


@click.command("info")
@store_options
@json_option
def info(settings: Settings, as_json: bool) -> None:
    """What the store holds and which model it was made with."""
    with Store.open(settings) as store:
        model = store.stored_model()
        if model:
            store.bind_model(*model, create=False)
        tracks = store.count_tracks() if model else 0
        cold = store.count_tracks(cold_only=True) if model else 0
        playlists = store.client.count(C.PLAYLISTS_COLLECTION).count if model else 0
    summary = {
        "store": settings.qdrant_url or str(settings.qdrant_path),
        "model": model[0] if model else None,
        "dim": model[1] if model else None,
        "tracks": tracks,
        "cold_tracks": cold,
        "playlists": playlists,
    }
    if as_json:
        print_json(summary)
        return
    table = Table("what", "value", title="siamrec store")
    for key, value in summary.items():
        table.add_row(key, str(value))
    stdout.print(table)


COMMANDS = [add_track, playlist_group, recommend, export, info]
