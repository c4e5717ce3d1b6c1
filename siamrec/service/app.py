"""The ASGI app: FastAPI routes that translate HTTP to the same core calls the CLI makes.

Adding a track is `receive_audio` (hashed, sniffed; work pool), a look for stored tracks made from the same bytes
(store pool), then `keep_upload` + `decode_upload` + `describe_item` + `TrackEncoder.track_vectors` unless one was
found (work pool) and `write_tracks` (store pool), as `add_audio` does; recommending is `recommend_tracks` /
`recommend_playlists`; playlists are `Store.save_playlist` / `delete_playlist`. Nothing here ranks, filters or
writes on its own.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from siamrec import __version__
from siamrec.audio_items import AudioItem, describe_item, reuse_stored
from siamrec.errors import AudioError, NotFoundError
from siamrec.library import write_tracks
from siamrec.recommend import recommend_playlists, recommend_tracks
from siamrec.service.backup import add_backup_route
from siamrec.service.config import ServiceConfig
from siamrec.service.feedback_routes import add_feedback_routes
from siamrec.service.listing import add_listing_route
from siamrec.service.middleware import Gatekeeper, Metrics, UploadGate
from siamrec.service.problems import FetchRefused, error_responses, install_handlers, problem_media_types
from siamrec.service.schemas import (
    SUB_ROUTES,
    URI_PATTERN,
    Deleted,
    Health,
    Info,
    Playlist,
    PlaylistIn,
    PlaylistResult,
    Recommendations,
    SeedsIn,
    Strategy,
    Track,
    TrackAdded,
    TrackFromUrl,
    TrackPlaylists,
    UploadFields,
)
from siamrec.service.state import Service
from siamrec.service.uploads import (
    ReceivedUpload,
    decode_upload,
    fetch_chunks,
    file_chunks,
    keep_upload,
    receive_audio,
)
from siamrec.service.web_routes import add_web_routes
from siamrec.store import PlaylistRecord, StoredTrack, TrackRecord

DESCRIPTION = """Cold-start music recommendation from audio, over the same library and store as the `siamrec` CLI.

Upload a track (`POST /tracks`) and get the playlists that suit it; ask a playlist for the new tracks that fit
it (`GET /playlists/{uri}/recommendations`). When the service is bound off-loopback every route except
`/health` needs the API key, sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`.
Errors are RFC 9457 problem documents (`application/problem+json`)."""


class UriConvertor(PathConvertor):
    """`{uri:uri}`: a URI may hold "/" (sent as %2F, which the server decodes before routing), but never ends like a
    sub-route, so /playlists/{uri}/recommendations and /playlists/{uri} each match only their own paths."""

    regex = ".+" + "".join(f"(?<!{re.escape(sub)})" for sub in SUB_ROUTES)


register_url_convertor("uri", UriConvertor())

PathUri = Annotated[str, Path(min_length=1, max_length=500, description="A URI (or, for playlists, a name).")]
NewUri = Annotated[str, Path(pattern=URI_PATTERN, min_length=3, max_length=500)]
K = Annotated[int, Query(ge=1, le=1000, description="How many results.")]
COMMON_ERRORS = (400, 401, 422, 503)
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["audio"],
                "properties": {
                    "audio": {"type": "string", "format": "binary", "description": "The audio file."},
                    **UploadFields.model_json_schema()["properties"],
                },
                "additionalProperties": False,
            }
        },
        "application/json": {"schema": TrackFromUrl.model_json_schema()},
    },
}


def create_app(config: ServiceConfig, service: Service | None = None) -> FastAPI:
    """The app for `config`; `service` (store + encoder) is opened at startup unless given, closed at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = service or Service(config)
        try:
            yield
        finally:
            app.state.service.close()

    app = FastAPI(title="siamrec", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    install_handlers(app)
    _add_routes(app, config)
    add_backup_route(app)  # POST /store/backup (siamrec.service.backup)
    add_feedback_routes(app)  # /playlists/{uri}/feedback (siamrec.service.feedback_routes)
    add_listing_route(app)  # GET /playlists, a page at a time (siamrec.service.listing)
    add_web_routes(app)  # the page at /, track audio, the map (siamrec.service.web_routes)
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_media_types(original_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(
        Gatekeeper,
        metrics=metrics,
        gate=UploadGate(config.queue_limit, config.retry_after_s, metrics),
        api_key=config.api_key,
        max_upload_bytes=config.max_upload_bytes,
        max_body_bytes=config.max_body_bytes,
        body_timeout_s=config.body_timeout_s,
        body_min_rate=config.body_min_rate,
    )
    if config.cors_origins:  # outermost: a browser's preflight carries no key and must still be answered
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["*"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["Link"],  # the next page of GET /playlists
        )
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory for `--workers N`: each worker process builds its app from SIAMREC_SERVE_CONFIG."""
    return create_app(ServiceConfig.from_environment())


def _service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


# ---- work done in the pools (core calls only) -----------------------------------------------------------


def _receive(service: Service, chunks: Iterable[bytes]) -> ReceivedUpload:
    return receive_audio(chunks, service.uploads, service.config.max_upload_bytes)


def _stored_audio(service: Service, received: ReceivedUpload) -> StoredTrack | None:
    """A stored track made from these very bytes, within this service's length limit (its vector is reused)."""
    stored = service.store.tracks_with_audio("audio_sha1", [received.sha1]).get(received.sha1)
    duration_s = stored.record.duration_s if stored else None
    return stored if duration_s is not None and duration_s <= service.config.max_duration_s else None


def _embed(
    service: Service, received: ReceivedUpload, overrides: dict[str, str], stored: StoredTrack | None
) -> tuple[TrackRecord, np.ndarray]:
    """Keep the bytes, then decode and embed them with the calls `siamrec add-track` makes; bytes a stored track
    was made from take its audio identity, length and vector, as add-track's do."""
    path, new = keep_upload(received, service.uploads)
    item = AudioItem(path, overrides={"source": "api", **overrides})
    try:
        reused = reuse_stored(item, received.sha1, stored) if stored else None
        if reused is not None:
            return reused
        windows, info = decode_upload(path, service.config.max_duration_s)
        record = describe_item(item, windows, info, received.sha1)
        vectors, problems = service.encoder.try_track_vectors([windows])
        if problems[0]:
            raise AudioError(problems[0])
    except (AudioError, OSError) as exc:
        if new:  # refused audio leaves nothing behind
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise AudioError(f"cannot read the stored upload: {exc.strerror or exc}") from exc
        raise
    return record, vectors[0]


def _store_and_suggest(service: Service, record: TrackRecord, vector: np.ndarray, k: int) -> TrackAdded:
    store = service.store
    added, _ = write_tracks(store, [record], vector[None, :])
    stored = store.get_tracks([record.track_uri], with_vectors=True)[record.track_uri]
    # The vector as stored (float16 in the embedded store), so the answer equals a later GET's for this track.
    found = recommend_playlists(store, stored.vector, k, exclude_track_uri=record.track_uri)
    return TrackAdded(created=bool(added), track=Track.of(stored), playlists=PlaylistResult.ranked(found))


def _track(service: Service, uri: str) -> Track:
    stored = service.store.get_tracks([uri], with_vectors=True).get(uri)
    if stored is None:
        raise NotFoundError(f"no track {uri!r} in the store")
    return Track.of(stored)


def _delete_track(service: Service, uri: str) -> Deleted:
    """Remove the track, and the uploaded file it came from unless another stored track came from it too."""
    stored = service.store.get_tracks([uri]).get(uri)
    removed = service.store.delete_track(uri)  # NotFoundError when absent
    upload = service.upload_of(stored.record.path if stored else None)
    if upload is not None and not service.store.tracks_at([str(upload)]):
        upload.unlink(missing_ok=True)
    return Deleted(deleted=uri, removed_from_playlists=removed)


def _playlist(service: Service, key: str) -> Playlist:
    record = service.store.find_playlist(key)
    return Playlist.of(record, len(service.store.uris_with_vectors(record.track_uris)))


def _save_playlist(service: Service, uri: str, body: PlaylistIn) -> tuple[Playlist, bool]:
    created = service.store.get_playlist(uri) is None
    record = PlaylistRecord(
        playlist_uri=uri,
        name=body.name,
        source=body.source,
        description=body.description,
        track_uris=list(dict.fromkeys(body.track_uris)),
    )
    service.store.save_playlist(record)
    return _playlist(service, uri), created


def _delete_playlist(service: Service, key: str) -> Deleted:
    uri = service.store.find_playlist(key).playlist_uri
    service.store.delete_playlist(uri)
    return Deleted(deleted=uri)


def _for_playlist(service: Service, key: str, k: int, strategy: str, include_warm: bool) -> Recommendations:
    record = service.store.find_playlist(key)
    return Recommendations.of(record, strategy, recommend_tracks(service.store, record, k, strategy, include_warm))


def _for_seeds(service: Service, body: SeedsIn) -> Recommendations:
    seeds = PlaylistRecord(playlist_uri="", name="ad-hoc seeds", track_uris=list(dict.fromkeys(body.seed_track_uris)))
    found = recommend_tracks(service.store, seeds, body.k, body.strategy, body.include_warm)
    return Recommendations.of(None, body.strategy, found)


def _playlists_for_track(service: Service, uri: str, k: int) -> TrackPlaylists:
    stored = service.store.get_tracks([uri], with_vectors=True).get(uri)
    if stored is None or stored.vector is None:
        raise NotFoundError(f"{uri!r} is not a stored track with audio")
    found = recommend_playlists(service.store, stored.vector, k, exclude_track_uri=uri)
    return TrackPlaylists(track_uri=uri, results=PlaylistResult.ranked(found))


def _info(service: Service) -> Info:
    store, config = service.store, service.config
    return Info(
        version=__version__,
        model=service.encoder.name,
        model_version=service.encoder.info.version,
        dim=service.encoder.dim,
        store="embedded" if service.embedded else "server",
        tracks=store.count_tracks(),
        cold_tracks=store.count_tracks(cold_only=True),
        playlists=store.count_playlists(),
        upload_limit_bytes=config.max_upload_bytes,
        duration_limit_s=config.max_duration_s,
        fetch_enabled=config.allow_fetch,
        metric=store.metric,
    )


# ---- routes ---------------------------------------------------------------------------------------------


async def _incoming_audio(request: Request, service: Service) -> tuple[Iterable[bytes], dict[str, str]]:
    """The audio bytes and metadata of POST /tracks: a multipart upload, or a JSON body naming a URL."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=8)
            audio = form.get("audio")
            fields = UploadFields.model_validate({k: v for k, v in form.multi_items() if k != "audio"})
            if not isinstance(audio, UploadFile):
                raise RequestValidationError([{"loc": ["body", "audio"], "msg": "an audio file part is required"}])
            return file_chunks(audio.file), _overrides(fields.model_dump())
        if content_type == "application/json":
            body = TrackFromUrl.model_validate_json(await request.body())
        else:
            raise HTTPException(415, "send the audio as multipart/form-data (file part 'audio') or JSON naming a URL")
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    if not service.config.allow_fetch:
        raise FetchRefused("URL fetching is off on this service: upload the audio instead")
    chunks = fetch_chunks(body.url, service.config.fetch_allow_networks, service.config.fetch_deadline_s)
    return chunks, _overrides(body.model_dump(exclude={"url"}))


def _overrides(fields: dict[str, Any]) -> dict[str, str]:
    return {key: value for key, value in fields.items() if value}


def _add_routes(app: FastAPI, config: ServiceConfig) -> None:  # noqa: C901 (one short function per route)
    @app.post(
        "/tracks",
        status_code=201,
        response_model=TrackAdded,
        tags=["tracks"],
        summary="Add a track (upload or URL) and get the playlists that suit it",
        responses={
            200: {"model": TrackAdded, "description": "Already stored: updated"},
            **error_responses(403, 404, 409, 413, 415, 502, *COMMON_ERRORS),
        },
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
    async def add_track(request: Request, response: Response, k: K = 10) -> TrackAdded:
        service = _service(request)
        try:
            chunks, overrides = await _incoming_audio(request, service)
            received = await service.in_work(_receive, service, chunks)
        finally:
            await request.close()  # the spooled upload goes as soon as it is received
        try:
            stored = await service.in_store(_stored_audio, service, received)
            record, vector = await service.in_work(_embed, service, received, overrides, stored)
        finally:
            received.temporary.unlink(missing_ok=True)  # gone already once kept
        added = await service.in_store(_store_and_suggest, service, record, vector, k)
        response.status_code = 201 if added.created else 200
        return added

    @app.get(
        "/tracks/{uri:uri}/playlists",
        response_model=TrackPlaylists,
        tags=["recommendations"],
        summary="The playlists that suit a stored track",
        responses=error_responses(404, *COMMON_ERRORS),
    )
    async def playlists_for_track(request: Request, uri: PathUri, k: K = 10) -> TrackPlaylists:
        return await _service(request).in_store(_playlists_for_track, _service(request), uri, k)

    @app.get("/tracks/{uri:uri}", response_model=Track, tags=["tracks"], responses=error_responses(404, *COMMON_ERRORS))
    async def get_track(request: Request, uri: PathUri) -> Track:
        return await _service(request).in_store(_track, _service(request), uri)

    @app.delete(
        "/tracks/{uri:uri}",
        response_model=Deleted,
        tags=["tracks"],
        summary="Remove a track (and the uploaded file it came from)",
        responses=error_responses(404, *COMMON_ERRORS),
    )
    async def delete_track(request: Request, uri: PathUri) -> Deleted:
        return await _service(request).in_store(_delete_track, _service(request), uri)

    @app.get(
        "/playlists/{uri:uri}/recommendations",
        response_model=Recommendations,
        tags=["recommendations"],
        summary="New tracks that fit a stored playlist",
        responses=error_responses(404, *COMMON_ERRORS),
    )
    async def recommend_for_playlist(
        request: Request, uri: PathUri, k: K = 20, strategy: Strategy = "mean", include_warm: bool = False
    ) -> Recommendations:
        service = _service(request)
        return await service.in_store(_for_playlist, service, uri, k, strategy, include_warm)

    @app.put(
        "/playlists/{uri:uri}",
        response_model=Playlist,
        status_code=200,
        tags=["playlists"],
        summary="Create or replace a playlist (name + track URIs)",
        responses={201: {"model": Playlist, "description": "Created"}, **error_responses(*COMMON_ERRORS)},
    )
    async def put_playlist(request: Request, response: Response, uri: NewUri, body: PlaylistIn) -> Playlist:
        playlist, created = await _service(request).in_store(_save_playlist, _service(request), uri, body)
        response.status_code = 201 if created else 200
        return playlist

    @app.get(
        "/playlists/{uri:uri}",
        response_model=Playlist,
        tags=["playlists"],
        responses=error_responses(404, *COMMON_ERRORS),
    )
    async def get_playlist(request: Request, uri: PathUri) -> Playlist:
        return await _service(request).in_store(_playlist, _service(request), uri)

    @app.delete(
        "/playlists/{uri:uri}",
        response_model=Deleted,
        tags=["playlists"],
        responses=error_responses(404, *COMMON_ERRORS),
    )
    async def delete_playlist(request: Request, uri: PathUri) -> Deleted:
        return await _service(request).in_store(_delete_playlist, _service(request), uri)

    @app.post(
        "/recommendations",
        response_model=Recommendations,
        tags=["recommendations"],
        summary="New tracks that fit an ad-hoc list of seed tracks",
        responses=error_responses(404, *COMMON_ERRORS),
    )
    async def recommend_for_seeds(request: Request, body: SeedsIn) -> Recommendations:
        return await _service(request).in_store(_for_seeds, _service(request), body)

    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness (no API key needed)")
    async def health() -> Health:
        return Health(status="ok")

    @app.get("/info", response_model=Info, tags=["service"], responses=error_responses(*COMMON_ERRORS))
    async def info(request: Request) -> Info:
        return await _service(request).in_store(_info, _service(request))

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["service"],
        summary="Prometheus metrics: request counts and latency histograms",
        responses={
            200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
            **error_responses(401),
        },
    )
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
