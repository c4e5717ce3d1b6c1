"""What a listener did with recommendations: per playlist, the tracks they accepted and those they rejected.

One API for the CLI (`siamrec feedback`), the HTTP service (`/playlists/{uri}/feedback`) and the Subsonic sync.
Answers are idempotent and the latest answer about a track wins. An accepted track joins the playlist (its
track list and centroid, through `Store.save_playlist`); a rejected one leaves it only when it was there because
it had been accepted. Ranking reads the same record (siamrec.recommend): rejected tracks are never recommended to
that playlist again and pull its query away from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from siamrec.errors import ConfigError, NotFoundError
from siamrec.store import PlaylistRecord, Store
from siamrec.store import feedback as stored

MAX_NAMED = 3  # unknown URIs named in an error line; the rest are counted


@dataclass(frozen=True)
class Feedback:
    """A playlist's feedback: sorted, unique, disjoint lists of track URIs."""

    playlist_uri: str
    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The document `siamrec feedback --json` prints and `GET /playlists/{uri}/feedback` returns."""
        return {"playlist_uri": self.playlist_uri, "accepted": list(self.accepted), "rejected": list(self.rejected)}


@dataclass(frozen=True)
class FeedbackResult:
    """The feedback after an answer, the tracks the answer added to the playlist, and whether anything changed."""

    feedback: Feedback
    added_to_playlist: list[str]
    changed: bool

    def as_dict(self) -> dict[str, Any]:
        """The document an answer gets, from the CLI (--json) and from `POST /playlists/{uri}/feedback` alike."""
        return {**self.feedback.as_dict(), "added_to_playlist": list(self.added_to_playlist), "changed": self.changed}


def _playlist(store: Store, playlist_uri: str) -> PlaylistRecord:
    found = store.get_playlist(playlist_uri)
    if found is None:
        raise NotFoundError(f"no playlist {playlist_uri!r} in the store")
    return found


def get_feedback(store: Store, playlist_uri: str) -> Feedback:
    """The feedback stored with a playlist (empty lists when there is none); an unknown playlist is an error."""
    found = stored.read(store.backend, playlist_uri)
    if found is None:
        raise NotFoundError(f"no playlist {playlist_uri!r} in the store")
    return Feedback(playlist_uri, *found)


def _check_tracks(store: Store, accept: Sequence[str], reject: Sequence[str]) -> None:
    """Every URI must be a stored track, and none both accepted and rejected in one answer (which would win?)."""
    both = sorted(set(accept) & set(reject))
    if both:
        raise ConfigError(f"{_named(both)} both accepted and rejected: answer once per track")
    wanted = set(accept) | set(reject)
    unknown = sorted(wanted - set(store.get_tracks(wanted)))
    if unknown:
        raise NotFoundError(f"no track {_named(unknown)} in the store")


def _named(uris: list[str]) -> str:
    shown = ", ".join(repr(uri) for uri in uris[:MAX_NAMED])
    return shown + (f" (and {len(uris) - MAX_NAMED} more)" if len(uris) > MAX_NAMED else "")


def give_feedback(
    store: Store, playlist_uri: str, accept: Sequence[str] = (), reject: Sequence[str] = ()
) -> FeedbackResult:
    """Record accepted and rejected tracks for a playlist (checked whole before anything is written)."""
    playlist = _playlist(store, playlist_uri)
    accept, reject = list(dict.fromkeys(accept)), list(dict.fromkeys(reject))
    _check_tracks(store, accept, reject)
    before = get_feedback(store, playlist_uri)
    accepted = sorted((set(before.accepted) - set(reject)) | set(accept))
    rejected = sorted((set(before.rejected) - set(accept)) | set(reject))
    members = set(playlist.track_uris)
    added = [uri for uri in accept if uri not in members]
    # a rejected track leaves the playlist only when an earlier accept put it there, never a source's own track
    dropped = {uri for uri in reject if uri in members and uri in before.accepted}
    after = Feedback(playlist_uri, accepted, rejected)
    changed = after != before or bool(added or dropped)
    if after != before:
        stored.write(store.backend, playlist_uri, accepted, rejected)
    if added or dropped:
        track_uris = [uri for uri in playlist.track_uris if uri not in dropped] + added
        store.save_playlist(replace(playlist, track_uris=track_uris))
    return FeedbackResult(after, added, changed)


def clear_feedback(store: Store, playlist_uri: str) -> Feedback:
    """Forget a playlist's feedback; the tracks accepted before stay in it. Returns the (empty) feedback."""
    before = get_feedback(store, playlist_uri)
    if before.accepted or before.rejected:
        stored.write(store.backend, playlist_uri, [], [])
    return Feedback(playlist_uri)
