"""Recommendations written back to a Subsonic server, where every listening app shows them.

Each stored playlist gets a server playlist `<name> · siamrec` (the suffix is configurable) holding the top-k
songs of that server that siamrec.recommend ranks for it. The server playlist is found again by its name
among the user's own playlists, so a re-run updates it in place (no duplicates), and one the user renamed or
deleted is made anew. Playlists of other users are never listed as targets, even for an admin. A plan is
computed first and applied only when asked, which is what `--dry-run` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from siamrec.connectors.subsonic.client import SubsonicClient, parse_uri
from siamrec.connectors.subsonic.schema import PlaylistEntry
from siamrec.connectors.subsonic.source import SIAMREC_MARK
from siamrec.errors import ConnectorError
from siamrec.recommend import TrackSuggestion, recommend_tracks_where
from siamrec.store import PlaylistRecord, Store

DEFAULT_SUFFIX = " · siamrec"


@dataclass
class PublishPlan:
    """What publishing one playlist does: `create`, `update` or `unchanged`, with the songs it holds."""

    source: PlaylistRecord
    name: str
    action: str
    songs: list[TrackSuggestion] = field(default_factory=list)
    comment: str = ""
    server_playlist: str | None = None

    @property
    def song_ids(self) -> list[str]:
        return [song_id(s.track.track_uri) for s in self.songs]

    def as_dict(self) -> dict[str, Any]:
        return {
            "playlist_uri": self.source.playlist_uri,
            "source_name": self.source.name,
            "name": self.name,
            "action": self.action,
            "server_playlist_id": self.server_playlist,
            "songs": [
                {"track_uri": s.track.track_uri, "title": s.track.title, "artist": s.track.artist, "score": s.score}
                for s in self.songs
            ],
        }


def song_id(uri: str) -> str:
    parsed = parse_uri(uri)
    assert parsed is not None and parsed[1] == "track", uri
    return parsed[2]


def server_songs(
    store: Store, record: PlaylistRecord, server: str, k: int, strategy: str, include_warm: bool
) -> list[TrackSuggestion]:
    """The k best recommendations that are songs of `server` (other sources' tracks cannot go on it)."""

    def on_server(uri: str) -> bool:
        parsed = parse_uri(uri)
        return parsed is not None and parsed[:2] == (server, "track")

    return recommend_tracks_where(store, record, on_server, k, strategy, include_warm)


def comment_for(record: PlaylistRecord, strategy: str) -> str:
    return (
        f"{SIAMREC_MARK} songs of this library that sound like the playlist \u201c{record.name}\u201d "
        f"({strategy} strategy); rewritten by each `siamrec publish`"
    )


class Publisher:
    """Plans and applies the write-back of recommendations for one user of one server."""

    def __init__(
        self, store: Store, client: SubsonicClient, k: int = 20, strategy: str = "mean",
        include_warm: bool = False, suffix: str = DEFAULT_SUFFIX,
    ) -> None:  # fmt: skip
        self.store = store
        self.client = client
        self.k = k
        self.strategy = strategy
        self.include_warm = include_warm
        self.suffix = suffix
        self._own: list[PlaylistEntry] | None = None

    def own(self) -> list[PlaylistEntry]:
        if self._own is None:
            self._own = self.client.own_playlists()
        return self._own

    def plan(self, record: PlaylistRecord) -> PublishPlan:
        name = f"{record.name}{self.suffix}"
        songs = server_songs(self.store, record, self.client.server, self.k, self.strategy, self.include_warm)
        comment = comment_for(record, self.strategy)
        existing = next((p for p in self.own() if p.name == name), None)
        if existing is None:
            return PublishPlan(record, name, "create", songs, comment)
        current, entries = self.client.playlist(existing.id)
        plan = PublishPlan(record, name, "update", songs, comment, existing.id)
        if [entry.id for entry in entries] == plan.song_ids and current.comment == comment:
            plan.action = "unchanged"
        return plan

    def apply(self, plan: PublishPlan) -> None:
        """Write one plan to the server (create, or replace the songs and comment of our playlist)."""
        if plan.action == "unchanged":
            return
        if plan.action == "create":
            plan.server_playlist = self.client.create_playlist(plan.name, plan.song_ids)
            self._own = None
        else:
            assert plan.server_playlist is not None
            self.client.replace_songs(plan.server_playlist, plan.song_ids)
        self.client.set_comment(plan.server_playlist, plan.comment)

    def add_to_playlist(self, server_playlist: str, song: str) -> bool:
        """Add one song to one of the user's own playlists (False: it is there already)."""
        if not any(p.id == server_playlist for p in self.own()):
            raise ConnectorError(f"playlist {server_playlist} on {self.client.shown} is not {self.client.user}'s")
        held = {entry.id for entry in self.client.playlist(server_playlist)[1]}
        if song in held:
            return False
        self.client.call("updatePlaylist", playlistId=server_playlist, songIdToAdd=song)
        return True
