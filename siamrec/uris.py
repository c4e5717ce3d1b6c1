"""Track and playlist URIs, and the Qdrant point ids made from them: pure functions every layer shares."""

from __future__ import annotations

import hashlib
import re
import uuid

LOCAL_TRACK_PREFIX = "local:track:"
LOCAL_PLAYLIST_PREFIX = "local:playlist:"
# What a command-line item that is a URI (not a file) starts with.
URI_SCHEMES = ("spotify:", "local:", "mpd:", "subsonic:", "http://", "https://", "file://")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+( [A-Za-z0-9]+)*")


def point_id(uri: str) -> str:
    """The point id of a track or playlist URI (a UUID string, as Qdrant requires)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, uri))


def local_track_uri(audio_id: str) -> str:
    """`local:track:<audio identity>`: the identity comes from the audio, not from the file's tags."""
    return f"{LOCAL_TRACK_PREFIX}{audio_id}"


def local_playlist_uri(name: str) -> str:
    """A playlist URI that two different names never share.

    Plain names (ASCII words separated by single spaces) keep the readable slug siamrec always gave them
    (`Road Trip` → `local:playlist:road-trip`; names differing only in case are one playlist). Any other
    name gets its slug plus `~` and a hash of the exact name, so `Rock & Roll` and `rock-roll!`, or two
    names in another script, can never overwrite each other.
    """
    stripped = name.strip()
    slug = re.sub(r"[\W_]+", "-", stripped.casefold()).strip("-") or "playlist"
    if _PLAIN_NAME.fullmatch(stripped):
        return f"{LOCAL_PLAYLIST_PREFIX}{slug}"
    digest = hashlib.sha1(stripped.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{LOCAL_PLAYLIST_PREFIX}{slug[:60]}~{digest}"


def is_uri(item: str) -> bool:
    """True for a track URI given on the command line (as opposed to a file path)."""
    return item.startswith(URI_SCHEMES)
