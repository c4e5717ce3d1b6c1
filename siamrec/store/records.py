"""The store's records in the project's own words (tracks, playlists, scored results) and their payloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from siamrec.store.backend import IndexKind

TRACK_KEYWORD_FIELDS = ("track_uri", "playlists", "audio_sha1", "audio_id", "source", "path")
PLAYLIST_KEYWORD_FIELDS = ("playlist_uri", "name_key")
# the rank pages list playlists by (siamrec.store.by_name), and the words of their names that a search finds
PLAYLIST_INDEXES: dict[str, IndexKind] = {"name_rank": "integer", "name": "text"}
RANK_BYTES = 6  # a name's first 6 UTF-8 bytes: a number the engine orders by exactly (it compares as float64)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class TrackRecord:
    """A track's payload (the DESIGN.md schema plus the file facts that let re-adds skip unchanged files)."""

    track_uri: str
    title: str = ""
    artist: str = ""
    album: str = ""
    duration_s: float | None = None
    source: str = "local"
    audio_sha1: str | None = None  # the file's bytes: tells a changed file from the stored one
    audio_id: str | None = None  # the decoded audio (siamrec.audio.audio_identity): survives re-tagging
    audio_version: str = ""  # the source's stamp of the audio the vector came from (empty: the source has none)
    path: str | None = None
    added_at: str = field(default_factory=now_iso)
    playlists: list[str] = field(default_factory=list)
    size: int | None = None  # file size in bytes when it was embedded
    mtime: float | None = None  # file modification time (s) when it was embedded


@dataclass
class PlaylistRecord:
    """A playlist's payload; its point's vector is the centroid of its tracks' vectors."""

    playlist_uri: str
    name: str
    source: str = "local"
    track_uris: list[str] = field(default_factory=list)
    followers: int | None = None
    description: str = ""


@dataclass(frozen=True)
class StoredTrack:
    record: TrackRecord
    vector: np.ndarray | None


@dataclass(frozen=True)
class ScoredTrack:
    """A track found by a query: its record, its model vector and its similarity score."""

    record: TrackRecord
    vector: np.ndarray
    score: float


@dataclass(frozen=True)
class ScoredPlaylist:
    record: PlaylistRecord
    vector: np.ndarray
    score: float


def _known(cls: type, payload: dict[str, Any]) -> dict[str, Any]:
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    return {key: value for key, value in payload.items() if key in fields}


def track_from_payload(payload: dict[str, Any]) -> TrackRecord:
    return TrackRecord(**_known(TrackRecord, payload))


def playlist_from_payload(payload: dict[str, Any]) -> PlaylistRecord:
    return PlaylistRecord(**_known(PlaylistRecord, payload))


def record_payload(record: TrackRecord | PlaylistRecord) -> dict[str, Any]:
    """A record as a payload: a shallow copy (dataclasses.asdict deep-copies, a third of an upsert's time)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in vars(record).items()}


# what playlist_payload writes
PLAYLIST_OWN_KEYS = frozenset(PlaylistRecord.__dataclass_fields__) | {"name_key", "name_rank"}


def name_rank(name_key: str, fill: int = 0) -> int:
    """The engine's sort key for a case-folded name: its first RANK_BYTES UTF-8 bytes as a number, so ranks
    order as the names do (UTF-8 bytes sort as code points) and equal ranks share those bytes. `fill` pads a
    short key (0xFF: the highest rank any name starting with it can have)."""
    head = name_key.encode("utf-8", "surrogatepass")[:RANK_BYTES]  # a name is data: any code point ranks
    return int.from_bytes(head.ljust(RANK_BYTES, bytes([fill])), "big")


def playlist_payload(playlist: PlaylistRecord) -> dict[str, Any]:
    """The stored payload: the record plus `name_key`, the case-folded name its keyword index finds, and
    `name_rank`, the number the engine lists playlists by name with."""
    key = playlist.name.casefold()
    return {**record_payload(playlist), "name_key": key, "name_rank": name_rank(key)}
