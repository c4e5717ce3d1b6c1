"""The disk under the embedded store: room checked before writes, a full disk reported in one line, and the
folder's lock that keeps a second process out.

Qdrant Edge keeps vectors and payloads in memory maps over sparse files. A write into a page the disk cannot
back is not an error the engine can return: the kernel sends SIGBUS and the process dies without a word.
So every write first checks that the folder has room for what it will add (estimated from the points, with
a reserve for the engine's own files), and, as a last guard when the disk fills meanwhile (another program
writing), a SIGBUS becomes one `siamrec: error:` line and exit status 1 instead of a silent death. What was
acknowledged before stays stored either way: the write-ahead log holds it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from siamrec.errors import StoreError

MiB = 1 << 20
LOCK = "store.lock"
RESERVE = 64 * MiB  # the engine's own files: 1 MiB flag files, 4 MiB index pages, a new WAL segment
WAL_FACTOR = 2  # a vector's bytes in the write-ahead log (serialised) next to its bytes in the memory map
PAYLOAD_FACTOR = 3  # a payload's JSON in the log, in the payload pages, and in the keyword indexes
BUS_MESSAGE = (
    b"siamrec: error: a store file could not be written (bus error: the disk is full, or a store file was cut "
    b"short while in use): what was acknowledged before is kept; free some space and run the command again\n"
)


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system of `folder` (or of its nearest existing parent)."""
    for path in (folder, *folder.parents):
        if path.exists():
            return shutil.disk_usage(path).free
    return shutil.disk_usage("/").free


def mib(size: int) -> str:
    return f"{size / MiB:,.0f} MiB" if size >= MiB else f"{size / 1024:,.0f} KiB"


def check_room(folder: Path, needed: int, what: str) -> None:
    """Refuse (one line) a write of about `needed` bytes under `folder` when the disk lacks them plus RESERVE."""
    free = free_bytes(folder)
    if free < needed + RESERVE:
        raise StoreError(
            f"not enough free space for {what} in {folder}: it needs about {mib(needed + RESERVE)}, "
            f"{mib(free)} is free; nothing was written: free some space and run the command again"
        )


def points_bytes(dims: Mapping[str, int], vectors: Iterable[Mapping[str, Any]], payloads: Iterable[Any]) -> int:
    """What writing these points adds: every named vector of the collection in its memory map (the engine
    fills the ones not given), the given vectors again in the log, and the payloads' JSON a few times."""
    stored = sum(dims.values()) * 4
    total = 0
    for named in vectors:
        total += stored + WAL_FACTOR * sum(int(np.size(v)) * 4 for v in named.values())
    for payload in payloads:
        total += PAYLOAD_FACTOR * len(json.dumps(payload, default=str))
    return total


def disk_error(folder: Path, exc: BaseException) -> StoreError | None:
    """A one-line StoreError when `exc` (an OSError or an engine error's text) says the disk is full."""
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
        return StoreError(
            f"the disk under the store at {folder} is full: what was acknowledged before is kept; "
            "free some space and run the command again"
        )
    return None


_guard: Any = None  # the installed handler, kept alive for the life of the process


def guard_bus_errors() -> None:
    """Turn SIGBUS (a memory-mapped write the disk could not back) into one line and exit status 1.

    The handler is a C-callable that writes a fixed line and calls _exit: the faulting instruction is never
    returned to (Python's own signal handlers would return to it and fault forever). Linux and macOS only.
    """
    global _guard
    if _guard is not None or not hasattr(signal, "SIGBUS") or sys.platform == "win32":
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        handler_type = ctypes.CFUNCTYPE(None, ctypes.c_int)

        def on_bus_error(signum: int) -> None:
            os.write(2, BUS_MESSAGE)
            os._exit(1)

        handler = handler_type(on_bus_error)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = [ctypes.c_int, handler_type]
        libc.signal(signal.SIGBUS, handler)
        _guard = handler
    except (OSError, AttributeError):  # no C library to ask: the free-space check is the guard
        _guard = False


def folder_error(path: Path, exc: OSError) -> StoreError:
    """One line for a store folder the system refuses (read-only, full, a file in the way)."""
    why = {
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "no permission",
        errno.EPERM: "no permission",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.ENOTDIR: "a file is in the way of a folder",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return StoreError(f"cannot use the store at {path}: {why}; choose another --home (or SIAMREC_HOME)")


def take_lock(root: Path) -> int:
    """Create the store folder if needed and hold its lock (a descriptor; closing it releases the lock)."""
    lock = root / LOCK
    try:
        root.mkdir(parents=True, exist_ok=True)
        if lock.exists() and not lock.is_file():
            raise StoreError(f"{lock} should be a file but is not: remove it (the data beside it is untouched)")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise folder_error(root, exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"the store at {root} is in use by another siamrec process: wait for it to finish, or run a Qdrant "
            "server and pass --qdrant-url (a running `siamrec serve` makes backups with `siamrec store backup "
            "--service URL`)"
        ) from None
    return fd


def write_json_atomically(path: Path, value: object) -> None:
    """Write JSON to a temporary file, fsync it, then rename it over `path` (never half a file)."""
    tmp = path.with_name(f"{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(value, indent=1, sort_keys=True))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
