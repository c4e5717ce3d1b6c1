"""The shapes siamrec accepts from a Subsonic server, checked before anything is read from an answer.

Servers differ (and some lie): a list of one may come as one object, numbers as strings; those are
accepted. What cannot be read is never guessed at: a broken item of a list (a song that is a string, a
playlist without an id) is skipped and counted, and an answer whose frame is wrong (an error that is not an
object, playlists that are a string) is refused in one line.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError

from siamrec.connectors.base import text_field

MAX_ID = 200
MAX_TEXT = 1000
MAX_DURATION_S = 7 * 24 * 3600.0  # a week: longer is a broken field, not a song
M = TypeVar("M", bound=BaseModel)


def _text(value: Any) -> str:
    """A name or comment as text (anything but a string or number is empty), cut at MAX_TEXT characters."""
    return text_field(value)[:MAX_TEXT]


def _id(value: Any) -> str:
    """An id: a short printable string or number without spaces; anything else makes its item unreadable."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not 0 < len(text) <= MAX_ID or not text.isprintable():
        raise ValueError("not a usable id")
    if any(c.isspace() for c in text):
        raise ValueError("not a usable id")
    return text


def _number(value: Any) -> float:
    """A JSON number or numeric string as a float; NaN for anything else."""
    try:
        return float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else math.nan
    except ValueError:
        return math.nan


def _duration(value: Any) -> float | None:
    """Seconds, when positive and under a week; else None (unknown)."""
    number = _number(value)
    return number if 0 < number < MAX_DURATION_S else None


def _size(value: Any) -> int | None:
    """A byte count, when a whole number that is not negative; else None (unknown)."""
    number = _number(value)
    return int(number) if math.isfinite(number) and number >= 0 and number == int(number) else None


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


Text = Annotated[str, BeforeValidator(_text)]
Id = Annotated[str, BeforeValidator(_id)]
Duration = Annotated[float | None, BeforeValidator(_duration)]
Size = Annotated[int | None, BeforeValidator(_size)]
Flag = Annotated[bool, BeforeValidator(_flag)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ApiError(_Lenient):
    code: int | None = None
    message: Text = ""


class Envelope(_Lenient):
    """The `subsonic-response` frame of every answer."""

    status: Literal["ok", "failed"]
    error: ApiError | None = None


class SongEntry(_Lenient):
    """A song as search3 and getPlaylist list it."""

    id: Id
    title: Text = ""
    artist: Text = ""
    album: Text = ""
    duration: Duration = None
    size: Size = None
    suffix: Text = ""
    changed: Text = ""
    created: Text = ""
    isVideo: Flag = False  # noqa: N815 (the API's name)


class PlaylistEntry(_Lenient):
    """A playlist as getPlaylists lists it (without songs) or getPlaylist gives it (`entry`: its songs)."""

    id: Id
    name: Text = ""
    comment: Text = ""
    owner: Text | None = None


def listed(value: Any, model: type[M]) -> tuple[list[M], int]:
    """The readable items of a list field (None: none; one object: a list of one) and how many were not.

    Raises ValueError when the field is no list at all (a string, a number).
    """
    if value is None:
        return [], 0
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"a list was expected, not {_kind(value)}")
    adapter = TypeAdapter(model)
    items: list[M] = []
    for raw in value:
        try:
            items.append(adapter.validate_python(raw))
        except ValidationError:
            continue
    return items, len(value) - len(items)


def section(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The object an answer holds under `key` ({} when absent); ValueError when it is something else."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"'{key}' is {_kind(value)}, not an object")
    return value


def first_error(exc: ValidationError) -> str:
    """One short line about what was wrong in a frame (the field, not its value: values may be secrets)."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the answer"
    return f"'{where}': {error['msg'].lower()}"


def _kind(value: Any) -> str:
    return {str: "a string", list: "a list", dict: "an object", bool: "a boolean"}.get(type(value), "a number")
