"""Checks on the files a user asks siamrec to write, made before any long work starts.

A bench or a sync that runs for an hour and then cannot write its picture or its M3U has wasted the hour:
every output path is checked up front (folder exists and is writable, the path is not a folder or a
special file, the suffix is one the writer knows), and the write itself turns OSError into one line.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from siamrec.errors import ConfigError


def check_output_file(path: Path, option: str, suffixes: Iterable[str] = ()) -> Path:
    """`path` if a file can be written there, else ConfigError naming the option and what to change."""
    path = Path(path).expanduser()
    wanted = sorted(suffixes)
    if wanted and path.suffix.lower() not in wanted:
        raise ConfigError(f"{option} {path}: write it as {', '.join(wanted)}")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {_why(exc)}") from exc
    if mode is not None and stat.S_ISDIR(mode):
        raise ConfigError(f"{option} {path}: is a folder; name a file in it")
    if mode is not None and not stat.S_ISREG(mode):
        raise ConfigError(f"{option} {path}: is not a regular file (a device, FIFO or socket)")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (mode is not None and not os.access(path, os.W_OK)):
        raise ConfigError(f"{option} {path}: cannot write there (read-only or no permission)")
    return path


def write_error(path: Path, exc: OSError) -> ConfigError:
    """The one-line error for a write that failed anyway (full disk, a filesystem that refuses files)."""
    return ConfigError(f"cannot write {path}: {_why(exc)}")


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the path or a name in it is too long"
    return exc.strerror or str(exc)
