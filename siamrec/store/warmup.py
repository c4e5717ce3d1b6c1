"""Read an embedded store into the page cache before the first queries need it.

The store is memory-mapped, so a fresh process reads every page a query touches from disk the first time: at 1M
tracks a service's first queries took p50 118 ms against 5 ms once the pages were in memory. A service opens
the store once, so it reads the store ahead in a background thread, in the order queries need it: the quantized
copies and the HNSW graphs a search walks, the payload indexes and id trackers, then the payloads and the float
originals (read for the seeds, the rescoring and the results), those of the vector in use first. Reading only
the search path was not enough (20k tracks, first queries p50 31 ms against 40 ms cold; everything: 7 ms).
The write-ahead log is never read, and at most a quarter of the machine's memory: these pages are page cache,
not process memory, and the kernel drops them again when something needs the room.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from siamrec.logs import get_logger

if TYPE_CHECKING:
    from siamrec.store.facade import Store

# What a search does not walk: the float originals (`vectors/` while a segment is appendable, `matrix.dat` once
# optimized) and the payloads, read for a few points per query; `wal` is never read ahead.
ON_DEMAND_FOLDERS = frozenset({"vectors", "payload_storage"})
ON_DEMAND_FILES = frozenset({"matrix.dat"})
NEVER = "wal"
CHUNK = 1 << 20
log = get_logger(__name__)


def memory_budget() -> int:
    """A quarter of the machine's physical memory."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError):
        return 1 << 30


def files_to_warm(collections: Iterable[Path], vector: str | None = None) -> list[Path]:
    """Every file of these collection folders but the log, in the order queries need them: what a search walks
    (quantized copies, then graphs, then the rest), then payloads and originals (`vector`'s before the others')."""
    found: list[Path] = []
    for folder in collections:
        for directory, subdirectories, files in os.walk(folder, followlinks=False):
            subdirectories[:] = sorted(d for d in subdirectories if d != NEVER)
            found.extend(Path(directory, name) for name in sorted(files))
    preferred = f"vector_storage-{vector}"

    def rank(path: Path) -> tuple[bool, bool, bool, bool]:
        inside = path.parts[-3:]  # the file and its two folders inside a segment, never the store's own location
        on_demand = path.name in ON_DEMAND_FILES or bool(set(inside) & ON_DEMAND_FOLDERS)
        other_vector = any(p.startswith("vector_storage-") and p != preferred for p in inside)
        quantized = any(p.startswith("quantized") for p in inside)
        graph = any(p.startswith("vector_index") for p in inside)
        return (on_demand, on_demand and other_vector, not quantized, not graph)

    return sorted(found, key=rank)


def read_ahead(paths: Iterable[Path], limit: int) -> int:
    """Read the files' data once (their pages stay in the page cache); returns the bytes read. A file that
    vanished or cannot be read (the engine may merge segments meanwhile) is skipped: warming is only a hint."""
    buffer = memoryview(bytearray(CHUNK))
    total = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            for start, end in data_ranges(fd):
                while start < end and total < limit:
                    got = os.preadv(fd, [buffer[: min(end - start, limit - total)]], start)
                    if got == 0:  # the file was cut short meanwhile
                        break
                    start += got
                    total += got
        except OSError:
            pass
        finally:
            os.close(fd)
        if total >= limit:
            break
    return total


def data_ranges(fd: int) -> list[tuple[int, int]]:
    """The byte ranges of a file that hold data: the engine preallocates sparse 32 MiB chunks, whose holes
    are not worth reading. The whole file where the system cannot tell."""
    size = os.fstat(fd).st_size
    if not hasattr(os, "SEEK_DATA"):
        return [(0, size)]
    ranges = []
    position = 0
    while position < size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after `position`
            break
        position = os.lseek(fd, start, os.SEEK_HOLE)
        ranges.append((start, position))
    return ranges


class Warming:
    """`read_ahead` in a daemon thread (a service answers meanwhile); `wait` returns the bytes read."""

    def __init__(self, paths: list[Path], limit: int) -> None:
        self.bytes_read = 0
        self._thread = threading.Thread(target=self._run, args=(paths, limit), name="siamrec-warm", daemon=True)
        self._thread.start()

    def _run(self, paths: list[Path], limit: int) -> None:
        start = time.perf_counter()
        self.bytes_read = read_ahead(paths, limit)
        log.info("store read ahead: %.2f GB in %.1f s", self.bytes_read / 1e9, time.perf_counter() - start)

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        return self.bytes_read


def warm_store(store: Store, limit: int | None = None) -> Warming | None:
    """Load an embedded store's collections and start reading them into memory, the vector queries use before
    the other, up to `limit` bytes (default: a quarter of the machine's memory), for a process that opens once
    and answers many queries (a one-off command should not pay for it). None with a Qdrant server, which keeps
    its own pages."""
    warm = getattr(store.backend, "warm", None)
    return warm(store.query_vector, limit) if warm is not None else None
