"""The one interface every playlist source implements (like a beets plugin): it yields playlists.

A source knows playlists and track metadata; audio is resolved afterwards (connectors.audio) unless the
source has the files itself (local playlists set `SourceTrack.path`). Problems that concern one slice, one
playlist or one entry are collected in `problems` and iteration goes on; a problem that stops the whole
source (bad credentials, no network) raises ConnectorError.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MAX_DURATION_MS = 7 * 24 * 3600 * 1000  # a week: longer is a broken field, not a track


def duration_seconds(duration_ms: Any) -> float | None:
    """A source's duration in ms as seconds, or None unless finite, positive and under a week (1e999 is inf)."""
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, int | float):
        return None
    return duration_ms / 1000 if 0 < duration_ms < MAX_DURATION_MS else None


def text_field(value: Any) -> str:
    """A name field from outside as text: strings as they are, numbers as written, anything else (lists,
    objects, booleans, null) empty: a server or dump of the wrong shape never crashes a reader."""
    return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else ""


def object_field(value: Any) -> dict[str, Any]:
    """A field that should hold an object: itself when it does, else {} (so `.get` reads nothing)."""
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class SourceTrack:
    """A track as a source describes it; `path` only when the source itself holds the audio."""

    uri: str
    title: str = ""
    artist: str = ""
    album: str = ""
    duration_s: float | None = None
    path: Path | None = None
    version: str = ""  # the source's stamp of its audio (Subsonic: format, size, date): a new one means re-embed
    size_bytes: int | None = None  # the size the source declares for its audio file (bounds its download)


@dataclass
class SourcePlaylist:
    """A playlist as a source describes it, tracks in playlist order.

    `collection`: not a playlist but a slice of a library (a server's songs): its tracks are stored and
    embedded, and nothing is saved as a playlist.
    """

    uri: str
    name: str
    source: str
    tracks: list[SourceTrack] = field(default_factory=list)
    followers: int | None = None
    description: str = ""
    collection: bool = False


@dataclass(frozen=True)
class Problem:
    """Something a source skipped: where (a file, a playlist, an entry) and why, for the sync summary."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class PlaylistSource(Protocol):
    """What `siamrec sync-playlists` needs from a source."""

    label: str
    problems: list[Problem]

    def playlists(self) -> Iterator[SourcePlaylist]:
        """Yield playlists one at a time (a source may hold far more than fits in memory)."""
        ...
