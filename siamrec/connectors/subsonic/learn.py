"""Learning from the player: what a listener did to a playlist siamrec published on a Subsonic server, as feedback.

`siamrec publish` (and `recommend --to-subsonic`) keeps, in the source playlist's payload (`published`), which
server playlist it wrote and which songs it offered there. The record lives in the store rather than in a file
under the home so that it goes where the playlist goes: deleted with it, in backups and migrations, on a Qdrant
server shared by several machines; whole-point rewrites of the playlist (a re-sync) carry it over as they carry
the feedback itself (siamrec.store.feedback).

A later `sync-playlists --subsonic` or `publish` compares the record with the server: an offered song the listener
removed from the published playlist is a rejection; an offered song that is now in the source playlist on the
server (moved or copied there) is an accept. Both go through siamrec.feedback.give_feedback, and the record is then
brought to the server's state, so each edit is learned once and a second run learns nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from siamrec import constants as C
from siamrec.connectors.subsonic.client import SongUnavailable, SubsonicClient, parse_uri, track_uri
from siamrec.connectors.sync import Learned
from siamrec.feedback import give_feedback
from siamrec.store import PlaylistRecord, Store, playlist_from_payload
from siamrec.store.backend import Where
from siamrec.store.feedback import PUBLISHED  # [{server, playlist_uri, track_uris}], kept by whole-point rewrites
from siamrec.uris import point_id


@dataclass(frozen=True)
class Published:
    """One server playlist siamrec wrote for a source playlist, and the songs (track URIs) it offered there."""

    playlist_uri: str
    track_uris: tuple[str, ...]

    @property
    def server(self) -> str:
        parsed = parse_uri(self.playlist_uri)
        return parsed[0] if parsed else ""

    @property
    def server_playlist(self) -> str:
        parsed = parse_uri(self.playlist_uri)
        return parsed[2] if parsed else ""

    def as_payload(self) -> dict[str, Any]:
        return {"server": self.server, "playlist_uri": self.playlist_uri, "track_uris": list(self.track_uris)}


def published_in(payload: dict[str, Any]) -> list[Published]:
    """The records of a playlist payload; items of another shape (a damaged or foreign payload) are left out."""
    found: list[Published] = []
    items = payload.get(PUBLISHED)
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        uri, tracks = item.get("playlist_uri"), item.get("track_uris")
        parsed = parse_uri(uri) if isinstance(uri, str) else None
        if parsed is None or parsed[1] != "playlist" or not isinstance(tracks, list):
            continue
        found.append(Published(str(uri), tuple(dict.fromkeys(t for t in tracks if isinstance(t, str)))))
    return found


def _write(store: Store, playlist_uri: str, records: Iterable[Published]) -> None:
    payload = [record.as_payload() for record in records]
    store.backend.set_payload(C.PLAYLISTS_COLLECTION, [point_id(playlist_uri)], {PUBLISHED: payload})


def _stored(store: Store, playlist_uri: str) -> list[Published]:
    hits = store.backend.retrieve(C.PLAYLISTS_COLLECTION, [point_id(playlist_uri)])
    return published_in(hits[0].payload) if hits else []


def record_published(store: Store, source_uri: str, server_playlist_uri: str, track_uris: Iterable[str]) -> None:
    """Remember what one server playlist now offers for `source_uri` (replacing what it offered before)."""
    stored = _stored(store, source_uri)
    offered = Published(server_playlist_uri, tuple(dict.fromkeys(track_uris)))
    if offered not in stored:  # a publish that changed nothing writes nothing
        _write(store, source_uri, [*(r for r in stored if r.playlist_uri != server_playlist_uri), offered])


class PlayerLearner:
    """Reads back one user's edits of siamrec's playlists on one server and stores them as feedback."""

    def __init__(self, store: Store, client: SubsonicClient) -> None:
        self.store = store
        self.client = client

    def learn_all(self) -> list[Learned]:
        """Every stored playlist published on this server (whichever source it came from), in name order."""
        where = Where(any_of={f"{PUBLISHED}[].server": [self.client.server]})
        found = [(playlist_from_payload(hit.payload), published_in(hit.payload))
                 for hit in self.store.backend.scroll(C.PLAYLISTS_COLLECTION, where)]  # fmt: skip
        learned = [self._learn(record, records) for record, records in sorted(found, key=lambda f: f[0].name)]
        return [item for item in learned if item is not None and (item.accepted or item.rejected)]

    def learn(self, record: PlaylistRecord) -> Learned | None:
        """What was learned for one playlist (None: it was never published on this server)."""
        return self._learn(record, _stored(self.store, record.playlist_uri))

    def _source_songs(self, record: PlaylistRecord) -> set[str] | None:
        """The source playlist's songs as they are now: on the server when it came from there, else as stored.

        None when its server copy cannot be read (deleted there): a song removed from the published playlist
        could then have been moved, so nothing is learned from it.
        """
        parsed = parse_uri(record.playlist_uri)
        if parsed is None or parsed[:2] != (self.client.server, "playlist"):
            return set(record.track_uris)
        try:
            songs = self.client.playlist(parsed[2])[1]
        except SongUnavailable:
            return None
        return {track_uri(self.client.server, song.id) for song in songs}

    def _learn(self, record: PlaylistRecord, records: list[Published]) -> Learned | None:
        ours = [r for r in records if r.server == self.client.server]
        if not ours:
            return None
        source = self._source_songs(record)
        if source is None:
            return Learned(record.playlist_uri, record.name, [], [])
        kept = [r for r in records if r.server != self.client.server]
        accepted: set[str] = set()
        rejected: set[str] = set()
        for published in ours:
            try:
                songs = self.client.playlist(published.server_playlist)[1]
            except SongUnavailable:  # the listener deleted the whole playlist: no song-by-song answer, forget it
                continue
            offered = {track_uri(self.client.server, song.id) for song in songs}
            accepted.update(uri for uri in published.track_uris if uri in source)
            rejected.update(uri for uri in published.track_uris if uri not in offered and uri not in source)
            still = tuple(uri for uri in published.track_uris if uri in offered and uri not in source)
            kept.append(Published(published.playlist_uri, still))
        known = set(self.store.get_tracks(accepted | rejected))  # a track deleted from the store since: nothing to say
        learned = Learned(record.playlist_uri, record.name, sorted(accepted & known), sorted(rejected & known))
        if learned.accepted or learned.rejected:
            give_feedback(self.store, record.playlist_uri, accept=learned.accepted, reject=learned.rejected)
        if kept != records:  # after the feedback: a run killed in between learns it again (feedback is idempotent)
            _write(self.store, record.playlist_uri, kept)
        return learned
