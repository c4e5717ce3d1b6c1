"""`siamrec add-track`: audio files and folders into the store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from siamrec.cli import stderr_line
from siamrec.cli.common import (
    Settings,
    json_option,
    plural,
    print_failures,
    print_json,
    progress,
    stdout,
    store_options,
)
from siamrec.cli.ray_options import embedding_on, ray_options
from siamrec.embed import load_encoder
from siamrec.library import AddReport, AddRequest, add_paths, add_request, set_aside_unchanged
from siamrec.names import path_from_payload, quoted
from siamrec.store import Store


def _add_with_progress(
    store: Store, settings: Settings, request: AddRequest, prune: bool, ray: str | None, ray_actors: int | None
) -> AddReport:
    """library.add_paths under a progress bar; the model is loaded (and Ray joined) only when there are files."""
    if not request.items:
        return add_paths(store, None, request, prune=prune)
    encoder = load_encoder(settings.model_path, settings.device, check=False)
    set_aside_unchanged(store, encoder, request)  # the model's test run only when a file is left to embed
    if not request.to_embed:
        return add_paths(store, encoder, request, prune=prune)
    with embedding_on(ray, ray_actors) as (add, actors), progress() as bar:
        label = f"embedding on Ray ({plural(actors, 'actor')})" if actors else "embedding"
        task = bar.add_task(label, total=len(request.to_embed))
        return add_paths(store, encoder, request, lambda n: bar.advance(task, n), prune, add)


def _print_vanished(report: AddReport, prune: bool) -> None:
    """One line per stored file that is gone from the folders given: which ones, not only how many."""
    for path in report.vanished:
        shown = quoted(path_from_payload(path))
        stderr_line(f"removed: {shown}: the file is gone, so is its track" if prune else
                    f"vanished: {shown}: the file is gone; --prune removes its track")  # fmt: skip


@click.command("add-track")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--uri", help="Track URI for a single file (default local:track:<sha1 of audio>).")
@click.option("--title", help="Title for a single file (default: from tags).")
@click.option("--artist", help="Artist for a single file (default: from tags).")
@click.option("--album", help="Album for a single file (default: from tags).")
@click.option("--prune", is_flag=True, help="Remove stored tracks whose file under the folders given is gone.")
@ray_options
@store_options
@json_option
def add_track(
    paths: tuple[Path, ...],
    uri: str | None,
    title: str | None,
    artist: str | None,
    album: str | None,
    prune: bool,
    ray: str | None,
    ray_actors: int | None,
    settings: Settings,
    as_json: bool,
) -> None:
    """Add audio files or folders (recursive) to the store: decode, embed, upsert."""
    request = add_request(paths, {"track_uri": uri, "title": title, "artist": artist, "album": album})
    with Store.open(settings) as store:
        report = _add_with_progress(store, settings, request, prune, ray, ray_actors)
        total = store.count_tracks() if store.stored_model() else 0
    if as_json:
        print_json({**report.as_dict(), "tracks_in_store": total})
    else:
        print_failures(report.failed)
        _print_vanished(report, prune)
        gone = f"removed {len(report.removed)}" if prune else f"vanished {len(report.vanished)} (--prune removes them)"
        stdout.print(
            f"added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
            f"{gone}, failed {len(report.failed)}; {plural(total, 'track')} in the store"
        )
    if report.failed or not request.items:
        sys.exit(1)
