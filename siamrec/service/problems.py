"""Errors as RFC 9457 problem documents: the core's exception family mapped to HTTP statuses, no stack traces."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from siamrec.errors import (
    AudioError,
    ConfigError,
    ConnectorError,
    ModelError,
    NotAudioError,
    NotFoundError,
    SiamrecError,
    StoreError,
)

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger("siamrec.service")
SERVER_PATH = "a server path"
# A body too slow to wait for is not read to its end: the connection ends with the answer. (A body too large is
# read and dropped after the 413, so the client sees the answer; the request-head deadline bounds that.)
CLOSE_CONNECTION = {"Connection": "close"}
# A path the server's own code named: quoted, a file:// URI, or bare (a "/" or "~/" that starts a word, so a URL's
# path, "multipart/form-data" or a client's "scheme:a/b" stay as they are).
_PATH = re.compile(r"""'(?:~|/)[^']*'|file://[^\s'"]+?(?=[:;,]?(?:\s|$))|(?<![\w:/.~%+-])~?/[^\s'"(),;:]+""")
# What tells an operator what to do: a command (`siamrec adapt`), an option (--allow-fetch), an install, a variable.
_HINT = re.compile(r"`siamrec[^`]*`|(?<![\w-])--[a-z][\w-]*|\bpip install\b|\bSIAMREC_[A-Z_]+")
_CLAUSE_END = re.compile(r"(?<=[:;]) ")

# Most specific first: the first class an error is an instance of decides its status.
STATUS_OF: tuple[tuple[type[SiamrecError], int], ...] = (
    (NotAudioError, 415),
    (AudioError, 422),
    (NotFoundError, 404),
    (ConfigError, 400),
    (ModelError, 409),
    (ConnectorError, 502),
    (StoreError, 503),
    (SiamrecError, 400),
)


class Problem(BaseModel):
    """RFC 9457 problem details; `errors` lists each invalid field of a request that failed validation."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(default=None, description="Invalid request fields, when any.")


class ServiceBusy(SiamrecError):
    """The bounded work queue is full: retry later (503 + Retry-After)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FetchRefused(SiamrecError):
    """URL fetching is off, or the URL points where the service must not go."""


class TooLarge(SiamrecError):
    """The upload is larger than the service accepts."""


class BodyTooSlow(SiamrecError):
    """The request body did not arrive by its deadline (408: the client may send it again)."""


def public_detail(detail: str, folders: Iterable[tuple[str, str]] = ()) -> str:
    """`detail` as an HTTP client may read it: no server paths, no hints meant for the operator's shell.

    `folders` are (folder, what to call it) pairs the server knows to be its own (a folder with spaces in its
    name is found whole); any other absolute path becomes "a server path". A clause that tells the operator
    what to run ("…: run `siamrec adapt` first") is dropped, since a client cannot follow it.
    """
    for folder, label in sorted(folders, key=lambda pair: -len(pair[0])):
        detail = re.sub(re.escape(folder) + r"(?:/[^\s'\"(),;:]*)?", label, detail)
    detail = _PATH.sub(SERVER_PATH, detail)
    detail = re.sub(r"\s*\([^()]*\)", lambda group: "" if _HINT.search(group[0]) else group[0], detail)
    first, *rest = _CLAUSE_END.split(detail)
    kept = [_HINT.sub("a server setting", first), *(clause for clause in rest if not _HINT.search(clause))]
    return " ".join(kept).rstrip(" :;,")


def problem_response(
    status: int, detail: str, instance: str | None = None, folders: Iterable[tuple[str, str]] = (), **extra: Any
) -> JSONResponse:
    """The one place a problem document is made: its detail always passes `public_detail`."""
    headers = extra.pop("headers", None)
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=public_detail(detail, folders),
        instance=instance,
        **extra,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status, headers=headers, media_type=PROBLEM_TYPE)


def status_of(exc: SiamrecError) -> int:
    if isinstance(exc, ServiceBusy):
        return 503
    if isinstance(exc, FetchRefused):
        return 403
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, BodyTooSlow):
        return 408
    return next(status for cls, status in STATUS_OF if isinstance(exc, cls))


def install_handlers(app: FastAPI) -> None:
    """Every error leaves as a problem document; unexpected ones are logged here and answered without details."""

    @app.exception_handler(SiamrecError)
    async def siamrec_error(request: Request, exc: SiamrecError) -> JSONResponse:
        return problem_response(status_of(exc), str(exc), request.url.path, _folders(request), headers=_headers(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 405:  # Starlette lists one route's methods; a path may have several routes
            headers = {**(headers or {}), "Allow": ", ".join(_methods_for(app, request.scope["path"]))}
        return problem_response(exc.status_code, str(exc.detail), request.url.path, _folders(request), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem_response(422, "the request is invalid: see errors", request.url.path, errors=errors)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %r", request.method, request.url.path)  # %r: no raw control codes
        return problem_response(500, "internal error; the server log has the details", request.url.path)


def _headers(exc: SiamrecError) -> dict[str, str] | None:
    if isinstance(exc, ServiceBusy):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, BodyTooSlow):
        return CLOSE_CONNECTION
    return None


def _folders(request: Request) -> tuple[tuple[str, str], ...]:
    """The service's own folders, named in problem details by what they are (none before the service opens)."""
    service = getattr(request.app.state, "service", None)
    return service.private_folders if service is not None else ()


def _methods_for(app: FastAPI, path: str) -> list[str]:
    routes = [route for route in app.routes if isinstance(route, APIRoute) and route.path_regex.match(path)]
    return sorted({method for route in routes for method in route.methods})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses (problem+json; see `problem_media_types`)."""
    return {status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses}


def problem_media_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare every 4xx/5xx response of the OpenAPI document as application/problem+json with the Problem schema."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = {PROBLEM_TYPE: {"schema": ref}}
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema
