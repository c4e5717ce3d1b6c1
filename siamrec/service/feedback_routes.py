"""`/playlists/{uri}/feedback`: a listener's accepted and rejected tracks, through the same calls as the CLI.

POST records answers (`siamrec feedback PLAYLIST --accept … --reject …`), GET reads the record (`--list`), DELETE
forgets it (`--clear`); each returns the same document as the CLI's --json. The playlist may be named by URI or
by name, as on the other playlist routes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from siamrec.feedback import FeedbackResult, clear_feedback, get_feedback, give_feedback
from siamrec.service.problems import error_responses
from siamrec.service.schemas import Strict, UriItem
from siamrec.service.state import Service

ROUTE = "/playlists/{uri:uri}/feedback"
PlaylistKey = Annotated[str, PathParam(min_length=1, max_length=500, description="A playlist's URI or name.")]
ERRORS = error_responses(400, 401, 404, 422, 503)
MAX_ANSWERS = 1000


class FeedbackIn(Strict):
    """Answers about tracks; none at all changes nothing and returns the record (as answers are idempotent)."""

    accept: list[UriItem] = Field(default_factory=list, max_length=MAX_ANSWERS, description="Tracks to keep.")
    reject: list[UriItem] = Field(
        default_factory=list, max_length=MAX_ANSWERS, description="Tracks never to recommend to this playlist again."
    )


class FeedbackOut(BaseModel):
    playlist_uri: str
    accepted: list[str] = Field(description="Tracks the listener kept (they joined the playlist).")
    rejected: list[str] = Field(description="Tracks never recommended to this playlist again.")


class FeedbackAnswer(FeedbackOut):
    added_to_playlist: list[str] = Field(description="Accepted tracks this answer added to the playlist.")
    changed: bool = Field(description="False when the answer was already stored (answers are idempotent).")


def _uri(service: Service, key: str) -> str:
    return service.store.find_playlist(key).playlist_uri


def _give(service: Service, key: str, body: FeedbackIn) -> FeedbackResult:
    return give_feedback(service.store, _uri(service, key), body.accept, body.reject)


def add_feedback_routes(app: FastAPI) -> None:
    @app.post(
        ROUTE,
        response_model=FeedbackAnswer,
        tags=["feedback"],
        summary="Keep or reject tracks for a playlist (accepted ones join it; rejected ones never come back)",
        responses=ERRORS,
    )
    async def post_feedback(request: Request, uri: PlaylistKey, body: FeedbackIn) -> FeedbackAnswer:
        service: Service = request.app.state.service
        result = await service.in_store(_give, service, uri, body)
        return FeedbackAnswer(**result.as_dict())

    @app.get(ROUTE, response_model=FeedbackOut, tags=["feedback"], summary="A playlist's feedback", responses=ERRORS)
    async def read_feedback(request: Request, uri: PlaylistKey) -> FeedbackOut:
        service: Service = request.app.state.service
        found = await service.in_store(lambda: get_feedback(service.store, _uri(service, uri)))
        return FeedbackOut(**found.as_dict())

    @app.delete(
        ROUTE,
        response_model=FeedbackOut,
        tags=["feedback"],
        summary="Forget a playlist's feedback (accepted tracks stay in it)",
        responses=ERRORS,
    )
    async def delete_feedback(request: Request, uri: PlaylistKey) -> FeedbackOut:
        service: Service = request.app.state.service
        cleared = await service.in_store(lambda: clear_feedback(service.store, _uri(service, uri)))
        return FeedbackOut(**cleared.as_dict())
