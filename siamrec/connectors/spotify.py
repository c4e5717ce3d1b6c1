"""Spotify Web API playlists through spotipy: by URL, URI or ID, all of a user's, or your own (OAuth).

Credentials are spotipy's environment variables: SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET (client
credentials, public playlists), plus SPOTIPY_REDIRECT_URI for your own playlists (`--spotify-user me`, the
OAuth authorization-code flow; the token is cached under SIAMREC_HOME). The Web API gives new apps no
previews and no audio features since late 2024, so audio comes from siamrec.connectors.audio or local files; and
since March 2026 Development Mode apps may read the tracks of their user's own playlists only.

spotipy's urllib3 retries sleep for whatever Retry-After says and then lose the header, so spotipy runs with
retries off and `SpotifyCaller` retries 429 (honouring Retry-After), 5xx and network failures itself, with
exponential backoff inside a bounded time budget. Every call, its token request included, runs within the
call deadline on a session whose answers are capped in size (connectors.bounded), and every message built
from the server's words is redacted (the client secret and tokens never reach a terminal or a log).
SIAMREC_SPOTIFY_API and SIAMREC_SPOTIFY_TOKEN_URL point the client at another server (the tests' local one).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
import spotipy
from spotipy.cache_handler import CacheFileHandler, MemoryCacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError

from siamrec.connectors.base import (
    Problem,
    SourcePlaylist,
    SourceTrack,
    duration_seconds,
    object_field,
    text_field,
)
from siamrec.connectors.bounded import Limits, bounded_session
from siamrec.deadline import DeadlinePassed, deadline
from siamrec.errors import ConnectorError
from siamrec.logs import get_logger
from siamrec.redact import one_line, redacting, register_secret

log = redacting(get_logger(__name__))

SOURCE = "spotify"
API_ENV = "SIAMREC_SPOTIFY_API"
TOKEN_URL_ENV = "SIAMREC_SPOTIFY_TOKEN_URL"
USER_SCOPE = "playlist-read-private playlist-read-collaborative"
WRITE_SCOPE = f"{USER_SCOPE} playlist-modify-private"
WRITE_MARK = "siamrec:"  # how the description of a playlist siamrec wrote (spotify_publish) starts
ME = "me"
ITEMS_PAGE = 100  # the API's maximum page sizes
PLAYLISTS_PAGE = 50
MAX_PAGES = 2000  # pages followed in one listing (200,000 items): a listing that never ends stops here
PLAYLIST_FIELDS = "id,uri,name,description,followers(total)"
ID_PATTERN = re.compile(r"^[0-9A-Za-z]{22}$")
_REF = re.compile(r"(?:open\.spotify\.com/(?:[\w-]+/)*playlist/|spotify:(?:user:[^:]+:)?playlist:)([0-9A-Za-z]{22})")
CREDENTIALS_HINT = (
    "set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET from your app at https://developer.spotify.com/dashboard"
)
T = TypeVar("T")


class PlaylistUnavailable(ConnectorError):
    """One playlist cannot be read (unknown, private, or not the user's): skipped, the others go on."""


def playlist_id(ref: str) -> str:
    """The 22-character ID in a playlist URL (`open.spotify.com/playlist/…`), URI (`spotify:playlist:…`) or ID."""
    ref = ref.strip()
    if ID_PATTERN.match(ref):
        return ref
    match = _REF.search(ref)
    if match is None:
        raise ConnectorError(f"{ref!r} is not a Spotify playlist URL, URI or ID")
    return match.group(1)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for 429, 5xx and network failures: exponential backoff, never past `budget_s` of waiting."""

    attempts: int = 6
    budget_s: float = 120.0
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt)


class HeadlessOAuth(spotipy.SpotifyOAuth):
    """spotipy's OAuth that never opens a browser nor prompts on stdout: logging in is `login_user`'s job,
    done before the store is opened; a login needed in the middle of a sync is one error line instead."""

    def get_auth_response(self, open_browser: bool | None = None) -> str:
        raise ConnectorError("the Spotify login expired during the sync: run it again to log in")


def _auth(user_auth: bool, cache_dir: Path, timeout_s: float, scope: str = USER_SCOPE) -> spotipy.SpotifyAuthBase:
    """Client credentials, or the user's OAuth with its token cached under SIAMREC_HOME."""
    register_secret(os.environ.get("SPOTIPY_CLIENT_SECRET"))
    try:
        if user_auth:
            cache_dir.mkdir(parents=True, exist_ok=True)
            auth: spotipy.SpotifyAuthBase = HeadlessOAuth(
                scope=scope,
                cache_handler=CacheFileHandler(cache_path=str(cache_dir / "spotify-token.json")),
                requests_timeout=timeout_s,
                requests_session=bounded_session(),
                open_browser=False,
            )
        else:
            auth = spotipy.SpotifyClientCredentials(
                cache_handler=MemoryCacheHandler(), requests_timeout=timeout_s, requests_session=bounded_session()
            )
    except SpotifyOauthError as exc:
        extra = " and SPOTIPY_REDIRECT_URI (registered for the app)" if user_auth else ""
        raise ConnectorError(f"Spotify credentials missing ({one_line(exc)}): {CREDENTIALS_HINT}{extra}") from None
    token_url = os.environ.get(TOKEN_URL_ENV)
    if token_url:
        auth.OAUTH_TOKEN_URL = token_url  # instance attribute: the class default stays Spotify's
    return auth


def login_user(
    cache_dir: Path,
    prompt: Callable[[str], None],
    read_redirect: Callable[[float], str | None],
    wait_s: float,
    timeout_s: float = 10.0,
    scope: str = USER_SCOPE,
) -> bool:
    """Make sure a user token is cached (for `--spotify-user me`); True when a new login was needed.

    Headless by design: the authorisation URL goes to `prompt` (stderr), the address the browser was sent
    to comes back through `read_redirect(seconds)` (stdin), which returns None when nothing came in time or
    the input was closed. Runs before the store is opened, so nothing is held while a person logs in.
    """
    auth = _auth(True, cache_dir, timeout_s, scope)
    assert isinstance(auth, HeadlessOAuth)
    limit = Limits.from_env().call_s
    try:
        with deadline(limit, "Spotify's token refresh"):
            if auth.validate_token(auth.cache_handler.get_cached_token()):  # refreshes an expired token
                return False
    except (SpotifyOauthError, requests.exceptions.RequestException, DeadlinePassed):
        pass  # a refresh token Spotify no longer accepts (or an answer that never came): log in again
    prompt(
        "Spotify login: open this address in any browser, allow access, then paste here the address the "
        f"browser is sent to (within {wait_s:.0f} s):\n{auth.get_authorize_url()}"
    )
    answer = read_redirect(wait_s)
    if answer is None:
        raise ConnectorError(
            f"Spotify login: no redirect address within {wait_s:.0f} s (or the input was closed); run again and "
            "paste it, or set --spotify-login-wait"
        )
    try:
        _, code = auth.parse_auth_response_url(answer.strip())
        if not code:
            raise ConnectorError("Spotify login: that is not the redirect address (it has no ?code=…); run again")
        with deadline(limit, "Spotify login"):
            auth.get_access_token(code, as_dict=False, check_cache=False)
    except (SpotifyOauthError, requests.exceptions.RequestException) as exc:
        raise ConnectorError(f"Spotify login failed ({_first_line(exc)}); run again for a fresh address") from None
    return True


def make_client(user_auth: bool, cache_dir: Path, timeout_s: float = 10.0, scope: str = USER_SCOPE) -> spotipy.Spotify:
    """A spotipy client with retries off (SpotifyCaller retries); client credentials, or OAuth for `me`."""
    auth = _auth(user_auth, cache_dir, timeout_s, scope)
    client = spotipy.Spotify(
        auth_manager=auth,
        requests_session=bounded_session(),  # no urllib3 retry adapter; deadlines and a size cap
        requests_timeout=timeout_s,
        retries=0,
        status_retries=0,
    )
    api = os.environ.get(API_ENV)
    if api:
        client.prefix = api.rstrip("/") + "/"
    return client


class SpotifyCaller:
    """Runs one spotipy call, retrying what is worth retrying and turning the rest into one-line errors."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limits: Limits | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.limits = limits or Limits.from_env()

    def __call__(self, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One call (a token request included) within the call deadline; a missed deadline is not retried."""
        waited = 0.0
        error = ""
        for attempt in range(self.policy.attempts):
            try:
                with deadline(self.limits.call_s, f"Spotify ({what})"):
                    return func(*args, **kwargs)
            except SpotifyOauthError as exc:
                reason = _first_line(exc)
                raise ConnectorError(f"Spotify refused the app credentials ({reason}): {CREDENTIALS_HINT}") from None
            except SpotifyException as exc:
                delay, error = self._after_http_error(exc, what, attempt)
            except requests.exceptions.RequestException as exc:
                delay, error = self.policy.backoff(attempt), f"cannot reach Spotify for {what} ({_first_line(exc)})"
            if waited + delay > self.policy.budget_s:
                budget = self.policy.budget_s
                raise ConnectorError(f"{error}; gave up after {waited:.0f} s of retries (budget {budget:.0f} s)")
            log.info("%s; retrying in %.1f s (attempt %d)", error, delay, attempt + 1)
            self.sleep(delay)
            waited += delay
        raise ConnectorError(f"{error}; gave up after {self.policy.attempts} attempts")

    def _after_http_error(self, exc: SpotifyException, what: str, attempt: int) -> tuple[float, str]:
        """(seconds to wait, message) for a retryable status; raises for the others."""
        status = exc.http_status
        message = _first_line(exc.msg.split("\n", 1)[-1] if exc.msg else "") or "no message"
        if status == 429:
            return _retry_after(exc) or self.policy.backoff(attempt), f"Spotify rate limit (429) for {what}"
        if status >= 500:
            return _retry_after(exc) or self.policy.backoff(attempt), f"Spotify server error {status} for {what}"
        if status == 401:
            raise ConnectorError(
                f"Spotify rejected the access token (401: {message}): check SPOTIPY_CLIENT_ID and "
                "SPOTIPY_CLIENT_SECRET, or delete the cached spotify-token.json and log in again"
            )
        if status == 404:
            raise PlaylistUnavailable(f"{what}: not found on Spotify (404); check the URL, URI or ID")
        if status == 403:
            raise PlaylistUnavailable(
                f"{what}: Spotify refused access (403: {message}); Development Mode apps may read only the tracks "
                "of their user's own playlists (--spotify-user me), or ask Spotify for extended quota"
            )
        raise ConnectorError(f"Spotify answered {status} for {what}: {message}")


def _retry_after(exc: SpotifyException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _first_line(value: object) -> str:
    """The first line of a server's or library's text, redacted and cut to one short line."""
    text = str(value).strip()
    return one_line(text.splitlines()[0]) if text else ""


def track_of(item: dict[str, Any]) -> SourceTrack | None:
    """A playlist item's track (`item`, or `track` before the 2026 rename); None for episodes, gaps and items
    of the wrong shape."""
    entry = object_field(item.get("item") or item.get("track"))
    uri = entry.get("uri")
    if entry.get("type", "track") != "track" or not isinstance(uri, str) or not uri.strip():
        return None
    artists = entry.get("artists") if isinstance(entry.get("artists"), list) else []
    return SourceTrack(
        uri=uri,
        title=text_field(entry.get("name")),
        artist=", ".join(name for a in artists if (name := text_field(object_field(a).get("name")))),
        album=text_field(object_field(entry.get("album")).get("name")),
        duration_s=duration_seconds(entry.get("duration_ms")),
    )


def pages(call: SpotifyCaller, what: str, client: spotipy.Spotify, first: Any) -> Iterator[dict[str, Any]]:
    """The pages of a listing, following `next` only on the API's own host (it is sent the token), never to a
    page already read, and at most MAX_PAGES times; a listing that breaks these rules stops in one line."""
    page, followed = first, set()
    while page is not None:
        if not isinstance(page, dict):
            raise ConnectorError(f"Spotify answered {what} with something that is not a page of a listing")
        yield page
        following = page.get("next")
        if not following:
            return
        if not isinstance(following, str) or not following.startswith(client.prefix):
            raise ConnectorError(f"Spotify's listing of {what} points elsewhere than its API ({one_line(following)})")
        if following in followed or len(followed) >= MAX_PAGES:
            raise ConnectorError(f"Spotify's listing of {what} does not end (a page again, or {MAX_PAGES} pages)")
        followed.add(following)
        page = call(what, client.next, page)


def page_items(page: dict[str, Any]) -> list[dict[str, Any]]:
    items = page.get("items")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


class SpotifySource:
    """Playlists named by URL/URI/ID, and all playlists of users (`me`: your own, through OAuth)."""

    label = "Spotify"

    def __init__(
        self,
        playlist_refs: Iterable[str] = (),
        users: Iterable[str] = (),
        cache_dir: Path = Path("."),
        caller: SpotifyCaller | None = None,
    ) -> None:
        self.playlist_ids = [playlist_id(ref) for ref in playlist_refs]
        self.users = list(users)
        self.cache_dir = cache_dir
        self.call = caller or SpotifyCaller()
        self.problems: list[Problem] = []
        self._clients: dict[bool, spotipy.Spotify] = {}

    def client(self, user_auth: bool = False) -> spotipy.Spotify:
        if user_auth not in self._clients:
            self._clients[user_auth] = make_client(user_auth, self.cache_dir)
        return self._clients[user_auth]

    def playlists(self) -> Iterator[SourcePlaylist]:
        for pid in self.playlist_ids:
            yield from self._read(pid, self.client())
        for user in self.users:
            client = self.client(user_auth=user == ME)
            for pid in self._user_playlist_ids(user, client):
                # siamrec's own write-back is not a listener's playlist: synced, it would be published again
                yield from (p for p in self._read(pid, client) if not p.description.startswith(WRITE_MARK))

    def _read(self, pid: str, client: spotipy.Spotify) -> Iterator[SourcePlaylist]:
        try:
            yield self._playlist(pid, client)
        except PlaylistUnavailable as exc:
            self.problems.append(Problem(f"spotify:playlist:{pid}", str(exc).removeprefix(f"playlist {pid}: ")))

    def _playlist(self, pid: str, client: spotipy.Spotify) -> SourcePlaylist:
        what = f"playlist {pid}"
        meta = object_field(self.call(what, client.playlist, pid, fields=PLAYLIST_FIELDS, additional_types=("track",)))
        first = self.call(what, client.playlist_items, pid, limit=ITEMS_PAGE, additional_types=("track",))
        items = (item for page in pages(self.call, what, client, first) for item in page_items(page))
        tracks = [track for item in items if (track := track_of(item)) is not None]
        followers = object_field(meta.get("followers")).get("total")
        uri = text_field(meta.get("uri"))
        return SourcePlaylist(
            uri=uri if uri.startswith("spotify:") and uri.endswith(f":{pid}") else f"spotify:playlist:{pid}",
            name=text_field(meta.get("name")) or pid,
            source=SOURCE,
            tracks=tracks,
            followers=followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
            description=text_field(meta.get("description")),
        )

    def _user_playlist_ids(self, user: str, client: spotipy.Spotify) -> Iterator[str]:
        what = "your playlists" if user == ME else f"playlists of user {user}"
        with warnings.catch_warnings():  # spotipy flags user_playlists as deprecated (Development Mode lost it)
            warnings.simplefilter("ignore", DeprecationWarning)
            if user == ME:
                page = self.call(what, client.current_user_playlists, limit=PLAYLISTS_PAGE)
            else:
                page = self._user_page(what, client, user)
        for listed in pages(self.call, what, client, page):
            yield from (item["id"] for item in page_items(listed) if ID_PATTERN.match(text_field(item.get("id"))))

    def _user_page(self, what: str, client: spotipy.Spotify, user: str) -> dict[str, Any]:
        try:
            return self.call(what, client.user_playlists, user, limit=PLAYLISTS_PAGE)
        except PlaylistUnavailable as exc:
            raise ConnectorError(
                f"{str(exc).split(' (')[0]}: unknown user, or an app in Development Mode (which cannot list other "
                "users' playlists since March 2026); name the playlists with --spotify instead"
            ) from exc
