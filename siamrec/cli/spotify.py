"""The one way a command logs in to Spotify from a terminal: the address on stderr, the answer from stdin."""

from __future__ import annotations

import select
import sys
from pathlib import Path

from siamrec.cli import stderr_line

LOGIN_WAIT_S = 300.0  # how long a headless login waits for the pasted redirect address


def say(message: str) -> None:
    """A prompt on stderr, unwrapped (a URL cut across lines cannot be copied), so --json stdout stays clean."""
    for line in message.splitlines():
        stderr_line(line)


def read_stdin_line(wait_s: float) -> str | None:
    """One line from stdin within `wait_s` seconds; None when none came, or stdin is closed or empty."""
    try:
        ready, _, _ = select.select([sys.stdin], [], [], wait_s)
        return (sys.stdin.readline() or None) if ready else None
    except (OSError, ValueError):  # stdin closed or not selectable
        return None


def login(home: Path, write: bool = False, wait_s: float = LOGIN_WAIT_S) -> bool:
    """Make sure a user token is cached under `home` (with the write scope when `write`), before the store is
    opened and locked; True when the person had to log in."""
    from siamrec.connectors.spotify import USER_SCOPE, WRITE_SCOPE, login_user

    return login_user(home, say, read_stdin_line, wait_s, scope=WRITE_SCOPE if write else USER_SCOPE)


__all__ = ["LOGIN_WAIT_S", "login", "read_stdin_line", "say"]
