"""`siamrec publish`: recommendations written back as `<playlist> · siamrec` playlists, to a Subsonic server or
to Spotify: the one write-back path (`recommend --to-*` are shortcuts for it)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from siamrec.cli.common import Settings, console, json_option, print_json, stdout, store_options
from siamrec.cli.subsonic import connect, server_options
from siamrec.connectors.publish import DESTINATIONS

if TYPE_CHECKING:
    from siamrec.connectors.publish import PublishPlan
    from siamrec.store import PlaylistRecord, Store


PLAYLIST_WIDTH = 30  # "<name> · siamrec": a long name is cut, so the songs keep a readable share of 80 columns
COLUMN = {"subsonic": "server playlist", "spotify": "Spotify playlist"}


def log_in(to: str, settings: Settings, subsonic_url: str | None, subsonic_user: str | None) -> Any:
    """Reach the destination before the store is opened and locked: the Subsonic client, or None for Spotify
    once its token (with the write scope) is cached."""
    if to == "spotify":
        from siamrec.cli.spotify import login

        login(settings.home, write=True)
        return None
    return connect(subsonic_url, subsonic_user)


def print_plans(
    plans: list[PublishPlan], skipped: list[dict[str, str]], dry_run: bool, as_json: bool, to: str = "subsonic"
) -> None:
    if as_json:
        print_json({"to": to, "dry_run": dry_run, "playlists": [p.as_dict() for p in plans], "skipped": skipped})
        return
    from rich.table import Table

    for item in skipped:
        console.print(f"skipped {item['playlist']}: {item['reason']}", markup=False, highlight=False)
    learned = [plan.learned for plan in plans if plan.learned and (plan.learned.accepted or plan.learned.rejected)]
    if learned:
        from siamrec.connectors.sync import learned_line

        stdout.print(f"learned from the player: {learned_line(learned)}", markup=False, highlight=False)
    verb = "would " if dry_run else ""
    # One line per playlist, cut with … where it does not fit (--json has everything): a wrapped name or song
    # list would spread one playlist over lines that read as several.
    table = Table(title=f"publish{' (dry run)' if dry_run else ''}")
    action_width, songs_width = len("would create"), len("songs")
    free = stdout.width - action_width - songs_width - 13  # 5 rules and 8 paddings; rich shrinks no no_wrap column
    name_width = max(8, min(PLAYLIST_WIDTH, free // 2))
    table.add_column(COLUMN[to], no_wrap=True, overflow="ellipsis", max_width=name_width)
    table.add_column("action", no_wrap=True, min_width=action_width)
    table.add_column("songs", justify="right", no_wrap=True, min_width=songs_width)
    table.add_column("first songs", no_wrap=True, overflow="ellipsis", max_width=max(8, free - name_width))
    for plan in plans:
        first = ", ".join(f"{s.track.artist} - {s.track.title}".strip(" -") for s in plan.songs[:3])
        table.add_row(plan.name, f"{verb}{plan.action}", str(len(plan.songs)), first)
    stdout.print(table)


def chosen_playlists(store: Store, names: tuple[str, ...], largest: int | None) -> list[PlaylistRecord]:
    """The named playlists, else the `largest` biggest, else all (siamrec's own are never in the store)."""
    if names:
        return [store.find_playlist(name) for name in names]
    records = sorted(store.iter_playlists(), key=lambda p: (-len(p.track_uris), p.name))
    return records[:largest] if largest else records


@click.command("publish")
@click.option(
    "--to",
    type=click.Choice(DESTINATIONS),
    default="subsonic",
    show_default=True,
    help="Where to write: the Subsonic server of --subsonic/--subsonic-user, or your Spotify account (OAuth; "
    "only the recommended tracks that are Spotify tracks).",
)
@server_options
@click.option("--playlist", "names", multiple=True, help="Only this stored playlist, by name or URI (repeatable).")
@click.option("--largest", type=click.IntRange(1), help="Only the N largest stored playlists.")
@click.option(
    "-k", "--top", "k", default=20, show_default=True, type=click.IntRange(1, 1000), help="Songs per playlist."
)
@click.option("--strategy", type=click.Choice(["mean", "best-score"]), default="mean", show_default=True)
@click.option("--include-warm", is_flag=True, help="Also songs already in other playlists.")
@click.option("--suffix", default=" · siamrec", show_default=True, help="Appended to a playlist's name there.")
@click.option("--dry-run", is_flag=True, help="Print what would change there and change nothing.")
@store_options
@json_option
def publish(
    settings: Settings, as_json: bool, to: str, subsonic_url: str | None, subsonic_user: str | None,
    names: tuple[str, ...], largest: int | None, k: int, strategy: str, include_warm: bool, suffix: str,
    dry_run: bool,
) -> None:  # fmt: skip
    """Write each playlist's top-k recommended songs back as a playlist, to a Subsonic server or to Spotify.

    The playlist `<name> · siamrec` is created, or updated in place on the next run (a renamed or deleted one
    is made anew); other users' playlists are never touched. Only songs of the destination go on it: sync the
    server first (`siamrec sync-playlists --subsonic URL --subsonic-user NAME --subsonic-library`), or sync
    Spotify playlists whose tracks have audio (`--to spotify` logs in with the write scope the first time).
    """
    from siamrec.connectors.publish import publish_playlists, publisher_for
    from siamrec.store import Store

    if not suffix.strip():
        raise click.BadParameter("the suffix must not be empty: it is how siamrec finds its playlists again")
    client = log_in(to, settings, subsonic_url, subsonic_user)
    with Store.open(settings) as store:
        store.bind_stored_model()
        publisher = publisher_for(to, store, k, strategy, include_warm, suffix, client=client,
                                  token_dir=settings.home, learn=not dry_run)  # fmt: skip
        published = publish_playlists(publisher, chosen_playlists(store, names, largest), dry_run)
    print_plans(published.plans, published.skipped, dry_run, as_json, to)
    if published.skipped:
        sys.exit(1)
