"""`siamrec sync-playlists`: the Million Playlist Dataset, Spotify, Subsonic, M3U/PLS and folders into the store.

Two environment variables exist for the kill-and-resume tests (and for watching a sync closely):
SIAMREC_SYNC_BATCH sets the tracks per write batch, SIAMREC_SYNC_PAUSE=S logs every finished batch on
stderr and sleeps S seconds after it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from siamrec.adapt import refit_if_auto
from siamrec.cli import stderr_line
from siamrec.cli.common import Settings, console, json_option, print_json, progress, stdout, store_options
from siamrec.cli.ray_options import embedding_on, ray_options
from siamrec.cli.spotify import LOGIN_WAIT_S, login
from siamrec.cli.subsonic import connect, server_options
from siamrec.connectors.base import PlaylistSource
from siamrec.connectors.cache import AudioCache
from siamrec.connectors.fetch import Fetcher
from siamrec.connectors.local import LocalSource
from siamrec.connectors.mpd import MpdSelection, MpdSource
from siamrec.connectors.search import FetchOptions, url_template_search
from siamrec.connectors.spotify import ME, SpotifySource
from siamrec.connectors.subsonic.source import LIBRARY_ROUND, SubsonicFetcher, SubsonicSource
from siamrec.connectors.sync import DEFAULT_BATCH, PHASES, Learned, Sync, SyncOptions, SyncReport, learned_line
from siamrec.embed import load_encoder
from siamrec.errors import ConfigError
from siamrec.store import Store

MAX_FAILURES_SHOWN = 50


class RichSyncProgress:
    """One rich progress bar per phase, created when the phase first reports."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def _task(self, phase: str) -> TaskID:
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(PHASES[phase], total=None if phase == "read" else 0)
        return self.tasks[phase]

    def grow(self, phase: str, n: int) -> None:
        if n == 0 and phase not in self.tasks:  # a phase with nothing to do shows no `0/0 -:--:--` bar
            return
        task = self._task(phase)
        self.bar.update(task, total=(self.bar.tasks[task].total or 0) + n)

    def advance(self, phase: str, n: int) -> None:
        self.bar.advance(self._task(phase), n)


def _batch_hook() -> Any:
    """SIAMREC_SYNC_PAUSE: log each finished batch and sleep, so a test can kill the sync between batches."""
    pause = float(os.environ.get("SIAMREC_SYNC_PAUSE") or 0)
    if pause <= 0:
        return None

    def on_batch(phase: str, done: int) -> None:
        stderr_line(f"sync: {phase} batch {done} done")
        time.sleep(pause)

    return on_batch


def _mpd_selection(top: int | None, pids: tuple[int, ...], name: str | None, min_tracks: int) -> MpdSelection:
    try:
        pattern = re.compile(name, re.IGNORECASE) if name else None
    except re.error as exc:
        raise ConfigError(f"--name {name!r} is not a regular expression: {exc}") from exc
    return MpdSelection(top_followers=top, pids=frozenset(pids), name_pattern=pattern, min_tracks=min_tracks)


def _subsonic(params: dict[str, Any], settings: Settings) -> tuple[SubsonicSource, SubsonicFetcher] | None:
    """The server's source and the fetcher that streams its songs (into the audio cache unless turned off)."""
    if not params["subsonic_url"]:
        if params["subsonic_playlists"] or params["subsonic_library"]:
            raise ConfigError("--subsonic-playlist and --subsonic-library need --subsonic URL and --subsonic-user")
        return None
    if params["fetch_audio"] or params["audio_url"]:
        raise ConfigError("a Subsonic server streams its own audio: drop --fetch-audio/--audio-url, or sync it apart")
    client = connect(params["subsonic_url"], params["subsonic_user"])
    cache = None if params["no_audio_cache"] else AudioCache(settings.cache_dir / "audio")
    source = SubsonicSource(client, params["subsonic_playlists"], params["subsonic_library"])
    return source, SubsonicFetcher(client, cache)


def _sources(params: dict[str, Any], settings: Settings) -> list[PlaylistSource]:
    sources: list[PlaylistSource] = []
    mpd_filters = params["top_followers"] or params["pids"] or params["name_regex"] or params["min_tracks"]
    if params["mpd_paths"]:
        selection = _mpd_selection(params["top_followers"], params["pids"], params["name_regex"], params["min_tracks"])
        sources.append(MpdSource(params["mpd_paths"], selection))
    elif mpd_filters:
        raise ConfigError(
            "--top-followers, --pid, --name and --min-tracks select Million Playlist Dataset playlists: add --mpd"
        )
    if params["spotify_refs"] or params["spotify_users"]:
        sources.append(SpotifySource(params["spotify_refs"], params["spotify_users"], cache_dir=settings.home))
        if ME in params["spotify_users"]:  # log in now, before the store is opened and locked
            login(settings.home, wait_s=params["spotify_login_wait"])
    if params["playlist_files"] or params["folders"]:
        sources.append(LocalSource(params["playlist_files"], params["folders"]))
    if not sources and not params["subsonic_url"]:
        raise ConfigError("name a playlist source: --mpd, --spotify, --spotify-user, --subsonic, --m3u or --folder")
    return sources


def _sync_options(params: dict[str, Any], settings: Settings, subsonic: SubsonicFetcher | None) -> SyncOptions:
    cache_root = settings.cache_dir / "audio"
    fetching = params["fetch_audio"] or params["audio_url"]
    cache = AudioCache(cache_root) if fetching or cache_root.is_dir() else None
    fetcher: Fetcher | SubsonicFetcher | None = subsonic
    if fetching and cache is not None:
        searcher = url_template_search(params["audio_url"]) if params["audio_url"] else None
        options = FetchOptions(workers=params["fetch_workers"], min_interval_s=params["fetch_interval"])
        fetcher = Fetcher(cache, searcher, options)
    return SyncOptions(
        learn=(lambda store: _learn_from_player(store, subsonic)) if subsonic else None,
        audio_manifest=params["audio_manifest"],
        audio_dir=params["audio_dir"],
        cache=cache,
        fetcher=fetcher,  # type: ignore[arg-type]
        batch_size=int(os.environ.get("SIAMREC_SYNC_BATCH") or DEFAULT_BATCH),
        **(
            {"tracks_per_round": LIBRARY_ROUND, "after_round": subsonic.round_done}
            if subsonic and not subsonic.keep
            else {}
        ),
    )


def _learn_from_player(store: Store, subsonic: SubsonicFetcher) -> list[Learned]:
    """Edits the listener made to the playlists siamrec published on the server, stored as feedback."""
    from siamrec.connectors.subsonic.learn import PlayerLearner

    return PlayerLearner(store, subsonic.client).learn_all()


def _print_summary(report: SyncReport, seconds: float, title: str) -> None:
    for problem in report.failed[:MAX_FAILURES_SHOWN]:
        console.print(Text.assemble(("failed", "yellow"), " ", str(problem)), soft_wrap=True)
    if len(report.failed) > MAX_FAILURES_SHOWN:
        console.print(f"… and {len(report.failed) - MAX_FAILURES_SHOWN} more (--json lists them all)")
    table = Table("what", "count", title=f"{title} ({seconds:.1f} s)")
    rows = [
        ("playlists", report.playlists),
        ("playlists written", report.playlists_written),
        ("playlists without audio", report.playlists_without_audio),
        ("tracks", report.tracks),
        ("track records written", report.tracks_written),
        ("tracks with audio", report.with_audio),
        ("tracks without audio", len(report.without_audio)),
        ("fetched now", report.fetched),
        ("embedded now", report.embedded),
        ("skipped (already embedded)", report.skipped),
        ("failed", len(report.failed)),
    ]
    for label, count in rows:
        table.add_row(label, str(count))
    if report.learned is not None:
        table.add_row("learned from the player", learned_line(report.learned))
    stdout.print(table)


@click.command("sync-playlists")
@click.option(
    "--mpd",
    "mpd_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Million Playlist Dataset folder or slice file (the challenge set file too).",
)
@click.option("--top-followers", type=click.IntRange(1), help="Only the N most-followed playlists (the paper: 100).")
@click.option("--pid", "pids", multiple=True, type=int, help="Only this Million Playlist Dataset pid (repeatable).")
@click.option("--name", "name_regex", help="Only playlists whose name matches this regular expression.")
@click.option("--min-tracks", type=click.IntRange(0), default=0, help="Only playlists with at least N tracks.")
@click.option("--spotify", "spotify_refs", multiple=True, help="Spotify playlist URL, URI or ID (repeatable).")
@click.option(
    "--spotify-user",
    "spotify_users",
    multiple=True,
    help="All playlists of a Spotify user; 'me': yours (OAuth: the first time, siamrec prints an address to open "
    "in any browser and reads the address you are sent to from stdin).",
)
@click.option(
    "--spotify-login-wait",
    type=click.FloatRange(1, 3600),
    default=LOGIN_WAIT_S,
    show_default=True,
    help="Seconds to wait for the pasted Spotify redirect address.",
)
@click.option("--m3u", "playlist_files", multiple=True, type=click.Path(path_type=Path), help="M3U/M3U8/PLS file.")
@click.option("--folder", "folders", multiple=True, type=click.Path(path_type=Path), help="One subfolder per playlist.")
@server_options
@click.option(
    "--subsonic-playlist",
    "subsonic_playlists",
    multiple=True,
    help="Only this server playlist, by name or id (repeatable).",
)
@click.option("--subsonic-library", is_flag=True, help="Also every song of the Subsonic library, paged.")
@click.option("--no-audio-cache", is_flag=True, help="Subsonic: drop each round's audio once embedded (big libraries).")
@click.option("--fetch-audio", is_flag=True, help="Fetch missing audio with yt-dlp (YouTube search 'artist - title').")
@click.option("--audio-url", help="Fetch missing audio from a URL template instead: {id}, {uri}, {artist}, {title}.")
@click.option("--audio-dir", type=click.Path(path_type=Path), help="Find missing audio in a tagged collection.")
@click.option("--audio-manifest", type=click.Path(path_type=Path), help="TSV/JSONL manifest: track_uri → path.")
@click.option("--fetch-workers", type=click.IntRange(1, 16), default=2, show_default=True, help="Parallel downloads.")
@click.option(
    "--fetch-interval", type=click.FloatRange(0), default=1.0, show_default=True, help="Seconds between requests."
)
@ray_options
@store_options
@json_option
def sync_playlists(settings: Settings, as_json: bool, **params: Any) -> None:
    """Sync playlists and their tracks into the store, embedding what has audio (resumable, idempotent).

    Sources: the Million Playlist Dataset (--mpd), the Spotify Web API (--spotify, --spotify-user; set
    SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET), a Subsonic server (--subsonic, --subsonic-user; its audio
    is streamed from it), M3U/PLS files (--m3u) and folders (--folder). Audio: the local files themselves,
    --audio-manifest, --audio-dir, or --fetch-audio / --audio-url (yt-dlp + ffmpeg).
    """
    sources = _sources(params, settings)
    subsonic = _subsonic(params, settings)
    if subsonic is not None:
        sources.append(subsonic[0])
    fetcher = subsonic[1] if subsonic else None
    try:
        options = _sync_options(params, settings, fetcher)
        with embedding_on(params["ray"], params["ray_actors"]) as (embed, actors):
            if actors:  # one Ray job per round: each job starts its actor pool, and writes back as it goes
                options = replace(options, embed=embed, batch_size=options.tracks_per_round)
            run_sync(settings, sources, options, as_json, "sync-playlists")
    finally:
        if fetcher is not None:
            fetcher.close()


def run_sync(
    settings: Settings, sources: list[PlaylistSource], options: SyncOptions, as_json: bool, title: str
) -> SyncReport:
    """Run sources through the sync into the store, report (one JSON document with --json), exit 1 on failures.

    `sync-playlists`, `playlist create` and `playlist import` all come here: one implementation of
    membership, centroids and local track URIs.
    """
    encoder = load_encoder(settings.model_path, settings.device)
    started = time.monotonic()
    with Store.open(settings) as store, progress() as bar:
        report = Sync(store, encoder, options, RichSyncProgress(bar), _batch_hook()).run(sources)
        adapted = refit_if_auto(store, report.playlists_written > 0)
    seconds = time.monotonic() - started
    if as_json:
        print_json({**report.as_dict(), **({"adapt": adapted} if adapted else {}), "seconds": round(seconds, 2)})
    else:
        _print_summary(report, seconds, title)
        if adapted:
            console.print(
                f"adapted metric refitted on {adapted['playlists']} playlists (adapt --auto)"
                if adapted.get("refit", True)
                else f"adapted metric kept as it was: {adapted['reason']}"
            )
    if report.failed:
        sys.exit(1)
    return report
