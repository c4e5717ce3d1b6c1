"""Recommendations written back to a Subsonic server, where every listening app shows them.

Each stored playlist gets a server playlist `<name> · siamrec` (the suffix is configurable) holding the top-k
songs of that server that siamrec.recommend ranks for it (connectors.publish runs the plans). The server
playlist is found again by its name among the user's own playlists, so a re-run updates it in place (no
duplicates), and one the user renamed or deleted is made anew. Playlists of other users are never listed as
targets, even for an admin. A plan is computed first and applied only when asked, which is what `--dry-run`
prints. Before a playlist is planned, what the listener did to its published copy since the last look is learned
(subsonic.learn), so a rewrite never overwrites an answer; once applied, what it offers is recorded for the next
look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siamrec.connectors.publish import DEFAULT_SUFFIX, PublishPlan
from siamrec.connectors.subsonic.client import SubsonicClient, parse_uri, playlist_uri, track_uri
from siamrec.connectors.subsonic.learn import PlayerLearner, record_published
from siamrec.connectors.subsonic.schema import PlaylistEntry
from siamrec.connectors.subsonic.source import SIAMREC_MARK
from siamrec.errors import ConfigError, ConnectorError
from siamrec.recommend import TrackSuggestion, recommend_tracks_where
from siamrec.store import PlaylistRecord, Store


@dataclass
class SubsonicPlan(PublishPlan):
    """A plan for the server: the comment that marks the playlist, and its id there once it exists."""

    comment: str = ""
    server_playlist: str | None = None

    @property
    def song_ids(self) -> list[str]:
        return [song_id(s.track.track_uri) for s in self.songs]

    def as_dict(self) -> dict[str, Any]:
        learned = {"accepted": self.learned.accepted, "rejected": self.learned.rejected} if self.learned else None
        return {**super().as_dict(), "server_playlist_id": self.server_playlist, "learned": learned}


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


class SubsonicPublisher:
    """Plans and applies the write-back of recommendations for one user of one server."""

    def __init__(
        self, store: Store, client: SubsonicClient, k: int = 20, strategy: str = "mean",
        include_warm: bool = False, suffix: str = DEFAULT_SUFFIX, learn: bool = True,
    ) -> None:  # fmt: skip
        self.store = store
        self.client = client
        self.k = k
        self.strategy = strategy
        self.include_warm = include_warm
        self.suffix = suffix
        self.learner = PlayerLearner(store, client) if learn else None  # a dry run writes nothing, feedback included
        self._own: list[PlaylistEntry] | None = None

    def own(self) -> list[PlaylistEntry]:
        if self._own is None:
            self._own = self.client.own_playlists()
        return self._own

    def plan(self, record: PlaylistRecord) -> SubsonicPlan:
        learned = self.learner.learn(record) if self.learner is not None else None
        if learned is not None and (learned.accepted or learned.rejected):  # its tracks may have changed
            record = self.store.find_playlist(record.playlist_uri)
        name = f"{record.name}{self.suffix}"
        songs = server_songs(self.store, record, self.client.server, self.k, self.strategy, self.include_warm)
        comment = comment_for(record, self.strategy)
        existing = next((p for p in self.own() if p.name == name), None)
        if existing is None:
            return SubsonicPlan(record, name, "create", songs, learned, comment)
        current, entries = self.client.playlist(existing.id)
        plan = SubsonicPlan(record, name, "update", songs, learned, comment, existing.id)
        if [entry.id for entry in entries] == plan.song_ids and current.comment == comment:
            plan.action = "unchanged"
        return plan

    def apply(self, plan: SubsonicPlan) -> None:
        """Write one plan to the server (create, or replace the songs and comment of our playlist), then record
        what it offers, so the next sync or publish can tell what the listener removed."""
        if plan.action == "create":
            plan.server_playlist = self.client.create_playlist(plan.name, plan.song_ids)
            self._own = None
        elif plan.action == "update":
            assert plan.server_playlist is not None
            self.client.replace_songs(plan.server_playlist, plan.song_ids)
        if plan.action != "unchanged":
            self.client.set_comment(plan.server_playlist, plan.comment)
        assert plan.server_playlist is not None
        offered = [s.track.track_uri for s in plan.songs]
        record_published(self.store, plan.source.playlist_uri, playlist_uri(self.client.server, plan.server_playlist),
                         offered)  # fmt: skip

    def add_to_playlist(self, server_playlist: str, song: str) -> bool:
        """Add one song to one of the user's own playlists (False: it is there already)."""
        server = self.client.server
        return bool(add_songs(self.client, playlist_uri(server, server_playlist), [track_uri(server, song)]))


def add_songs(client: SubsonicClient, playlist: str, track_uris: list[str]) -> list[str]:
    """Add songs of this server to a playlist of the user's own on it (updatePlaylist songIdToAdd); the URIs added.

    For accepted tracks whose playlist came from this server, so its copy there holds them too (a later sync
    reads the playlist from the server: a song only in the store's copy would leave it again). Songs it holds
    already, and tracks of other sources (they cannot go on it), are left out.
    """
    server_playlist = server_playlist_id(client, playlist)
    if not any(p.id == server_playlist for p in client.own_playlists()):
        raise ConnectorError(f"playlist {server_playlist} on {client.shown} is not {client.user}'s")
    held = {entry.id for entry in client.playlist(server_playlist)[1]}
    songs = [parse_uri(uri) for uri in track_uris]
    new = list(dict.fromkeys(s[2] for s in songs if s and s[:2] == (client.server, "track") and s[2] not in held))
    if new:
        client.call("updatePlaylist", playlistId=server_playlist, songIdToAdd=new)
    return [track_uri(client.server, song) for song in new]


def server_playlist_id(client: SubsonicClient, playlist: str) -> str:
    """The id on this server of a stored playlist that came from it; any other playlist is a ConfigError."""
    target = parse_uri(playlist)
    if target is None or target[:2] != (client.server, "playlist"):
        raise ConfigError(f"playlist {playlist!r} did not come from {client.shown}: its songs cannot be added there")
    return target[2]
