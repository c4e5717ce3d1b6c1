"""`GET /playlists`: the stored playlists a page at a time in name order, as `siamrec playlist list` shows them.

The body stays a JSON list; when more follow, a `Link: <…>; rel="next"` header (RFC 8288) names the next page,
its `after` cursor being the place of the last playlist shown (opaque to clients). A page costs what it shows
(siamrec.store.by_name), so a store holding the Million Playlist Dataset answers as quickly as one with ten.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request, Response
from starlette.exceptions import HTTPException

from siamrec.service.problems import error_responses
from siamrec.service.schemas import PlaylistSummary
from siamrec.service.state import Service
from siamrec.store.by_name import ORDER_CHARS, NamePage

# a cursor: base64 of an ASCII JSON pair, a name's first ORDER_CHARS characters (each at most 12 bytes: two \uXXXX)
# and a point id; about 8 KB at most, within a request line
CURSOR_CHARS = 4 * (12 * ORDER_CHARS + 64) // 3 + 4
Limit = Annotated[int, Query(ge=1, le=1000, description="How many playlists on this page.")]
NamePrefix = Annotated[str, Query(max_length=500, description="Only playlists whose name starts with this (any case).")]
Words = Annotated[
    str,
    Query(
        max_length=500,
        description="Only playlists with a word starting with each of these words in their name (any case or accent:"
        " `road tr` finds 'Chill road-trip'). Combines with `name`.",
    ),
]
After = Annotated[
    str | None,
    Query(
        max_length=CURSOR_CHARS,
        pattern="^[A-Za-z0-9_-]+$",
        description="Where the page starts: the cursor in the previous page's `Link` header (opaque).",
    ),
]


def encode_cursor(after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(after)).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, str]:
    """A cursor this service gave; anything else is a 422, never an error inside."""
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        value = None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)):
        raise HTTPException(422, "`after` is not a cursor this service gave: use the one in the `Link` header")
    return value[0], value[1]


def add_listing_route(app: FastAPI) -> None:
    @app.get(
        "/playlists",
        response_model=list[PlaylistSummary],
        tags=["playlists"],
        summary="The stored playlists by name, a page at a time (the next page is in the `Link` header)",
        responses=error_responses(400, 401, 422, 503),
    )
    async def list_playlists(
        request: Request, response: Response, limit: Limit = 100, name: NamePrefix = "", words: Words = "",
        after: After = None,
    ) -> list[PlaylistSummary]:  # fmt: skip
        service: Service = request.app.state.service
        cursor = decode_cursor(after) if after else None
        page: NamePage = await service.in_store(service.store.playlist_page, limit, cursor, name, words)
        if page.after is not None:
            searched = {key: value for key, value in (("name", name), ("words", words)) if value}
            query = {"limit": limit, **searched, "after": encode_cursor(page.after)}
            response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
        return [PlaylistSummary.of(p) for p in page.playlists]
