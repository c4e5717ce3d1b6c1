"""`siamrec feedback PLAYLIST`: tell siamrec which recommended tracks a playlist keeps and which it rejects."""

from __future__ import annotations

import click
from rich.table import Table

from siamrec.cli.common import Settings, json_option, plural, print_json, stdout, store_options
from siamrec.cli.subsonic import connect, server_options
from siamrec.errors import ConfigError
from siamrec.feedback import Feedback, clear_feedback, get_feedback, give_feedback
from siamrec.store import Store, TrackRecord


@click.command("feedback")
@click.argument("playlist")
@click.option("--accept", "accept", multiple=True, metavar="URI", help="A track to keep: it joins the playlist "
              "(repeatable).")  # fmt: skip
@click.option("--reject", "reject", multiple=True, metavar="URI", help="A track never to recommend to this "
              "playlist again; it steers the ranking away from tracks like it (repeatable).")  # fmt: skip
@click.option("--list", "show", is_flag=True, help="Show the playlist's accepted and rejected tracks.")
@click.option("--clear", is_flag=True, help="Forget the playlist's feedback (accepted tracks stay in it).")
@click.option("--to-subsonic", is_flag=True, help="With --accept, for a playlist synced from a Subsonic server: the "
              "songs join its copy there too (a later sync reads the playlist from the server).")  # fmt: skip
@server_options
@store_options
@json_option
def feedback(
    playlist: str,
    accept: tuple[str, ...],
    reject: tuple[str, ...],
    show: bool,
    clear: bool,
    to_subsonic: bool,
    subsonic_url: str | None,
    subsonic_user: str | None,
    settings: Settings,
    as_json: bool,
) -> None:
    """Record what a listener thought of recommendations for PLAYLIST (a name or URI).

    The latest answer about a track wins, and the same answer twice changes nothing. `siamrec recommend` and
    the HTTP service then rank with it: accepted tracks are seeds, rejected ones never come back.
    """
    modes = [bool(accept or reject), show, clear]
    if sum(modes) != 1:
        raise ConfigError("give --accept/--reject URIs, or --list, or --clear (one of them)")
    if to_subsonic and not accept:
        raise ConfigError("--to-subsonic adds accepted songs to the server's copy of the playlist: give --accept")
    client = connect(subsonic_url, subsonic_user) if to_subsonic else None
    with Store.open(settings) as store:
        store.bind_stored_model()
        record = store.find_playlist(playlist)
        uri = record.playlist_uri
        if client is not None:
            from siamrec.connectors.subsonic.publish import add_songs, server_playlist_id

            server_playlist_id(client, uri)  # before anything is stored: a playlist of elsewhere is refused
        result = give_feedback(store, uri, accept, reject) if accept or reject else None
        on_server = add_songs(client, uri, list(accept)) if client is not None else None
        if result is not None:
            current = result.feedback
        else:
            current = clear_feedback(store, uri) if clear else get_feedback(store, uri)
        records = {u: t.record for u, t in store.get_tracks([*current.accepted, *current.rejected]).items()}
    if as_json:
        document = result.as_dict() if result is not None else current.as_dict()
        print_json({**document, **({"added_on_subsonic": on_server} if on_server is not None else {})})
        return
    if clear:
        stdout.print(f"feedback of {record.name} cleared (its tracks stay as they are)")
        return
    _table(record.name, current, records)
    if result is not None and not result.changed:
        stdout.print("nothing changed: these answers were already stored")
    elif result is not None:
        added = len(result.added_to_playlist)
        stdout.print(f"stored; {plural(added, 'track')} added to the playlist" if added else "stored")
    if on_server is not None:
        stdout.print(f"{plural(len(on_server), 'song')} added to its copy on the Subsonic server")


def _table(name: str, current: Feedback, records: dict[str, TrackRecord]) -> None:
    table = Table("answer", "title", "artist", "uri", title=f"feedback for {name}")
    for answer, uris in (("accepted", current.accepted), ("rejected", current.rejected)):
        for uri in uris:
            record = records.get(uri)
            table.add_row(answer, record.title if record else "", record.artist if record else "", uri)
    stdout.print(table)
