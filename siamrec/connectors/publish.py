"""Recommendations written back where a listener plays them: one path for every destination.

A destination (a Subsonic server: subsonic.publish; a Spotify account: spotify_publish) is a publisher that
plans one stored playlist's write-back (`<name> · siamrec`, created or found again and updated, never
duplicated) and applies a plan. `siamrec publish` and the `recommend --to-*` shortcuts both come here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from siamrec.errors import NotFoundError

if TYPE_CHECKING:  # kept light: `publish --help` reads DESTINATIONS from here
    from siamrec.connectors.subsonic.client import SubsonicClient
    from siamrec.connectors.sync import Learned
    from siamrec.recommend import TrackSuggestion
    from siamrec.store import PlaylistRecord, Store

DEFAULT_SUFFIX = " · siamrec"  # appended to a playlist's name: how siamrec finds its own playlists again
DESTINATIONS = ("subsonic", "spotify")


@dataclass
class PublishPlan:
    """What publishing one playlist does (`create`, `update`, `unchanged`) and the songs it holds; each
    destination's plan adds where it writes."""

    source: PlaylistRecord
    name: str
    action: str
    songs: list[TrackSuggestion] = field(default_factory=list)
    learned: Learned | None = None  # what the listener did to the published copy since the last look

    def as_dict(self) -> dict[str, Any]:
        return {
            "playlist_uri": self.source.playlist_uri,
            "source_name": self.source.name,
            "name": self.name,
            "action": self.action,
            "songs": [
                {"track_uri": s.track.track_uri, "title": s.track.title, "artist": s.track.artist, "score": s.score}
                for s in self.songs
            ],
        }


class Publisher(Protocol):
    """One destination: plans a stored playlist's write-back, and applies a plan."""

    def plan(self, record: PlaylistRecord) -> PublishPlan: ...

    def apply(self, plan: Any) -> None: ...


@dataclass
class Published:
    """What a publish did (or, in a dry run, would do): the plans, and the playlists skipped with the reason."""

    plans: list[PublishPlan] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def publish_playlists(publisher: Publisher, records: Iterable[PlaylistRecord], dry_run: bool = False) -> Published:
    """Plan (and unless `dry_run`, apply) each playlist; one that cannot be published (no audio yet) is listed,
    not fatal, so the others are still written."""
    published = Published()
    for record in records:
        try:
            plan = publisher.plan(record)
        except NotFoundError as exc:
            published.skipped.append({"playlist": record.name, "reason": str(exc)})
            continue
        if not dry_run:
            publisher.apply(plan)
        published.plans.append(plan)
    return published


def publish_one(publisher: Publisher, record: PlaylistRecord) -> PublishPlan:
    """Write one playlist's recommendations back (the `recommend --to-*` shortcuts): its applied plan."""
    published = publish_playlists(publisher, [record])
    if published.skipped:
        raise NotFoundError(published.skipped[0]["reason"])
    return published.plans[0]


def publisher_for(
    to: str, store: Store, k: int = 20, strategy: str = "mean", include_warm: bool = False,
    suffix: str = DEFAULT_SUFFIX, client: SubsonicClient | None = None, token_dir: Path | None = None,
    learn: bool = True,
) -> Publisher:  # fmt: skip
    """The publisher of destination `to`: the server of a Subsonic `client` (learning first what the listener
    did to its published copies, unless `learn` is off), or the Spotify account whose token is in `token_dir`."""
    if to == "spotify":
        from siamrec.connectors.spotify_publish import SpotifyPublisher

        if token_dir is None:
            raise ValueError("publishing to Spotify needs the folder of the user's token")
        return SpotifyPublisher(store, token_dir, k, strategy, include_warm, suffix)
    from siamrec.connectors.subsonic.publish import SubsonicPublisher

    if client is None:
        raise ValueError("publishing to a Subsonic server needs a client")
    return SubsonicPublisher(store, client, k, strategy, include_warm, suffix, learn=learn)
