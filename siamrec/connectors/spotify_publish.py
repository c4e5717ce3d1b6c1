"""Recommendations written back to the user's Spotify account as private `<name> · siamrec` playlists.

Each stored playlist gets the top-k recommended tracks that are Spotify tracks (others cannot go on it), in a
private playlist whose description starts with siamrec's mark. The playlist is found again by its name among
the playlists the user owns, so a re-run replaces its tracks (no duplicates) and a renamed or deleted one is
made anew; nobody else's playlist is ever written, and a sync of the user's playlists leaves siamrec's out.
Needs the user's OAuth token with `playlist-modify-private` (log in first: cli.spotify.login).
connectors.publish runs the plans, as for a Subsonic server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siamrec.connectors.base import object_field, text_field
from siamrec.connectors.publish import DEFAULT_SUFFIX, PublishPlan
from siamrec.connectors.spotify import (
    ID_PATTERN,
    PLAYLISTS_PAGE,
    WRITE_MARK,
    WRITE_SCOPE,
    SpotifyCaller,
    make_client,
    page_items,
    pages,
)
from siamrec.errors import ConnectorError
from siamrec.recommend import recommend_tracks_where
from siamrec.store import PlaylistRecord, Store

REPLACE_MAX = 100  # tracks per replace request, the API's maximum


@dataclass
class SpotifyPlan(PublishPlan):
    """A plan for Spotify (`create` or `update`): the description that marks the playlist, its id once it exists.
    Spotify edits are not read back, so `learned` stays None."""

    description: str = ""
    spotify_playlist: str | None = None

    @property
    def track_uris(self) -> list[str]:
        return [s.track.track_uri for s in self.songs][:REPLACE_MAX]

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "spotify_playlist_id": self.spotify_playlist, "track_uris": self.track_uris}


def is_spotify_track(uri: str) -> bool:
    return uri.startswith("spotify:track:")


def description_for(record: PlaylistRecord, strategy: str) -> str:
    return (
        f"{WRITE_MARK} tracks that sound like the playlist \u201c{record.name}\u201d ({strategy} strategy); "
        "rewritten by each `siamrec publish --to spotify`"
    )


class SpotifyPublisher:
    """Plans and applies the write-back of recommendations to the signed-in user's account."""

    def __init__(
        self, store: Store, token_dir: Path, k: int = 20, strategy: str = "mean", include_warm: bool = False,
        suffix: str = DEFAULT_SUFFIX, caller: SpotifyCaller | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.client = make_client(True, token_dir, scope=WRITE_SCOPE)
        self.call = caller or SpotifyCaller()
        self.k = k
        self.strategy = strategy
        self.include_warm = include_warm
        self.suffix = suffix
        self._own: dict[str, str] | None = None

    def own(self) -> dict[str, str]:
        """{name: id} of the playlists the user owns (read once; a followed playlist is never a target)."""
        if self._own is None:
            me = text_field(object_field(self.call("your account", self.client.current_user)).get("id"))
            if not me:
                raise ConnectorError("Spotify answered your account without an id")
            self._own = {}
            for item in self._listed():
                if object_field(item.get("owner")).get("id") == me and ID_PATTERN.match(text_field(item.get("id"))):
                    self._own.setdefault(text_field(item.get("name")), item["id"])
        return self._own

    def _listed(self) -> Iterator[dict[str, Any]]:
        first = self.call("your playlists", self.client.current_user_playlists, limit=PLAYLISTS_PAGE)
        for page in pages(self.call, "your playlists", self.client, first):
            yield from page_items(page)

    def plan(self, record: PlaylistRecord) -> SpotifyPlan:
        songs = recommend_tracks_where(self.store, record, is_spotify_track, self.k, self.strategy, self.include_warm)
        name = f"{record.name}{self.suffix}"
        existing = self.own().get(name)
        action = "create" if existing is None else "update"
        return SpotifyPlan(record, name, action, songs, None, description_for(record, self.strategy), existing)

    def apply(self, plan: SpotifyPlan) -> None:
        """Create the playlist, or set the description of ours; then replace its tracks with the plan's."""
        if plan.spotify_playlist is None:
            created = self.call("a new playlist", self.client.current_user_playlist_create, plan.name, public=False,
                                description=plan.description)  # fmt: skip
            playlist = text_field(object_field(created).get("id"))
            if not ID_PATTERN.match(playlist):
                raise ConnectorError("Spotify answered the new playlist without a playlist id")
            plan.spotify_playlist = playlist
            self.own()[plan.name] = playlist
        else:
            what = f"playlist {plan.spotify_playlist}"
            self.call(what, self.client.playlist_change_details, plan.spotify_playlist, description=plan.description)
        what = f"playlist {plan.spotify_playlist}"
        self.call(what, self.client.playlist_replace_items, plan.spotify_playlist, plan.track_uris)
