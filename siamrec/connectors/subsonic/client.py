"""The Subsonic API client: one user's session with one server, and the URIs of its songs and playlists.

A thin client over requests (the API is a dozen GET calls; the maintained wrappers on PyPI add nothing we
need and hide the HTTP errors we must explain). Authentication is the 1.13+ token (md5(password + salt), a
fresh salt per client); servers without tokens (Supysonic, LDAP users) answer error 41 (or 10 on old
servers) and the client falls back to the `enc:`-hex password form. The password is never logged, printed
or stored: error messages are built from the API's own error text and the URL without parameters.

URIs: `subsonic:<server id>:track:<song id>` and `subsonic:<server id>:playlist:<playlist id>`, where the
server id is the server's host and port (and path), so two servers never share a track.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from siamrec.errors import ConnectorError

SOURCE = "subsonic"
PASSWORD_ENV = "SIAMREC_SUBSONIC_PASSWORD"
API_VERSION = "1.16.1"
CLIENT_NAME = "siamrec"
SONGS_PAGE = 500
# Formats the decoder reads as they are; anything else is asked for as mp3 (`stream?format=mp3`).
DECODABLE = frozenset({"mp3", "flac", "ogg", "oga", "opus", "wav", "aif", "aiff"})
WRONG_CREDENTIALS = 40
NO_TOKEN_AUTH = (41, 10)  # 41: tokens not supported; 10: a pre-1.13 server missing the `p` it expects
NOT_FOUND = 70
_URI = re.compile(r"^subsonic:([^:]+):(track|playlist):(.+)$")


def server_id(url: str) -> str:
    """The server's part of every URI: host, port and path, lowercased, with anything unusual as '-'."""
    parts = urlparse(url)
    readable = f"{parts.hostname or ''}{'-' + str(parts.port) if parts.port else ''}{parts.path.rstrip('/')}"
    return re.sub(r"[^a-z0-9.-]+", "-", readable.lower()).strip("-") or "server"


def track_uri(server: str, song_id: str) -> str:
    return f"subsonic:{server}:track:{song_id}"


def playlist_uri(server: str, playlist: str) -> str:
    return f"subsonic:{server}:playlist:{playlist}"


def parse_uri(uri: str) -> tuple[str, str, str] | None:
    """(server id, 'track' or 'playlist', id) of a Subsonic URI, else None."""
    match = _URI.match(uri)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def password_from_env_or_prompt(prompt: Callable[[str], str]) -> str:
    """SIAMREC_SUBSONIC_PASSWORD, else the prompt (never a flag: flags show in `ps` and shell history)."""
    return os.environ.get(PASSWORD_ENV) or prompt("Subsonic password")


class ServerGone(ConnectorError):
    """The server stopped answering: the sync stops (what is stored stays) and the next run continues."""


class SongUnavailable(ConnectorError):
    """One song cannot be streamed (missing file, refused format): that song is skipped, the rest go on."""


@dataclass(frozen=True)
class Song:
    """A library song as the API describes it; `version` changes when the server's file does."""

    id: str
    title: str
    artist: str
    album: str
    duration_s: float | None
    suffix: str
    version: str

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Song:
        duration = entry.get("duration")
        return cls(
            id=str(entry["id"]),
            title=str(entry.get("title") or ""),
            artist=str(entry.get("artist") or ""),
            album=str(entry.get("album") or ""),
            duration_s=float(duration) if isinstance(duration, int | float) and duration > 0 else None,
            suffix=str(entry.get("suffix") or "").lower(),
            version=f"{entry.get('size', '')}@{entry.get('changed') or entry.get('created') or ''}",
        )


class SubsonicClient:
    """One user's session with one server: JSON calls, downloads, playlist writes; errors are one line."""

    def __init__(self, url: str, user: str, password: str, timeout_s: float = 30.0) -> None:
        if urlparse(url).scheme not in ("http", "https") or not urlparse(url).hostname:
            raise ConnectorError(f"--subsonic {url!r}: give the server's address, like https://music.example.org")
        self.url = url.rstrip("/")
        self.user = user
        self.server = server_id(url)
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self._password = password
        self._token_auth = True
        self._checked = False

    def _auth(self) -> dict[str, str]:
        if self._token_auth:
            salt = secrets.token_hex(8)
            token = hashlib.md5((self._password + salt).encode()).hexdigest()
            return {"u": self.user, "t": token, "s": salt}
        return {"u": self.user, "p": "enc:" + self._password.encode().hex()}

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, **self._auth(), "v": API_VERSION, "c": CLIENT_NAME, "f": "json"}

    def endpoint(self, method: str) -> str:
        return f"{self.url}/rest/{method}"

    def _get(self, method: str, params: dict[str, Any], stream: bool = False) -> requests.Response:
        """One GET; network failures become one line that never repeats the URL's parameters."""
        try:
            return self.session.get(self.endpoint(method), params=self._params(params), timeout=self.timeout_s,
                                    stream=stream)  # fmt: skip
        except requests.exceptions.SSLError as exc:
            raise ConnectorError(
                f"TLS error talking to {self.url}: {_tls_reason(exc)} (a self-signed certificate? point "
                "REQUESTS_CA_BUNDLE at its CA file)"
            ) from None
        except requests.exceptions.Timeout:
            raise ServerGone(
                f"the Subsonic server at {self.url} did not answer within {self.timeout_s:.0f} s"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ServerGone(f"cannot reach the Subsonic server at {self.url} ({_network_reason(exc)})") from None

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The `subsonic-response` body of a JSON call; API errors raise ConnectorError with the server's text."""
        if not self._checked and method != "ping":
            self.ping()
        body = self._json(method, self._get(method, params))
        error = body.get("error") or {}
        if body.get("status") == "ok":
            return body
        code, message = error.get("code"), str(error.get("message") or "no message")
        if code in NO_TOKEN_AUTH and self._token_auth:
            self._token_auth = False
            return self.call(method, **params)
        if code == WRONG_CREDENTIALS:
            raise ConnectorError(f"{self.url} refused user {self.user!r}: wrong username or password")
        if code == NOT_FOUND:
            raise SongUnavailable(f"not found on the server ({message})")
        raise ConnectorError(f"{self.url} answered {method} with error {code}: {message}")

    def _json(self, method: str, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json().get("subsonic-response")
        except (ValueError, AttributeError):
            body = None
        if not isinstance(body, dict):
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise ConnectorError(
                f"{self.url} is not a Subsonic API server ({method} answered HTTP {response.status_code}, {kind}); "
                "give the address the listening apps use"
            )
        return body

    def ping(self) -> None:
        """Check the address and the credentials once, before anything else."""
        self._checked = True
        self.call("ping")

    # ---- reading -------------------------------------------------------------------------------------

    def playlists(self) -> list[dict[str, Any]]:
        return list((self.call("getPlaylists").get("playlists") or {}).get("playlist") or [])

    def playlist(self, playlist: str) -> dict[str, Any]:
        return self.call("getPlaylist", id=playlist).get("playlist") or {}

    def songs(self, page: int = SONGS_PAGE) -> Iterator[dict[str, Any]]:
        """Every song of the library, a page at a time (search3 with an empty query, as the apps do)."""
        offset = 0
        while True:
            found = self.call("search3", query="", songCount=page, songOffset=offset, artistCount=0, albumCount=0)
            songs = (found.get("searchResult3") or {}).get("song") or []
            yield from songs
            if len(songs) < page:
                return
            offset += len(songs)

    def download(self, song: Song, folder: Path) -> Path:
        """The song's audio in `folder`: the original file when the decoder reads it, else an mp3 stream."""
        if song.suffix in DECODABLE:
            method, params, suffix = "download", {"id": song.id}, song.suffix
        else:
            method, params, suffix = "stream", {"id": song.id, "format": "mp3"}, "mp3"
        response = self._get(method, params, stream=True)
        kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        if response.status_code != 200 or kind in ("application/json", "text/xml", "application/xml", "text/html"):
            reason = self._stream_error(method, response)
            raise SongUnavailable(f"the server cannot stream it ({reason})")
        target = folder / f"download.{suffix}"
        try:
            with open(target, "wb") as handle:
                for block in response.iter_content(1 << 16):
                    handle.write(block)
        except requests.exceptions.RequestException as exc:
            raise ServerGone(
                f"the Subsonic server at {self.url} stopped mid-download ({_network_reason(exc)})"
            ) from None
        return target

    def _stream_error(self, method: str, response: requests.Response) -> str:
        try:
            self._json(method, response)
            error = response.json()["subsonic-response"].get("error") or {}
            return str(error.get("message") or f"HTTP {response.status_code}")
        except (ConnectorError, ValueError, KeyError):
            return f"HTTP {response.status_code}"

    # ---- writing -------------------------------------------------------------------------------------

    def own_playlists(self) -> list[dict[str, Any]]:
        """Playlists this user owns (an admin sees and may edit others': siamrec never touches those)."""
        return [p for p in self.playlists() if p.get("owner") in (None, self.user)]

    def create_playlist(self, name: str, song_ids: list[str]) -> str:
        """Create a playlist and return its id (pre-1.14 servers return nothing: find the new one by name)."""
        before = {str(p["id"]) for p in self.own_playlists() if p.get("name") == name}
        created = self.call("createPlaylist", name=name, songId=song_ids).get("playlist")
        if isinstance(created, dict) and created.get("id"):
            return str(created["id"])
        new = [str(p["id"]) for p in self.own_playlists() if p.get("name") == name and str(p["id"]) not in before]
        if not new:
            raise ConnectorError(f"{self.url} did not create playlist {name!r}")
        return new[-1]

    def replace_songs(self, playlist: str, song_ids: list[str]) -> None:
        """Set a playlist's songs (createPlaylist with playlistId replaces them, per the API)."""
        self.call("createPlaylist", playlistId=playlist, songId=song_ids)

    def set_comment(self, playlist: str, comment: str) -> None:
        self.call("updatePlaylist", playlistId=playlist, comment=comment)


def _network_reason(exc: requests.exceptions.RequestException) -> str:
    """Why a connection failed, without the URL and its auth parameters that requests puts in messages."""
    text = repr(exc.__context__ or exc)
    for marker, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("RemoteDisconnected", "the server closed the connection"),
        ("Connection reset", "the connection was reset"),
        ("Read timed out", "timed out"),
    ):
        if marker in text:
            return reason
    return type(exc).__name__


def _tls_reason(exc: requests.exceptions.SSLError) -> str:
    text = str(exc)
    match = re.search(r"\[SSL[^\]]*\] ([^(')]+)", text)
    return match.group(1).strip() if match else "the TLS handshake failed"
