"""`siamrec sync-playlists`: playlists of every registered source (the Million Playlist Dataset, Spotify, Subsonic,
M3U/PLS and folders, and any installed package's: connectors/sources.py) into the store.

Two environment variables exist for the kill-and-resume tests (and for watching a sync closely):
SIAMREC_SYNC_BATCH sets the tracks per write batch, SIAMREC_SYNC_PAUSE=S logs every finished batch on
stderr and sleeps S seconds after it.
"""

from __future__ import annotations

import os
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
from siamrec.connectors.base import PlaylistSource
from siamrec.connectors.cache import AudioCache
from siamrec.connectors.fetch import Fetcher
from siamrec.connectors.search import FetchOptions, url_template_search
from siamrec.connectors.sources import Built, build_all, close_all, registered_sources, source_options
from siamrec.connectors.sync import DEFAULT_BATCH, PHASES, Sync, SyncOptions, SyncReport, learned_line
from siamrec.embed import load_encoder
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


def _sync_options(params: dict[str, Any], settings: Settings, built: list[Built]) -> SyncOptions:
    """Where audio comes from (files, the cache, a fetcher), then what the sources set themselves (a Subsonic
    server streams its own audio, and is learned from)."""
    cache_root = settings.cache_dir / "audio"
    fetching = params["fetch_audio"] or params["audio_url"]
    cache = AudioCache(cache_root) if fetching or cache_root.is_dir() else None
    fetcher: Fetcher | None = None
    if fetching and cache is not None:
        searcher = url_template_search(params["audio_url"]) if params["audio_url"] else None
        options = FetchOptions(workers=params["fetch_workers"], min_interval_s=params["fetch_interval"])
        fetcher = Fetcher(cache, searcher, options)
    base = SyncOptions(
        audio_manifest=params["audio_manifest"],
        audio_dir=params["audio_dir"],
        cache=cache,
        fetcher=fetcher,
        batch_size=int(os.environ.get("SIAMREC_SYNC_BATCH") or DEFAULT_BATCH),
    )
    return replace(base, **{key: value for part in built for key, value in part.sync_options.items()})


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


SOURCES = registered_sources()


@click.command("sync-playlists")
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
    is streamed from it), M3U/PLS files (--m3u) and folders (--folder), and those of installed packages
    (entry points `siamrec.sources`). Audio: the local files themselves, --audio-manifest, --audio-dir, or
    --fetch-audio / --audio-url (yt-dlp + ffmpeg).
    """
    built = build_all(SOURCES, params, settings)
    try:
        options = _sync_options(params, settings, built)
        with embedding_on(params["ray"], params["ray_actors"]) as (embed, actors):
            if actors:  # one Ray job per round: each job starts its actor pool, and writes back as it goes
                options = replace(options, embed=embed, batch_size=options.tracks_per_round)
            run_sync(settings, [source for part in built for source in part.sources], options, as_json,
                     "sync-playlists")  # fmt: skip
    finally:
        close_all(built)


sync_playlists.params[:0] = source_options(SOURCES)  # each registered source's own options, first in --help


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
