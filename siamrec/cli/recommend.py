"""`siamrec recommend`: new tracks for a playlist, or playlists for a track."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from siamrec.audio import track_windows
from siamrec.cli.common import (
    NARROW,
    Settings,
    console,
    json_option,
    output_file,
    print_json,
    stdout,
    store_options,
)
from siamrec.embed import load_encoder
from siamrec.errors import ConfigError, NotFoundError
from siamrec.recommend import STRATEGIES, Reason, recommend_playlists, recommend_tracks
from siamrec.store import Store


@click.command("recommend")
@click.option("--playlist", help="Playlist name or URI: recommend new tracks for it.")
@click.option("--track", help="Audio file or track URI: recommend playlists for it.")
@click.option(
    "-k", "--top", "k", default=20, show_default=True, type=click.IntRange(1, 10_000), help="How many results."
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default="mean",
    show_default=True,
    help="mean: rank by cosine to the playlist's centroid; best-score: by the best cosine to any of its tracks "
    "(Qdrant recommend). The score shown is that cosine similarity: 1 = same direction, 0 = unrelated, "
    "below 0 = less alike than unrelated; compare scores within one list, not across models.",
)
@click.option("--include-warm", is_flag=True, help="Also recommend tracks that are already in other playlists.")
@click.option(
    "--m3u",
    "m3u_out",
    type=click.Path(path_type=Path),
    callback=output_file("--m3u", (".m3u", ".m3u8")),
    help="Write the recommended tracks as M3U.",
)
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
    """Recommend new tracks for a playlist, or playlists for a track.

    Scores are cosine similarities between track vectors (or a track and a playlist's centroid).
    """
    if (playlist is None) == (track is None):
        raise ConfigError("give exactly one of --playlist or --track")
    with Store.open(settings) as store:
        store.bind_stored_model()
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
        from siamrec.connectors.local import write_m3u

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
    table = _table(f"for {record.name} ({strategy}; score = cosine similarity)", "title", "artist", "because of")
    for i, s in enumerate(suggestions, 1):
        table.add_row(str(i), f"{s.score:.3f}", s.track.title, s.track.artist, _reasons(s.because_of))
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
    table = _table(f"playlists for {track} (score = cosine similarity)", "playlist", "closest tracks in it")
    for i, s in enumerate(suggestions, 1):
        table.add_row(str(i), f"{s.score:.3f}", s.playlist.name, _reasons(s.because_of))
    stdout.print(table)


def _table(title: str, *text_columns: str) -> Table:
    """Rank, score and text columns; under NARROW columns each cell stays on one line (cut with …; --json
    has everything) instead of wrapping mid-phrase."""
    narrow = stdout.width < NARROW
    table = Table(title=title, box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD, pad_edge=not narrow)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    short, columns = 16, 2 + len(text_columns)
    rest = stdout.width - 9 - short * (len(text_columns) - 1) - 3 * columns  # rank, score, padding
    for index, name in enumerate(text_columns):  # the last one holds the reasons: it gets what is left
        width = (short if index < len(text_columns) - 1 else max(10, rest)) if narrow else None
        table.add_column(name, overflow="ellipsis" if narrow else "fold", no_wrap=narrow, max_width=width)
    return table


def _reasons(reasons: list[Reason]) -> str:
    return ", ".join(f"{r.title or r.track_uri} ({r.similarity:.2f})" for r in reasons)
