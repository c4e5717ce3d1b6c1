"""Credentials kept out of everything siamrec prints or logs, whatever a server sends back.

A server may echo the query of a request (the Subsonic token and salt, the `enc:` hex of a password), an
error may quote a URL that holds an API key, a header or a JSON token. `redact` removes the secrets this
process knows (registered where they are read) and anything that looks like one by its name; `one_line`
also makes outside text one short printable line, for messages built from a server's words.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus

HIDDEN = "***"
MIN_SECRET = 4  # shorter values would blank ordinary words; a secret that short is guessed anyway
_NAMES = (
    r"t|s|p|u?pass(?:word)?|passwd|pwd|api[_-]?key|key|token|access[_-]?token|refresh[_-]?token|id[_-]?token"
    r"|client[_-]?secret|secret|code|sig(?:nature)?|auth(?:orization)?|x-api-key|cookie"
)
_ASSIGNED = re.compile(rf"(?i)(?<![\w.-])({_NAMES})=[^\s&;#\"'<>]+")  # a query or form parameter
_QUOTED = re.compile(rf"(?i)([\"'])({_NAMES})\1(\s*:\s*)([\"']).*?\4")  # a JSON key or a Python dict's
_HEADER = re.compile(r"(?im)\b((?:proxy-)?authorization|x-api-key|cookie|set-cookie)(\s*:\s*)[^\r\n]+")
_SCHEME_TOKEN = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@")

_known: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a credential this process holds, so any text that repeats it (raw, URL- or hex-encoded) hides it."""
    if not value or len(value) < MIN_SECRET:
        return
    with _lock:
        _known.update({value, quote(value, safe=""), quote_plus(value), value.encode().hex()})


def redact(text: str, *secrets: str) -> str:
    """`text` without the registered secrets, `secrets`, and values of credential-named parameters or headers."""
    for value in sorted({*_known, *(s for s in secrets if s and len(s) >= MIN_SECRET)}, key=len, reverse=True):
        text = text.replace(value, HIDDEN)
    text = _USERINFO.sub(rf"\1:{HIDDEN}@", text)
    text = _HEADER.sub(rf"\1\2{HIDDEN}", text)
    text = _SCHEME_TOKEN.sub(rf"\1 {HIDDEN}", text)
    text = _QUOTED.sub(rf"\1\2\1\3\4{HIDDEN}\4", text)
    return _ASSIGNED.sub(rf"\1={HIDDEN}", text)


def one_line(text: object, *secrets: str, limit: int = 300) -> str:
    """Outside text for a one-line message: redacted, whitespace runs as one space, controls escaped, cut."""
    flat = " ".join(redact(str(text), *secrets).split())
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in flat)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (its arguments are formatted in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redacting(logger: logging.Logger) -> logging.Logger:
    """`logger` with a RedactingFilter (once): what its module logs never shows a credential."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
