"""Local HTTP servers on 127.0.0.1 that stand in for the internet: a file server and a Spotify Web API.

Both run in a daemon thread, count what they were asked, and can be told to misbehave (a queued status
for a path, an HTML page where audio should be), so connectors are tested over real HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """yt-dlp's sniffing request hangs up early: broken pipes are normal here, not test failures."""


class LocalServer:
    """A ThreadingHTTPServer on a free 127.0.0.1 port whose requests go to `self.respond`."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._serve(self, "GET")

            def do_POST(self) -> None:
                owner._serve(self, "POST")

            def do_PUT(self) -> None:
                owner._serve(self, "PUT")

            def log_message(self, *args: Any) -> None: ...

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self.lock:
            self.log.append((method, handler.path))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        response = self.respond(method, handler.path, dict(handler.headers.items()), body)
        try:
            handler.send_response(response.status)
            for key, value in response.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            if method != "HEAD":
                handler.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        raise NotImplementedError


AUDIO_TYPES = {
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
}


class FileServer(LocalServer):
    """Serves the files of a folder; `hits` counts GETs per path; `routes` replace what a path returns."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.hits: Counter[str] = Counter()
        self.routes: dict[str, Response] = {}

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        name = urlparse(path).path.lstrip("/")
        with self.lock:
            self.hits[name] += 1
        if name in self.routes:
            return self.routes[name]
        file = self.root / name
        if not name or ".." in name or not file.is_file():
            return Response(404, b"<html><body>404 Not Found</body></html>", {"Content-Type": "text/html"})
        kind = AUDIO_TYPES.get(file.suffix.lower(), "application/octet-stream")
        return Response(200, file.read_bytes(), {"Content-Type": kind})


# ---- Spotify ------------------------------------------------------------------------------------------


def spotify_id(seed: str) -> str:
    """A stable 22-character base62 ID, like Spotify's."""
    number = int(hashlib.sha1(seed.encode()).hexdigest(), 16)
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "".join(chars)


def fake_track(artist: str, title: str, duration_ms: int = 180_000, album: str = "An Album") -> dict[str, Any]:
    track_id = spotify_id(f"{artist}/{title}")
    return {
        "type": "track",
        "id": track_id,
        "uri": f"spotify:track:{track_id}",
        "name": title,
        "artists": [{"name": name.strip()} for name in artist.split(",")],
        "album": {"name": album},
        "duration_ms": duration_ms,
    }


@dataclass
class FakePlaylist:
    name: str
    tracks: list[dict[str, Any] | None]
    followers: int = 0
    item_key: str = "item"  # "track" before Spotify's 2026 rename
    id: str = ""
    owner: str = "owner"
    description: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or spotify_id(f"playlist/{self.name}")


class SpotifyServer(LocalServer):
    """Answers like the Spotify Web API: /api/token (client credentials) and the /v1 playlist endpoints.

    With a user token it also writes, like the API for `playlist-modify-private`: POST /me/playlists creates
    a playlist owned by `me_id`, PUT /playlists/{id} changes its details and PUT /playlists/{id}/items
    replaces its tracks; writing someone else's playlist is a 403.

    `faults[path]` holds responses served (and consumed) before the real answer; `page_cap` lowers the page
    size so small fixtures still paginate; tokens not issued here (or all, with `reject_tokens`) get a 401.
    """

    def __init__(
        self,
        playlists: list[FakePlaylist],
        users: dict[str, list[str]] | None = None,
        client_id: str = "test-client",
        client_secret: str = "test-secret",
        page_cap: int = 100,
    ) -> None:
        super().__init__()
        self.playlists = {p.id: p for p in playlists}
        self.users = users or {}
        self.credentials = (client_id, client_secret)
        self.page_cap = page_cap
        self.faults: dict[str, list[Response]] = {}
        self.tokens: set[str] = set()
        self.user_tokens: set[str] = set()
        self.reject_tokens = False
        self.me_id = "me-user"

    def env(self) -> dict[str, str]:
        return {
            "SPOTIPY_CLIENT_ID": self.credentials[0],
            "SPOTIPY_CLIENT_SECRET": self.credentials[1],
            "SIAMREC_SPOTIFY_API": f"{self.base}/v1/",
            "SIAMREC_SPOTIFY_TOKEN_URL": f"{self.base}/api/token",
        }

    def requests_to(self, prefix: str) -> list[str]:
        return [path for _, path in self.log if path.startswith(prefix)]

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        url = urlparse(path)
        queued = self.faults.get(url.path)
        if queued:
            return queued.pop(0)
        if url.path == "/api/token" and method == "POST":
            return self._token(headers, body)
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if self.reject_tokens or token not in self.tokens | self.user_tokens:
            return _error(401, "Invalid access token")
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if method in ("POST", "PUT"):
            if token not in self.user_tokens:
                return _error(401, "Only valid bearer authentication supported")
            return self._write(method, url.path.removeprefix("/v1"), json.loads(body or b"{}"))
        return self._api(url.path.removeprefix("/v1"), query, user=token in self.user_tokens)

    def _write(self, method: str, path: str, payload: dict[str, Any]) -> Response:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["me", "playlists"]:
            playlist = FakePlaylist(payload["name"], [], owner=self.me_id, description=payload.get("description", ""),
                                    id=spotify_id(f"created/{len(self.playlists)}"))  # fmt: skip
            self.playlists[playlist.id] = playlist
            self.users.setdefault("me", []).append(playlist.id)
            return Response.json(201, _meta(playlist))
        playlist = self.playlists.get(parts[1]) if parts[:1] == ["playlists"] and len(parts) > 1 else None
        if method != "PUT" or playlist is None:
            return _error(404, "Resource not found")
        if playlist.owner != self.me_id:
            return _error(403, "You cannot modify a playlist you do not own")
        if parts[2:] == ["items"]:
            playlist.tracks = [
                {"type": "track", "uri": uri, "id": uri.rsplit(":", 1)[1], "name": uri} for uri in payload["uris"]
            ]
            return Response.json(200, {"snapshot_id": str(len(self.log))})
        playlist.description = payload.get("description", playlist.description)
        return Response(200)

    def _token(self, headers: dict[str, str], body: bytes) -> Response:
        basic = headers.get("Authorization", "").removeprefix("Basic ")
        try:
            client_id, secret = base64.b64decode(basic).decode().split(":", 1)
        except ValueError:
            client_id, secret = "", ""
        if (client_id, secret) != self.credentials:
            return Response.json(400, {"error": "invalid_client", "error_description": "Invalid client"})
        if b"grant_type=authorization_code" in body:  # the user's login: the code the test's "browser" got
            if b"code=good-code" not in body:
                return Response.json(400, {"error": "invalid_grant", "error_description": "Invalid code"})
            token = f"user-token-{len(self.user_tokens) + 1}"
            self.user_tokens.add(token)
            scope = "playlist-read-private playlist-read-collaborative"
            return Response.json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                                       "refresh_token": "refresh", "scope": scope})  # fmt: skip
        if b"grant_type=client_credentials" not in body:
            return Response.json(400, {"error": "unsupported_grant_type"})
        token = f"token-{len(self.tokens) + 1}"
        self.tokens.add(token)
        return Response.json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _api(self, path: str, query: dict[str, str], user: bool) -> Response:
        parts = path.strip("/").split("/")
        if parts[:1] == ["playlists"] and len(parts) in (2, 3):
            playlist = self.playlists.get(parts[1])
            if playlist is None:
                return _error(404, "Resource not found")
            return self._items(playlist, query) if len(parts) == 3 else Response.json(200, _meta(playlist))
        if parts[:1] == ["users"] and parts[2:] == ["playlists"]:
            if parts[1] not in self.users:
                return _error(404, "Resource not found")
            return self._page(path, query, [_meta(self.playlists[i]) for i in self.users[parts[1]]])
        if parts == ["me"] and user:
            return Response.json(200, {"id": self.me_id, "type": "user"})
        if parts == ["me", "playlists"]:
            if not user:
                return _error(401, "Only valid bearer authentication supported")
            return self._page(path, query, [_meta(self.playlists[i]) for i in self.users.get("me", [])])
        return _error(404, "Service not found")

    def _items(self, playlist: FakePlaylist, query: dict[str, str]) -> Response:
        items = [{"added_at": "2026-01-01T00:00:00Z", "is_local": False, playlist.item_key: t} for t in playlist.tracks]
        return self._page(f"/playlists/{playlist.id}/items", query, items)

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> Response:
        offset = int(query.get("offset", 0))
        limit = min(int(query.get("limit", 20)), self.page_cap)
        following = offset + limit
        more = following < len(items)
        next_url = f"{self.base}/v1{path}?{urlencode({'offset': following, 'limit': limit})}" if more else None
        page = {
            "href": f"{self.base}/v1{path}",
            "items": items[offset:following],
            "limit": limit,
            "next": next_url,
            "offset": offset,
            "previous": None,
            "total": len(items),
        }
        return Response.json(200, page)


def _meta(playlist: FakePlaylist) -> dict[str, Any]:
    return {
        "id": playlist.id,
        "uri": f"spotify:playlist:{playlist.id}",
        "name": playlist.name,
        "description": playlist.description or f"{playlist.name}, for tests",
        "followers": {"href": None, "total": playlist.followers},
        "owner": {"id": playlist.owner},
        "items": {"total": len(playlist.tracks)},
    }


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"error": {"status": status, "message": message}})


# ---- the Million Playlist Dataset, as its zip unpacks ---------------------------------------------------


def mpd_track(uri: str, title: str, artist: str, duration_ms: int = 200_000, pos: int = 0) -> dict[str, Any]:
    """A track entry exactly as the dump writes it."""
    return {
        "pos": pos,
        "artist_name": artist,
        "track_uri": uri,
        "artist_uri": f"spotify:artist:{spotify_id(artist)}",
        "track_name": title,
        "album_uri": f"spotify:album:{spotify_id(artist + '/album')}",
        "duration_ms": duration_ms,
        "album_name": f"{artist} album",
    }


def mpd_playlist(pid: int, name: str, tracks: list[dict[str, Any]], followers: int = 1) -> dict[str, Any]:
    """A playlist entry exactly as the dump writes it (positions renumbered)."""
    tracks = [{**track, "pos": pos} for pos, track in enumerate(tracks)]
    return {
        "name": name,
        "collaborative": "false",
        "pid": pid,
        "modified_at": 1493424000,
        "num_tracks": len(tracks),
        "num_albums": len({t["album_uri"] for t in tracks}),
        "num_followers": followers,
        "tracks": tracks,
        "num_edits": 3,
        "duration_ms": sum(t["duration_ms"] for t in tracks),
        "num_artists": len({t["artist_uri"] for t in tracks}),
    }


def write_mpd_slices(folder: Path, playlists: list[dict[str, Any]], per_slice: int) -> list[Path]:
    """Slice files `data/mpd.slice.<first>-<last>.json` holding consecutive pids, as in the real dump."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    ordered = sorted(playlists, key=lambda p: p["pid"])
    paths = []
    for start in range(0, len(ordered), per_slice):
        chunk = ordered[start : start + per_slice]
        label = f"{chunk[0]['pid']}-{chunk[0]['pid'] + per_slice - 1}"
        info = {"generated_on": "2017-12-03 08:41:42.057563", "slice": label, "version": "v1"}
        path = data / f"mpd.slice.{label}.json"
        path.write_text(json.dumps({"info": info, "playlists": chunk}, indent=2))
        paths.append(path)
    return paths
