"""The Spotify connector against a local server that answers like the Web API, over real HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from siamrec.connectors.spotify import (
    USER_SCOPE,
    RetryPolicy,
    SpotifyCaller,
    SpotifySource,
    playlist_id,
)
from siamrec.errors import ConnectorError
from tests.servers import FakePlaylist, Response, SpotifyServer, fake_track

BIG = FakePlaylist("Big", [fake_track(f"Artist {i % 7}", f"Song {i}") for i in range(230)], followers=42)
OLD_SHAPE = FakePlaylist(
    "Old shape",
    [fake_track("A, B", "Duet", 201_500), None, {"type": "episode", "uri": "spotify:episode:x", "name": "Talk"}],
    item_key="track",
)
MINE = FakePlaylist("Mine", [fake_track("Me", "My song")])


@pytest.fixture
def spotify(monkeypatch: pytest.MonkeyPatch) -> Iterator[SpotifyServer]:
    server = SpotifyServer([BIG, OLD_SHAPE, MINE], users={"alice": [BIG.id, OLD_SHAPE.id], "me": [MINE.id]})
    with server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        yield server


class Sleeps(list[float]):
    """Records the waits instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def source(tmp_path: Path, *refs: str, users: tuple[str, ...] = (), attempts: int = 6) -> tuple[SpotifySource, Sleeps]:
    sleeps = Sleeps()
    caller = SpotifyCaller(RetryPolicy(attempts=attempts, budget_s=30, backoff_s=0.5), sleep=sleeps)
    return SpotifySource(refs, users, cache_dir=tmp_path, caller=caller), sleeps


def test_token_then_paginated_items(spotify: SpotifyServer, tmp_path: Path) -> None:
    src, sleeps = source(tmp_path, f"https://open.spotify.com/playlist/{BIG.id}?si=abc")
    (playlist,) = list(src.playlists())
    assert playlist.uri == f"spotify:playlist:{BIG.id}" and playlist.name == "Big" and playlist.followers == 42
    assert [t.title for t in playlist.tracks] == [f"Song {i}" for i in range(230)]
    assert playlist.tracks[3].artist == "Artist 3" and playlist.tracks[3].duration_s == 180.0
    assert spotify.requests_to("/api/token") == ["/api/token"]
    pages = spotify.requests_to(f"/v1/playlists/{BIG.id}/items")
    assert len(pages) == 3 and "offset=200" in pages[-1]
    assert sleeps == [] and src.problems == []


def test_old_track_key_episodes_and_gaps(spotify: SpotifyServer, tmp_path: Path) -> None:
    src, _ = source(tmp_path, f"spotify:playlist:{OLD_SHAPE.id}")
    (playlist,) = list(src.playlists())
    (track,) = playlist.tracks
    assert (track.title, track.artist, track.album, track.duration_s) == ("Duet", "A, B", "An Album", 201.5)


def test_429_waits_as_long_as_retry_after_says(spotify: SpotifyServer, tmp_path: Path) -> None:
    spotify.faults[f"/v1/playlists/{BIG.id}/items"] = [
        Response.json(429, {"error": {"status": 429}}, **{"Retry-After": "3"})
    ]
    src, sleeps = source(tmp_path, BIG.id)
    (playlist,) = list(src.playlists())
    assert sleeps == [3.0] and len(playlist.tracks) == 230


def test_5xx_is_retried_with_exponential_backoff(spotify: SpotifyServer, tmp_path: Path) -> None:
    spotify.faults[f"/v1/playlists/{BIG.id}"] = [Response(500, b"oops"), Response(503, b"busy")]
    src, sleeps = source(tmp_path, BIG.id)
    assert len(next(iter(src.playlists())).tracks) == 230
    assert sleeps == [0.5, 1.0]


def test_persistent_5xx_gives_up_with_one_line(spotify: SpotifyServer, tmp_path: Path) -> None:
    spotify.faults[f"/v1/playlists/{BIG.id}"] = [Response(500, b"oops")] * 10
    src, sleeps = source(tmp_path, BIG.id, attempts=3)
    with pytest.raises(ConnectorError, match=r"server error 500 .* gave up after 3 attempts") as failure:
        list(src.playlists())
    assert "\n" not in str(failure.value) and len(sleeps) == 3


def test_retry_after_beyond_the_budget_fails_at_once(spotify: SpotifyServer, tmp_path: Path) -> None:
    spotify.faults[f"/v1/playlists/{BIG.id}"] = [Response(429, b"", {"Retry-After": "3600"})]
    src, sleeps = source(tmp_path, BIG.id)
    with pytest.raises(ConnectorError, match=r"rate limit \(429\).*budget 30 s"):
        list(src.playlists())
    assert sleeps == []


def test_rejected_token_is_one_line(spotify: SpotifyServer, tmp_path: Path) -> None:
    spotify.reject_tokens = True
    src, _ = source(tmp_path, BIG.id)
    with pytest.raises(ConnectorError, match=r"rejected the access token \(401: Invalid access token\)"):
        list(src.playlists())


def test_bad_and_missing_credentials(spotify: SpotifyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "wrong")
    with pytest.raises(ConnectorError, match="refused the app credentials .*invalid_client.*SPOTIPY_CLIENT_ID"):
        list(source(tmp_path, BIG.id)[0].playlists())
    monkeypatch.delenv("SPOTIPY_CLIENT_ID")
    with pytest.raises(ConnectorError, match="credentials missing.*SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET"):
        list(source(tmp_path, BIG.id)[0].playlists())


def test_unknown_playlist_is_skipped_and_the_rest_read(spotify: SpotifyServer, tmp_path: Path) -> None:
    unknown = "0" * 22
    src, _ = source(tmp_path, unknown, BIG.id)
    assert [p.name for p in src.playlists()] == ["Big"]
    (problem,) = src.problems
    assert problem.where == f"spotify:playlist:{unknown}" and "not found on Spotify (404)" in problem.reason


def test_network_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "secret")
    monkeypatch.setenv("SIAMREC_SPOTIFY_API", f"http://127.0.0.1:{port}/v1/")
    monkeypatch.setenv("SIAMREC_SPOTIFY_TOKEN_URL", f"http://127.0.0.1:{port}/api/token")
    src, sleeps = source(tmp_path, BIG.id, attempts=2)
    with pytest.raises(
        ConnectorError, match="cannot reach Spotify for playlist .* gave up after 2 attempts"
    ) as failure:
        list(src.playlists())
    assert "\n" not in str(failure.value) and sleeps == [0.5, 1.0]


def test_all_playlists_of_a_user_paginated(spotify: SpotifyServer, tmp_path: Path) -> None:
    spotify.page_cap = 1
    src, _ = source(tmp_path, users=("alice",))
    assert [p.name for p in src.playlists()] == ["Big", "Old shape"]
    assert len(spotify.requests_to("/v1/users/alice/playlists")) == 2
    with pytest.raises(ConnectorError, match="playlists of user bob: not found.*Development Mode"):
        list(source(tmp_path, users=("bob",))[0].playlists())


def test_own_playlists_through_the_oauth_token_cache(
    spotify: SpotifyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTIPY_REDIRECT_URI", "http://127.0.0.1:8888/callback")
    token = {
        "access_token": "user-token",
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": "r",
        "scope": USER_SCOPE,
        "expires_at": int(time.time()) + 3600,
    }
    (tmp_path / "spotify-token.json").write_text(json.dumps(token))
    spotify.user_tokens.add("user-token")
    src, _ = source(tmp_path, users=("me",))
    assert [p.name for p in src.playlists()] == ["Mine"]
    assert spotify.requests_to("/api/token") == []


@pytest.mark.parametrize(
    "ref",
    [
        "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M",
        "https://open.spotify.com/intl-de/playlist/37i9dQZF1DXcBWIGoYBM5M?si=1a2b",
        "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M",
        "spotify:user:someone:playlist:37i9dQZF1DXcBWIGoYBM5M",
        "37i9dQZF1DXcBWIGoYBM5M",
    ],
)
def test_playlist_references(ref: str) -> None:
    assert playlist_id(ref) == "37i9dQZF1DXcBWIGoYBM5M"


def test_bad_reference_fails_before_any_request() -> None:
    with pytest.raises(ConnectorError, match="not a Spotify playlist URL, URI or ID"):
        SpotifySource(["https://open.spotify.com/album/37i9dQZF1DXcBWIGoYBM5M"])
