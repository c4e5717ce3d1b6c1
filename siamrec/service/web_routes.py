"""The web page of `siamrec serve` (`/` and its two static files), the audio of stored tracks, and the library map.

The page and its files hold no data, so they load without the API key (the page then asks for the key and
sends it on every call); everything they show comes from the API. A track's audio is found by its URI, never
by a path from the client: the file its stored payload names, opened without following symlinks, still a
regular file at exactly that path, inside the service's uploads or audio cache when it lies in the service's
folders, and audio by its first bytes (siamrec.sniff), which also gives its Content-Type.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from siamrec.errors import NotFoundError
from siamrec.names import path_from_payload
from siamrec.service.problems import error_responses
from siamrec.sniff import Container, sniff

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
PAGE_PATHS = frozenset({"/", *(f"/static/{name}" for name in STATIC_FILES)})  # open: no data in them
# The page runs only its own script and style: even a name that slipped into markup could not run code.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; media-src 'self' blob:; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {
    "wav": "audio/wav",
    "aiff": "audio/aiff",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
    "wma": "audio/x-ms-wma",
}
# Points sent to the page, drawn at random past this: the projection is fitted on them, so the map costs the same
# whatever the library's size (the whole library was 5 GB of vectors at a million tracks).
MAP_MAX_TRACKS = 5000
MAP_MAX_PLAYLISTS = 1000  # the legend: the playlists most present on the map (a platform may hold a million)
PROC_FD = Path("/proc/self/fd")
AudioUri = Annotated[str, PathParam(min_length=1, max_length=500, description="A stored track's URI.")]


class MapPoint(BaseModel):
    track_uri: str
    title: str
    artist: str
    x: float
    y: float
    playlist: int | None = Field(description="Index into `playlists` of the largest playlist holding the track.")


class MapPlaylist(BaseModel):
    playlist_uri: str
    name: str
    tracks: int


class LibraryMap(BaseModel):
    """The stored track vectors (a random 5,000 of them past that) projected to 2-D by PCA (numpy SVD: no bench
    extra needed)."""

    tracks: int = Field(description="Stored tracks with a vector (points holds at most 5,000 of them).")
    points: list[MapPoint]
    playlists: list[MapPlaylist] = Field(
        description="The playlists of the tracks shown (up to 1,000, the most present), largest first: a point's "
        "`playlist` is an index into this list."
    )


class _HeldFileResponse(FileResponse):
    """A FileResponse of a file descriptor opened and checked beforehand (read through /proc/self/fd, so a path
    swapped after the checks cannot change what is sent); the descriptor is closed however the response ends."""

    def __init__(self, fd: int, media_type: str) -> None:
        self.fd = fd
        super().__init__(PROC_FD / str(fd), media_type=media_type, stat_result=os.fstat(fd), headers=PAGE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self.fd)


def add_web_routes(app: FastAPI) -> None:
    """`/`, `/static/{name}`, `GET /tracks/{uri}/audio` and `GET /map` (the last two in the OpenAPI document)."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> FileResponse:
        if name not in STATIC_FILES:  # a fixed list: the name never becomes a path
            raise NotFoundError(f"no page file {name!r}")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers=PAGE_HEADERS)

    @app.get(
        "/tracks/{uri:uri}/audio",
        tags=["tracks"],
        summary="A stored track's audio (HTTP Range supported)",
        response_class=Response,
        responses={
            200: {"content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}}},
            206: {"description": "Partial Content (a Range request)"},
            **error_responses(401, 404, 416),
        },
    )
    async def track_audio(request: Request, uri: AudioUri) -> Response:
        service = request.app.state.service
        fd, container = await service.in_store(_open_audio, service, uri)
        return _HeldFileResponse(fd, MEDIA_TYPES.get(container.label, "application/octet-stream"))

    @app.get(
        "/map",
        response_model=LibraryMap,
        tags=["tracks"],
        summary="The library map: stored track vectors in 2-D (PCA), with their largest playlists",
        responses=error_responses(401, 503),
    )
    async def library_map(request: Request) -> LibraryMap:
        service = request.app.state.service
        return await service.in_store(_library_map, service.store)


# ---- audio ----------------------------------------------------------------------------------------------


def _open_audio(service: Any, uri: str) -> tuple[int, Container]:
    """An open descriptor of the track's stored audio file and its container, or NotFoundError."""
    stored = service.store.get_tracks([uri]).get(uri)
    if stored is None:
        raise NotFoundError(f"no track {uri!r} in the store")
    if not stored.record.path:
        raise NotFoundError(f"track {uri!r} has no stored audio file")
    path = path_from_payload(stored.record.path)
    gone = NotFoundError(f"the audio file of track {uri!r} is no longer where it was added from")
    if not path.is_absolute() or not _in_known_place(path, service):
        raise gone
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise gone from None
    try:
        container = _checked(fd, path)
        if container is None:
            raise gone
    except BaseException:
        os.close(fd)
        raise
    return fd, container


def _checked(fd: int, path: Path) -> Container | None:
    """The container of the open file when it is a regular file reached at exactly `path` (no symlink on the way)
    that opens like audio; None otherwise."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return None
    opened = os.readlink(PROC_FD / str(fd)) if PROC_FD.is_dir() else os.path.realpath(path)
    if opened != str(path):
        return None
    try:
        return sniff(PROC_FD / str(fd) if PROC_FD.is_dir() else path)
    except OSError:
        return None


def _in_known_place(path: Path, service: Any) -> bool:
    """Library files may be anywhere they were added from; inside the service's own folders only its uploads and
    audio cache hold audio (never the store's files or tokens)."""
    settings = service.config.settings
    own = [settings.home.resolve(), settings.cache_dir.resolve()]
    audio = [service.uploads, (settings.cache_dir / "audio").resolve()]
    inside = [folder for folder in own if path.is_relative_to(folder)]
    return not inside or any(path.is_relative_to(folder) for folder in audio)


# ---- map ------------------------------------------------------------------------------------------------


def top_axes(matrix: np.ndarray, count: int, spare: int = 8, rounds: int = 4, seed: int = 0) -> np.ndarray:
    """The `count` leading right singular vectors of `matrix` by randomized subspace iteration (Halko, Martinsson
    and Tropp, 2011): exact when its rank is at most count + spare, and a few products of `matrix` by a thin
    block instead of a whole SVD (5,000 × 1,296: 3-5 s for numpy's SVD)."""
    width = min(count + spare, *matrix.shape)
    block = matrix @ np.random.default_rng(seed).standard_normal((matrix.shape[1], width))
    for _ in range(rounds):
        block = matrix @ np.linalg.qr(matrix.T @ np.linalg.qr(block)[0])[0]
    _, _, right = np.linalg.svd(np.linalg.qr(block)[0].T @ matrix, full_matrices=False)
    return right[:count]


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """`[N, D]` -> `[N, 2]`: the first two principal components (signs fixed, so the map keeps its orientation)."""
    if len(vectors) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    axes = top_axes(centred, 2)
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    coords = centred @ (axes * signs[:, None]).T
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


def _map_playlists(store: Any, tracks: list[Any]) -> list[Any]:
    """The playlists the tracks shown are in (the MAP_MAX_PLAYLISTS most present among them), largest first."""
    present = Counter(uri for track in tracks for uri in track.record.playlists)
    found = store.get_playlists([uri for uri, _ in present.most_common(MAP_MAX_PLAYLISTS)], with_centroids=False)
    return sorted((record for record, _ in found.values()), key=lambda p: (-len(p.track_uris), p.name.casefold()))


def _library_map(store: Any) -> LibraryMap:
    total, tracks = store.sample_tracks(MAP_MAX_TRACKS)
    playlists = _map_playlists(store, tracks)
    index = {p.playlist_uri: i for i, p in enumerate(playlists)}
    coords = project_2d(np.stack([t.vector for t in tracks])) if tracks else np.zeros((0, 2))
    points = []
    for track, (x, y) in zip(tracks, coords.tolist(), strict=True):
        record = track.record
        held = [index[u] for u in record.playlists if u in index]
        points.append(
            MapPoint(
                track_uri=record.track_uri,
                title=record.title,
                artist=record.artist,
                x=x,
                y=y,
                playlist=min(held) if held else None,
            )
        )
    listed = [MapPlaylist(playlist_uri=p.playlist_uri, name=p.name, tracks=len(p.track_uris)) for p in playlists]
    return LibraryMap(tracks=total, points=points, playlists=listed)
