"""The Subsonic API client: one user's session with one server, and the URIs of its songs and playlists.

A thin client over requests (the API is a dozen GET calls; the maintained wrappers on PyPI add nothing we
need and hide the HTTP errors we must explain). Authentication is the 1.13+ token (md5(password + salt), a
fresh salt per request); servers without tokens (Supysonic, LDAP users) answer error 41 (or 10 on old
servers) and the client falls back to the `enc:`-hex password form. The password is never logged, printed
or stored: error messages are built from the API's own error text and the URL without parameters, and
redacted (a server may echo the query, token and salt or hex password included).

The server is not trusted: every call has an overall deadline and a size cap (connectors.bounded), every
answer is checked against the schema (subsonic.schema) before it is read, a song's download stops at a cap
from its declared size and duration, and paging the library stops when pages repeat or pass a cap.

URIs: `subsonic:<server id>:track:<song id>` and `subsonic:<server id>:playlist:<playlist id>`, where the
server id is the server's host and port (and path), so two servers never share a track.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from pydantic import BaseModel, ValidationError

from siamrec.connectors.base import Problem
from siamrec.connectors.bounded import Limits, TooLarge, bounded_session, env_number, read_capped, write_capped
from siamrec.connectors.subsonic.schema import (
    ApiError,
    Envelope,
    PlaylistEntry,
    SongEntry,
    first_error,
    listed,
    section,
)
from siamrec.deadline import DeadlinePassed, deadline
from siamrec.errors import ConnectorError
from siamrec.redact import one_line, redact, register_secret

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
MAX_SONGS_ENV = "SIAMREC_SUBSONIC_MAX_SONGS"
MAX_SONGS = 1_000_000  # the most library songs read from one server (a server that pages forever stops here)
MiB = 1 << 20
# A download's cap: its declared size, or its duration at the highest rate its format can take, with a margin.
SIZE_MARGIN = 1.25
MARGIN_BYTES = 1 * MiB
ORIGINAL_BYTES_PER_S = 192_000 * 2 * 4  # 192 kHz stereo 32-bit PCM: more than any real file
STREAM_BYTES_PER_S = 320_000 // 8  # an mp3 stream at 320 kbit/s, the most a server transcodes to
JSON_TYPES = ("application/json", "text/xml", "application/xml", "text/html")
M = TypeVar("M", bound=BaseModel)
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
    """One song cannot be streamed (missing file, refused format, too big, too slow): skipped, the rest go on."""


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
    size: int | None = None

    @classmethod
    def of(cls, entry: SongEntry) -> Song:
        return cls(
            id=entry.id,
            title=entry.title,
            artist=entry.artist,
            album=entry.album,
            duration_s=entry.duration,
            suffix=entry.suffix.lower(),
            version=f"{'' if entry.size is None else entry.size}@{entry.changed or entry.created}",
            size=entry.size,
        )

    @property
    def streamed(self) -> bool:
        """Asked for as an mp3 stream (the decoder does not read the original's format)."""
        return self.suffix not in DECODABLE

    def max_bytes(self, absolute: int) -> int:
        """The most bytes its download may have: from its declared size and duration with a margin, and `absolute`."""
        bounds = [absolute]
        if self.size is not None and not self.streamed:
            bounds.append(int(self.size * SIZE_MARGIN) + MARGIN_BYTES)
        if self.duration_s is not None:
            rate = STREAM_BYTES_PER_S if self.streamed else ORIGINAL_BYTES_PER_S
            bounds.append(int(self.duration_s * rate * SIZE_MARGIN) + MARGIN_BYTES)
        return min(bounds)


class SubsonicClient:
    """One user's session with one server: JSON calls, downloads, playlist writes; errors are one line.

    Items of an answer that do not fit the schema are skipped and listed in `problems`.
    """

    def __init__(self, url: str, user: str, password: str, limits: Limits | None = None) -> None:
        if urlparse(url).scheme not in ("http", "https") or not urlparse(url).hostname:
            raise ConnectorError(
                f"--subsonic {one_line(url)!r}: give the server's address, like https://music.example.org"
            )
        register_secret(password)
        self.url = url.rstrip("/")
        self.shown = redact(self.url)  # the address as messages show it (no user:password@, no key=)
        self.user = user
        self.server = server_id(url)
        self.limits = limits or Limits.from_env()
        self.max_songs = int(env_number(MAX_SONGS_ENV, MAX_SONGS))
        self.session = bounded_session(self.limits.response_bytes)
        self.problems: list[Problem] = []
        self._password = password
        self._token_auth = True
        self._checked = False
        self._sent: tuple[str, ...] = ()  # the last request's token and salt: never shown, whatever echoes them

    def _auth(self) -> dict[str, str]:
        if self._token_auth:
            salt = secrets.token_hex(8)
            token = hashlib.md5((self._password + salt).encode()).hexdigest()
            self._sent = (token, salt)
            return {"u": self.user, "t": token, "s": salt}
        return {"u": self.user, "p": "enc:" + self._password.encode().hex()}

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, **self._auth(), "v": API_VERSION, "c": CLIENT_NAME, "f": "json"}

    def endpoint(self, method: str) -> str:
        return f"{self.url}/rest/{method}"

    def _text(self, text: object) -> str:
        """Server text for a message: one short line without the credentials this client sent."""
        return one_line(text, *self._sent)

    def _send(self, method: str, params: dict[str, Any], read_timeout: float) -> requests.Response:
        """One GET, its body left to stream; a network failure is one line that never repeats the URL's parameters."""
        try:
            return self.session.get(self.endpoint(method), params=self._params(params), stream=True,
                                    timeout=(read_timeout, read_timeout))  # fmt: skip
        except requests.exceptions.SSLError as exc:
            raise ConnectorError(
                f"TLS error talking to {self.shown}: {_tls_reason(exc)} (a self-signed certificate? point "
                "REQUESTS_CA_BUNDLE at its CA file)"
            ) from None
        except requests.exceptions.Timeout:
            raise ServerGone(
                f"the Subsonic server at {self.shown} did not answer within {read_timeout:.0f} s"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ServerGone(f"cannot reach the Subsonic server at {self.shown} ({_network_reason(exc)})") from None

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The `subsonic-response` of one call, read whole within the call deadline and the answer cap."""
        try:
            with deadline(self.limits.call_s, f"the Subsonic server at {self.shown} ({method})") as bound:
                response = self._send(method, params, bound.read_timeout)
                data = read_capped(response, self.limits.response_bytes)
        except DeadlinePassed as exc:
            raise ServerGone(str(exc)) from None
        except TooLarge as exc:
            raise ConnectorError(f"{self.shown} answered {method} with too much: {exc}") from None
        except requests.exceptions.RequestException as exc:
            raise ServerGone(
                f"the Subsonic server at {self.shown} stopped mid-answer ({_network_reason(exc)})"
            ) from None
        return self._json(method, response, data)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The `subsonic-response` body of a JSON call; API errors raise ConnectorError with the server's text."""
        if not self._checked and method != "ping":
            self.ping()
        body = self._answer(method, params)
        envelope = self._envelope(method, body)
        if envelope.status == "ok":
            return body
        error = envelope.error or ApiError()
        code, message = error.code, self._text(error.message or "no message")
        if code in NO_TOKEN_AUTH and self._token_auth:
            self._token_auth = False
            return self.call(method, **params)
        if code == WRONG_CREDENTIALS:
            raise ConnectorError(f"{self.shown} refused user {one_line(self.user)!r}: wrong username or password")
        if code == NOT_FOUND:
            raise SongUnavailable(f"not found on the server ({message})")
        raise ConnectorError(f"{self.shown} answered {method} with error {code}: {message}")

    def _envelope(self, method: str, body: dict[str, Any]) -> Envelope:
        try:
            return Envelope.model_validate(body)
        except ValidationError as exc:
            raise ConnectorError(
                f"{self.shown} answered {method} with a malformed response ({first_error(exc)})"
            ) from None

    def _json(self, method: str, response: requests.Response, data: bytes) -> dict[str, Any]:
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            document = None
        body = document.get("subsonic-response") if isinstance(document, dict) else None
        if not isinstance(body, dict):
            kind = self._text(response.headers.get("Content-Type", "no content type").split(";")[0])
            raise ConnectorError(
                f"{self.shown} is not a Subsonic API server ({method} answered HTTP {response.status_code}, {kind}); "
                "give the address the listening apps use"
            )
        return body

    def ping(self) -> None:
        """Check the address and the credentials once, before anything else."""
        self._checked = True
        self.call("ping")

    # ---- reading -------------------------------------------------------------------------------------

    def _items(self, method: str, body: dict[str, Any], outer: str, inner: str, model: type[M]) -> tuple[list[M], int]:
        """The readable items of `body[outer][inner]` and how many it listed; broken items are a Problem, a broken
        frame is one line."""
        try:
            items, broken = listed(section(body, outer).get(inner), model)
        except ValueError as exc:
            raise ConnectorError(f"{self.shown} answered {method} with a malformed response ({exc})") from None
        if broken:
            kind = "songs" if model is SongEntry else "playlists"
            self.problems.append(Problem(f"Subsonic {method}", f"{broken} unreadable {kind} skipped (not a {kind[:-1]} "
                                         "with an id)"))  # fmt: skip
        return items, len(items) + broken

    def playlists(self) -> list[PlaylistEntry]:
        return self._items("getPlaylists", self.call("getPlaylists"), "playlists", "playlist", PlaylistEntry)[0]

    def playlist(self, playlist: str) -> tuple[PlaylistEntry, list[SongEntry]]:
        """A playlist's name and comment, and its readable songs."""
        body = self.call("getPlaylist", id=playlist)
        try:
            raw = section(body, "playlist")
        except ValueError as exc:
            raise ConnectorError(f"{self.shown} answered getPlaylist with a malformed response ({exc})") from None
        info = PlaylistEntry.model_validate({**raw, "id": playlist})
        return info, self._items("getPlaylist", body, "playlist", "entry", SongEntry)[0]

    def songs(self, page: int = SONGS_PAGE) -> Iterator[SongEntry]:
        """Every song of the library, a page at a time (search3 with an empty query, as the apps do).

        Paging stops, with a Problem, when a page brings no song not read before (a server that ignores the
        offset) or the pages have listed `max_songs` entries.
        """
        seen: set[str] = set()
        offset = 0
        while True:
            found = self.call("search3", query="", songCount=page, songOffset=offset, artistCount=0, albumCount=0)
            songs, count = self._items("search3", found, "searchResult3", "song", SongEntry)
            new = list({song.id: song for song in songs if song.id not in seen}.values())
            if songs and not new:
                self._stop_paging(f"the server repeats its pages (offset {offset} gave only songs already read)")
                return
            new = new[: max(0, self.max_songs - len(seen))]
            seen.update(song.id for song in new)
            yield from new
            offset += count
            if count < page:
                return
            if offset >= self.max_songs:
                self._stop_paging(f"the library passes {self.max_songs} songs, the most read from one server "
                                  f"(set {MAX_SONGS_ENV} for more)")  # fmt: skip
                return

    def _stop_paging(self, why: str) -> None:
        self.problems.append(Problem("Subsonic library", f"{why}: stopped; the songs read so far are kept"))

    def download(self, song: Song, folder: Path) -> Path:
        """The song's audio in `folder`: the original file when the decoder reads it, else an mp3 stream.

        Within the download deadline and the song's size cap, or SongUnavailable (that song is skipped).
        """
        if song.streamed:
            method, params, suffix = "stream", {"id": song.id, "format": "mp3"}, "mp3"
        else:
            method, params, suffix = "download", {"id": song.id}, song.suffix
        target = folder / f"download.{suffix}"
        try:
            with deadline(self.limits.download_s, "the download") as bound:
                response = self._send(method, params, bound.read_timeout)
                kind = response.headers.get("Content-Type", "").split(";")[0].strip()
                if response.status_code != 200 or kind in JSON_TYPES:
                    raise SongUnavailable(f"the server cannot stream it ({self._stream_error(method, response)})")
                with open(target, "wb") as handle:
                    write_capped(response, handle, song.max_bytes(self.limits.song_bytes))
        except (DeadlinePassed, TooLarge) as exc:
            raise SongUnavailable(str(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise ServerGone(
                f"the Subsonic server at {self.shown} stopped mid-download ({_network_reason(exc)})"
            ) from None
        return target

    def _stream_error(self, method: str, response: requests.Response) -> str:
        """Why a download was refused, from the server's error (one short redacted line) or the HTTP status."""
        try:
            body = self._json(method, response, read_capped(response, self.limits.response_bytes))
            error = self._envelope(method, body).error
        except (ConnectorError, requests.exceptions.RequestException):
            error = None
        return self._text(error.message) if error and error.message else f"HTTP {response.status_code}"

    # ---- writing -------------------------------------------------------------------------------------

    def own_playlists(self) -> list[PlaylistEntry]:
        """Playlists this user owns (an admin sees and may edit others': siamrec never touches those)."""
        return [p for p in self.playlists() if p.owner in (None, self.user)]

    def create_playlist(self, name: str, song_ids: list[str]) -> str:
        """Create a playlist and return its id (pre-1.14 servers return nothing: find the new one by name)."""
        before = {p.id for p in self.own_playlists() if p.name == name}
        created = self.call("createPlaylist", name=name, songId=song_ids).get("playlist")
        try:
            return PlaylistEntry.model_validate(created).id
        except ValidationError:
            pass
        new = [p.id for p in self.own_playlists() if p.name == name and p.id not in before]
        if not new:
            raise ConnectorError(f"{self.shown} did not create playlist {one_line(name)!r}")
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
