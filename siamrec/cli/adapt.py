"""`siamrec adapt`: fit the playlist-adapted metric on the stored playlists, or switch it off."""

from __future__ import annotations

import click
from rich.table import Table

from siamrec.cli.common import Settings, console, json_option, print_json, progress, stdout, store_options
from siamrec.store import Store


@click.command("adapt")
@click.option(
    "--shrinkage",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Weight of the identity in the shrunk covariance [default: chosen by cross-validation on the "
    "playlists (Ledoit-Wolf when they are too small)].",
)
@click.option(
    "--auto/--no-auto",
    default=None,
    help="Refit by itself after each sync or playlist import/create [default: keep the stored choice; off].",
)
@click.option("--off", is_flag=True, help="Forget the adapted metric: rank with the plain vectors again.")
@store_options(model_option=False)
@json_option
def adapt(shrinkage: float | None, auto: bool | None, off: bool, settings: Settings, as_json: bool) -> None:
    """Fit a metric to the stored playlists: a within-playlist whitening of the track vectors.

    Directions along which tracks of one playlist differ get less weight, so similarity weighs what tells
    playlists apart. Every track and playlist gets an adapted vector beside its plain one; `recommend` uses
    them from then on (`--metric plain` to compare). Needs at least 3 playlists of 2 or more tracks with audio.
    """
    from siamrec.adapt import adapt_store, switch_off

    with Store.open(settings) as store:
        store.bind_stored_model()
        if off:
            removed = switch_off(store)
            summary: dict[str, object] = {"metric": "plain", "removed": removed}
        else:
            bar = progress(transient=True)  # started once the fit is done: a refusal prints one line only
            tasks: dict[str, int] = {}

            def advance(what: str, done: int, total: int) -> None:
                if not tasks:
                    bar.start()
                if what not in tasks:
                    tasks[what] = bar.add_task(f"adapting {what}", total=total)
                bar.update(tasks[what], completed=done, total=total)

            try:
                report = adapt_store(store, shrinkage, auto, advance)
            finally:
                if tasks:
                    bar.stop()
            summary = report.as_dict()
    if as_json:
        print_json(summary)
        return
    if off:
        console.print("adapted metric removed: ranking with plain vectors" if summary["removed"] else
                      "no adapted metric was stored: nothing to do")  # fmt: skip
        return
    table = Table("what", "value", title="adapted metric (within-playlist whitening)")
    keys = ("playlists", "tracks", "shrinkage", "projected", "chosen_by", "dim", "tracks_written",
            "playlists_written", "auto", "metric")  # fmt: skip
    for key in keys:
        table.add_row(key, str(summary[key]))
    stdout.print(table)
