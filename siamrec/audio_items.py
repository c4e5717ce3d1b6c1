"""A file to add and the record it is stored under: the source's metadata (or its tags), its audio's identity,
and the file facts (path, size, mtime, SHA-1) that let a re-add tell an unchanged file from a changed one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siamrec.audio import AudioInfo, audio_identity, file_sha1, track_windows
from siamrec.names import path_for_payload
from siamrec.sniff import sniff
from siamrec.store import StoredTrack, TrackRecord
from siamrec.tags import read_tags
from siamrec.uris import local_track_uri


@dataclass
class AudioItem:
    """A file to add; `record` carries what the source already knows (URI, title…), else tags decide."""

    path: Path
    record: TrackRecord | None = None
    overrides: dict[str, str] = field(default_factory=dict)


MTIME_TOLERANCE_S = 1e-6


def file_facts(path: Path) -> tuple[str, int, float] | None:
    """(resolved path, size, mtime) of a file, as stored in a track's payload; None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return path_for_payload(path.resolve()), stat.st_size, stat.st_mtime


def same_mtime(stored: float | None, current: float) -> bool:
    """The stored modification time is the file's: within a microsecond, since an engine may hand a float back
    one unit in the last place off (seen with Qdrant Edge: 1796235428.8075025 stored, ...8075023 read back)."""
    return stored is not None and abs(stored - current) < MTIME_TOLERANCE_S


def wanted_uri(item: AudioItem) -> str | None:
    """The URI the item will be stored under when the caller fixed it (else the audio decides)."""
    return item.overrides.get("track_uri") or (item.record.track_uri if item.record else None)


def same_audio(stored: TrackRecord, record: TrackRecord) -> bool:
    """The stored vector was made from this audio: same audio identity, or same file bytes."""
    stored_id, new_id = stored.audio_id, record.audio_id
    if stored_id and new_id:
        return bool(stored_id == new_id)
    return stored.audio_sha1 is not None and stored.audio_sha1 == record.audio_sha1


def local_record(path: Path, audio_id: str, duration_s: float) -> TrackRecord:
    """The record of a file with no source metadata: `local:track:<audio identity>`, tags for the names."""
    tags = read_tags(path)
    return TrackRecord(
        track_uri=local_track_uri(audio_id),
        title=tags["title"],
        artist=tags["artist"],
        album=tags["album"],
        duration_s=round(duration_s, 3),
        source="local",
        audio_id=audio_id,
        path=path_for_payload(path.resolve()),
    )


def load_item(item: AudioItem, sha1: str | None = None) -> tuple[TrackRecord, np.ndarray]:
    """Decode one file into its record and model windows (raises AudioError or OSError); `sha1` when hashed."""
    windows, info = track_windows(item.path)
    return describe_item(item, windows, info, sha1), windows


def describe_item(item: AudioItem, windows: np.ndarray, info: AudioInfo, sha1: str | None = None) -> TrackRecord:
    """The record of a file already decoded into `windows` (the service decodes an upload once, to check it)."""
    return described_record(item, sha1 or file_sha1(item.path), audio_identity(windows, info), info.duration_s)


def described_record(item: AudioItem, sha1: str, audio_id: str, duration_s: float) -> TrackRecord:
    """The item's record (the source's, else one from its tags) with its audio and file facts filled in."""
    record = item.record or local_record(item.path, audio_id, duration_s)
    for key, value in item.overrides.items():
        setattr(record, key, value)
    record.audio_sha1 = sha1
    record.audio_id = audio_id
    facts = file_facts(item.path)
    if facts is not None:
        record.path, record.size, record.mtime = facts
    if record.duration_s is None:
        record.duration_s = round(duration_s, 3)
    return record


def reuse_stored(item: AudioItem, sha1: str, stored: StoredTrack) -> tuple[TrackRecord, np.ndarray] | None:
    """The item's record and vector when its bytes (`sha1`) are those a stored track was made from: same bytes,
    same decoded windows, so that track's audio identity, length and vector, with no decoding. None when the
    stored track lacks one of them (then the file is decoded)."""
    audio_id, duration_s, vector = stored.record.audio_id, stored.record.duration_s, stored.vector
    if not audio_id or duration_s is None or vector is None:
        return None
    return described_record(item, sha1, audio_id, duration_s), vector


# Files hashed before decoding, to find stored bytes, are at most this big: a 12-hour FLAC is about 4 GB. A bigger
# file is decoded first, so its length is checked before it is read whole (as when nothing was looked up).
MAX_HASHED_FIRST_BYTES = 4 << 30


def audio_file_sha1(path: Path) -> str | None:
    """The file's SHA-1 when its bytes open like audio and it is not huge (junk is refused by the decoder, unread;
    a huge file by its length); None when not."""
    try:
        if path.stat().st_size > MAX_HASHED_FIRST_BYTES or sniff(path) is None:
            return None
        return file_sha1(path)
    except OSError:
        return None
