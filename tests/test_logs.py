"""What siamrec logs reaches the operator without credentials, whichever module logged it."""

from __future__ import annotations

import io

from rich.console import Console

from siamrec.logs import configure_logging, get_logger
from siamrec.redact import register_secret


def test_every_logged_record_is_redacted_at_the_handler() -> None:
    shown = io.StringIO()
    configure_logging(verbose=1, console=Console(file=shown, width=200))
    register_secret("hunter2-password")
    log = get_logger("siamrec.anywhere")  # a module that put no filter on its own logger
    log.info("GET /rest/ping?u=me&t=0a1b2c3d4e&s=f00dfeed answered 'hunter2-password'")
    log.info("Authorization: Bearer abcdefghijklmnop")
    text = shown.getvalue()
    assert "GET /rest/ping" in text and "Authorization" in text
    for secret in ("0a1b2c3d4e", "f00dfeed", "hunter2-password", "abcdefghijklmnop"):
        assert secret not in text, text
