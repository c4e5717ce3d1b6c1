"""Keep native libraries' chatter off stderr (libmpg123's "Note: Illegal Audio-MPEG-Header", …).

Native code writes to file descriptor 2 directly, so Python-level redirection cannot catch it: around a
native call, fd 2 points at /dev/null. Decoding runs in a thread pool, so the redirection is counted:
the first thread in silences, the last one out restores. Python's own stderr (siamrec's error lines,
rich's progress bar, tracebacks) is first moved onto a duplicate of the real fd 2, so it is never
silenced, whatever thread writes while a decode runs.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None


def _move_python_stderr_off_fd2() -> None:
    """Point sys.stderr at a duplicate of fd 2 (once), so silencing fd 2 only silences native code."""
    stream = sys.stderr
    try:
        if stream is None or stream.fileno() != 2:
            return  # already moved, or captured by a test runner: nothing native can reach it anyway
    except (AttributeError, OSError, ValueError):
        return
    stream.flush()
    duplicate = os.fdopen(os.dup(2), "wb", buffering=0)
    sys.stderr = io.TextIOWrapper(
        duplicate, encoding=stream.encoding, errors=stream.errors, line_buffering=True, write_through=True
    )


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence fd 2 while the block runs (thread-safe, reentrant); Python's stderr keeps working."""
    global _depth, _saved_fd
    with _lock:
        if _depth == 0:
            _move_python_stderr_off_fd2()
            devnull = os.open(os.devnull, os.O_WRONLY)
            _saved_fd = os.dup(2)
            os.dup2(devnull, 2)
            os.close(devnull)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None
