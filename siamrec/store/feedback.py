"""Feedback as it is stored: a playlist point's `accepted` and `rejected` track URIs, beside its record.

The two lists live in the playlist's payload, not in PlaylistRecord, so every writer of playlist records (syncs,
imports, the service's PUT) keeps them without knowing about them: `Store.refresh_centroids`, which writes whole
points, carries over whatever the payload holds beside the record, and only `write` here ever changes them. They
go with the playlist's point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from siamrec import constants as C
from siamrec.store.backend import Backend, Where
from siamrec.uris import point_id

ACCEPTED = "accepted"
REJECTED = "rejected"
FIELDS = (ACCEPTED, REJECTED)
PUBLISHED = "published"  # what siamrec offered for the playlist on a Subsonic server (connectors.subsonic.learn)


def _uris(value: Any) -> list[str]:
    """A stored list of URIs, sorted and unique; anything else (a damaged or foreign payload) reads as none."""
    if not isinstance(value, list):
        return []
    return sorted({item for item in value if isinstance(item, str) and item})


def lists(payload: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(accepted, rejected) of a playlist payload; a URI in both counts as rejected (it can only be in one)."""
    rejected = _uris(payload.get(REJECTED))
    accepted = sorted(set(_uris(payload.get(ACCEPTED))) - set(rejected))
    return accepted, rejected


def rejecting(backend: Backend, track_uri: str) -> list[str]:
    """The playlists whose listener rejected a track (a payload filter on `rejected`)."""
    hits = backend.scroll(C.PLAYLISTS_COLLECTION, Where(any_of={REJECTED: [track_uri]}))
    return sorted(str(hit.payload.get("playlist_uri")) for hit in hits)


def read(backend: Backend, playlist_uri: str) -> tuple[list[str], list[str]] | None:
    """(accepted, rejected) stored with a playlist; None when no such playlist is stored."""
    hits = backend.retrieve(C.PLAYLISTS_COLLECTION, [point_id(playlist_uri)])
    return lists(hits[0].payload) if hits else None


def write(backend: Backend, playlist_uri: str, accepted: Sequence[str], rejected: Sequence[str]) -> None:
    """Store a playlist's feedback (sorted, unique, disjoint: a URI in both stays rejected) in its payload."""
    accepted_list, rejected_list = lists({ACCEPTED: list(accepted), REJECTED: list(rejected)})
    backend.set_payload(
        C.PLAYLISTS_COLLECTION, [point_id(playlist_uri)], {ACCEPTED: accepted_list, REJECTED: rejected_list}
    )
