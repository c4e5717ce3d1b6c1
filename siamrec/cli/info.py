"""`siamrec info`: what the store holds and which model made it."""

from __future__ import annotations

import click
from rich.table import Table

from siamrec.cli.common import (
    Settings,
    json_option,
    print_json,
    stdout,
    store_options,
)
from siamrec.store import Store, embedded_path, store_exists


@click.command("info")
@store_options
@json_option
def info(settings: Settings, as_json: bool) -> None:
    """What the store holds and which model it was made with."""
    location, model, tracks, cold, playlists, adaptation = str(embedded_path(settings)), None, 0, 0, 0, None
    if store_exists(settings):  # a new home stays as it is: nothing to show, nothing to create
        with Store.open(settings) as store:
            location = store.location
            model = store.stored_model()
            if model:
                store.bind_model(*model, create=False)
                tracks = store.count_tracks()
                cold = store.count_tracks(cold_only=True)
                playlists = store.count_playlists()
                adaptation = store.adaptation_summary()  # the map's arrays stay unread
    summary = {
        "store": location,
        "model": model[0] if model else None,
        "dim": model[1] if model else None,
        "tracks": tracks,
        "cold_tracks": cold,
        "playlists": playlists,
        "metric": "adapted" if adaptation is not None and adaptation["ready"] else "plain",
        "adaptation": adaptation,
    }
    if as_json:
        print_json(summary)
        return
    table = Table("what", "value", title="siamrec store")
    for key, value in summary.items():
        if key == "adaptation" and isinstance(value, dict):
            value = f"{value['playlists']} playlists, {value['tracks']} tracks, fitted {value['fitted_at']}"
        table.add_row(key, str(value))
    stdout.print(table)
