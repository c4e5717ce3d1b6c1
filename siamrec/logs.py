"""Logging: one "siamrec" logger tree, shown on stderr through rich (stdout stays for results and --json)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

LOGGER_NAME = "siamrec"


def configure_logging(verbose: int = 0, quiet: bool = False, console: Console | None = None) -> None:
    """Warnings by default, info with -v, debug with -vv, errors only with -q.

    `console`: where records are shown (the CLI's, which escapes control characters: a record may quote a
    server's reply); a plain stderr console when none is given.
    """
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    shown_on = console or Console(stderr=True)
    from siamrec.redact import RedactingFilter

    handler = RichHandler(console=shown_on, show_path=False, markup=False, rich_tracebacks=False)
    handler.addFilter(RedactingFilter())  # every record shown, whichever module logged it: no credential
    root = logging.getLogger(LOGGER_NAME)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """The logger of a siamrec module (`get_logger(__name__)`)."""
    return logging.getLogger(name if name.startswith(LOGGER_NAME) else f"{LOGGER_NAME}.{name}")
