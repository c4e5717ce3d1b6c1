"""Playlist, dump and manifest files read whole, with bounds: a regular file, and not bigger than a cap.

A FIFO or a device named as a playlist would block the read forever (or never end, like /dev/zero), and a
huge file would be read into memory whole; both are refused before reading, in one line.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from siamrec.errors import ConnectorError

MiB = 1 << 20
PLAYLIST_BYTES = 64 * MiB  # an M3U/PLS of a few hundred thousand entries
SLICE_BYTES = 1024 * MiB  # a Million Playlist Dataset slice is ~33 MB; the challenge set ~100 MB
MANIFEST_BYTES = 1024 * MiB  # an audio manifest for millions of tracks


class FileRefused(ConnectorError):
    """A file that is not a regular file, too big, or unreadable; the message says which."""


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of `path`, refusing non-regular files and files over `max_bytes` (checked on the opened file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise FileRefused(_why(exc)) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("not a regular file (a FIFO, a device, a socket or a folder)")
        if info.st_size > max_bytes:
            raise FileRefused(f"too big ({info.st_size:,} bytes; at most {max_bytes:,} are read)")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise FileRefused(_why(exc)) from None
    if len(data) > max_bytes:  # it grew while being read
        raise FileRefused(f"too big (more than {max_bytes:,} bytes)")
    return data


def _why(exc: OSError | ValueError) -> str:
    if getattr(exc, "errno", None) == errno.ENAMETOOLONG:
        return "the path or a name in it is too long"
    return str(getattr(exc, "strerror", None) or exc)
