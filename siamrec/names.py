"""File names from outside, made safe to print, to put in JSON and to store, without losing the file.

On POSIX a file name is bytes; Python hands names that are not valid UTF-8 over as str with lone
surrogates (PEP 383 "surrogateescape"), which cannot be printed, JSON-encoded for a server or stored as
text. A name may also hold a newline, which would split a one-line message in two. And any text from outside
(names, tags, server replies) may hold control characters that a terminal obeys: it is escaped before it
is shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

FILE_URI = "file://"
# What a terminal acts on rather than shows: C0 controls, DEL, C1 controls (U+009B is a one-character CSI),
# the line and paragraph separators, the bidi marks, embeddings, overrides and isolates (they reorder what
# is shown), and lone surrogates (not text at all; an encoder would fail on them).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def name_text(name: str | Path) -> str:
    """A name as valid Unicode text: undecodable bytes become `\\xNN` (for titles and other display)."""
    text = str(name)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def escape_controls(text: str, keep: str = "") -> str:
    """`text` with every control character shown as its escape (`\\x1b`, `\\u202e`), those in `keep` left as they are.

    ESC [2J clears the screen, ESC ] 0; sets the window title: text from files, tags and servers is data and
    must never reach a terminal raw. A byte of an undecodable file name (PEP 383) shows as that byte, `\\xff`.
    """

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep:
            return char
        if "\udc80" <= char <= "\udcff":
            return f"\\x{ord(char) - 0xDC00:02x}"
        return char.encode("unicode_escape").decode("ascii")

    return CONTROL_CHARACTERS.sub(escape, text)


def quoted(name: str | Path) -> str:
    """A name for a one-line message: as it is when printable, else quoted with escapes (`'a\\nb.mp3'`)."""
    text = str(name)
    if text.isprintable():
        return text
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name_text(text))
    return "'" + escaped.replace("'", "\\'") + "'"


def path_for_payload(path: str | Path) -> str:
    """The path as storable text: itself when it is valid UTF-8, else a `file://` URI (percent-encoded bytes)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return Path(os.path.abspath(text)).as_uri()
    return text


def path_from_payload(text: str) -> Path:
    """The inverse of `path_for_payload`: the file a stored path names."""
    if text.startswith(FILE_URI):
        return Path(os.fsdecode(unquote_to_bytes(urlsplit(text).path)))
    return Path(text)
