"""`siamrec recommend`: new tracks for a playlist, or playlists for a track."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

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
from siamrec.cli.subsonic import connect, server_options
from siamrec.errors import ConfigError, NotFoundError
from siamrec.recommend import STRATEGIES, Reason, recommend_playlists, recommend_tracks
from siamrec.store import METRICS, Store


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
    "--metric",
    type=click.Choice(METRICS),
    default="auto",
    show_default=True,
    help="plain: cosine on the model's vectors; adapted: on the playlist-adapted ones (`siamrec adapt`); "
    "auto: adapted when the store has it.",
)
@click.option(
    "--m3u",
    "m3u_out",
    type=click.Path(path_type=Path),
    callback=output_file("--m3u", (".m3u", ".m3u8")),
    help="Write the recommended tracks as M3U.",
)
@click.option(
    "--to-subsonic",
    is_flag=True,
    help="Shortcut for `siamrec publish --to subsonic --playlist NAME`: the playlist's top-k server songs as "
    "'<name> · siamrec'; with --track, the server song goes to its best playlist.",
)
@click.option(
    "--to-spotify",
    is_flag=True,
    help="Shortcut for `siamrec publish --to spotify --playlist NAME`: the playlist's top-k Spotify tracks as a "
    "private '<name> · siamrec' playlist (OAuth).",
)
@server_options
@store_options
@json_option
def recommend(
    playlist: str | None,
    track: str | None,
    k: int,
    strategy: str,
    include_warm: bool,
    metric: str,
    m3u_out: Path | None,
    to_subsonic: bool,
    to_spotify: bool,
    subsonic_url: str | None,
    subsonic_user: str | None,
    settings: Settings,
    as_json: bool,
) -> None:
    """Recommend new tracks for a playlist, or playlists for a track.

    Scores are cosine similarities between track vectors (or a track and a playlist's centroid).
    """
    if (playlist is None) == (track is None):
        raise ConfigError("give exactly one of --playlist or --track")
    if to_spotify and playlist is None:
        raise ConfigError("--to-spotify writes a playlist's recommendations: use it with --playlist")
    client = connect(subsonic_url, subsonic_user) if to_subsonic else None
    if to_spotify:  # log in with the write scope now, before the store is opened and locked
        from siamrec.cli.spotify import login

        login(settings.home, write=True)
    with Store.open(settings) as store:
        store.bind_stored_model()
        store.use_metric(metric)
        if playlist is not None:
            spotify = settings.home if to_spotify else None
            _recommend_for_playlist(store, playlist, k, strategy, include_warm, m3u_out, as_json, client, spotify)
        else:
            _recommend_for_track(store, settings, track or "", k, as_json, client)


def _publish(to: str, store: Store, record: Any, k: int, strategy: str, include_warm: bool, **where: Any
             ) -> dict[str, Any]:  # fmt: skip
    """`--to-subsonic` / `--to-spotify` for a playlist: the plan and write of `siamrec publish --to ...`."""
    from siamrec.connectors.publish import publish_one, publisher_for

    publisher = publisher_for(to, store, k, strategy, include_warm, **where)
    return dict(publish_one(publisher, record).as_dict())


def _recommend_for_playlist(
    store: Store, name: str, k: int, strategy: str, include_warm: bool, m3u_out: Path | None, as_json: bool,
    client: Any = None, spotify: Path | None = None,
) -> None:  # fmt: skip
    record = store.find_playlist(name)
    suggestions = recommend_tracks(store, record, k, strategy, include_warm)
    written, on_spotify = None, None
    if client is not None:
        written = _publish("subsonic", store, record, k, strategy, include_warm, client=client)
    if spotify is not None:
        on_spotify = _publish("spotify", store, record, k, strategy, include_warm, token_dir=spotify)
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
                "metric": store.metric,
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
                **({"subsonic": written} if written is not None else {}),
                **({"spotify": on_spotify} if on_spotify is not None else {}),
            }
        )
        return
    metric = "" if store.metric == "plain" else f", {store.metric} metric"
    table = _table(f"for {record.name} ({strategy}{metric}; score = cosine similarity)", "title", "artist",
                   "because of")  # fmt: skip
    for i, s in enumerate(suggestions, 1):
        table.add_row(str(i), f"{s.score:.3f}", s.track.title, s.track.artist, _reasons(s.because_of))
    stdout.print(table)
    if not suggestions:
        console.print("no candidate tracks: add new audio with `siamrec add-track` (or use --include-warm)")
    if written is not None:
        console.print(
            f"{written['action']}: server playlist {written['name']!r} with {len(written['songs'])} songs",
            markup=False,
            highlight=False,
        )
    if on_spotify is not None:
        console.print(
            f"{on_spotify['action']}: Spotify playlist {on_spotify['name']!r}, {len(on_spotify['track_uris'])} tracks",
            markup=False,
            highlight=False,
        )


def _add_to_best(store: Store, client: Any, track: str, suggestions: list[Any]) -> dict[str, Any]:
    """`--to-subsonic` for a server song: add it to the best-fitting of the user's own server playlists."""
    from siamrec.connectors.subsonic.client import parse_uri
    from siamrec.connectors.subsonic.publish import SubsonicPublisher

    song = parse_uri(track)
    if song is None or song[:2] != (client.server, "track"):
        raise ConfigError(f"--to-subsonic adds songs of {client.shown} only; {track!r} is not one")
    publisher = SubsonicPublisher(store, client)
    own = {p.id for p in publisher.own()}
    for suggestion in suggestions:
        target = parse_uri(suggestion.playlist.playlist_uri)
        if target and target[:2] == (client.server, "playlist") and target[2] in own:
            added = publisher.add_to_playlist(target[2], song[2])
            return {"playlist": suggestion.playlist.name, "server_playlist_id": target[2], "added": added}
    raise NotFoundError(f"none of the suggested playlists is one of {client.user}'s on {client.shown}")


def _recommend_for_track(
    store: Store, settings: Settings, track: str, k: int, as_json: bool, client: Any = None
) -> None:
    path = Path(track)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a name too long for the filesystem or with a NUL byte: not a file here
        is_file = False
    if is_file:
        from siamrec.audio import track_windows  # here: a playlist's recommendation never loads the model
        from siamrec.embed import load_encoder

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
    written = _add_to_best(store, client, track, suggestions) if client is not None else None
    if as_json:
        print_json(
            {
                "track": track,
                "metric": store.metric,
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
                **({"subsonic": written} if written is not None else {}),
            }
        )
        return
    metric = "" if store.metric == "plain" else f"{store.metric} metric, "
    table = _table(f"playlists for {track} ({metric}score = cosine similarity)", "playlist", "closest tracks in it")
    for i, s in enumerate(suggestions, 1):
        table.add_row(str(i), f"{s.score:.3f}", s.playlist.name, _reasons(s.because_of))
    stdout.print(table)
    if written is not None:
        verb = "added to" if written["added"] else "already in"
        console.print(f"{verb} server playlist {written['playlist']!r}", markup=False, highlight=False)


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
