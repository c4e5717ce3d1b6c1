"""The API's documents (pydantic), each built from the core's own records and results."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from siamrec.recommend import PlaylistSuggestion, Reason, TrackSuggestion
from siamrec.store import PlaylistRecord, StoredTrack

# scheme:rest, no space and no C0, DEL or C1 control; spelled out rather than `\s`, which Python and the
# ECMA regexes of OpenAPI clients read differently (Python's `\s` takes U+001C-U+001F and U+0085).
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:[^\x00-\x20\x7f-\x9f]+$"
# what follows a URI in a route path (/playlists/{uri}/…)
SUB_ROUTES = ("/recommendations", "/playlists", "/audio", "/feedback")


def _encodable(text: str) -> str:
    """JSON may carry lone surrogates (\\ud800), which no URI or payload can hold: refuse them as invalid."""
    text.encode("utf-8")  # UnicodeEncodeError is a ValueError: pydantic reports it as a validation error
    return text


def routable(uri: str) -> str:
    """URIs travel in paths and may hold "/" (as %2F); one that ends like a sub-route could never be reached."""
    if uri.endswith(SUB_ROUTES):
        raise ValueError(f"a URI cannot end in {' or '.join(SUB_ROUTES)}")
    return _encodable(uri)


UriItem = Annotated[str, Field(pattern=URI_PATTERN, min_length=3, max_length=500), AfterValidator(routable)]
Text = Annotated[str, AfterValidator(_encodable)]
Strategy = Literal["mean", "best-score"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Track(BaseModel):
    track_uri: str
    title: str
    artist: str
    album: str
    duration_s: float | None
    source: str
    audio_sha1: str | None
    added_at: str
    playlists: list[str] = Field(description="URIs of the stored playlists that hold this track.")
    has_audio: bool = Field(description="False for a playlist member whose audio was never added.")

    @classmethod
    def of(cls, stored: StoredTrack) -> Track:
        r = stored.record
        return cls(
            track_uri=r.track_uri,
            title=r.title,
            artist=r.artist,
            album=r.album,
            duration_s=r.duration_s,
            source=r.source,
            audio_sha1=r.audio_sha1,
            added_at=r.added_at,
            playlists=r.playlists,
            has_audio=stored.vector is not None,
        )


class ReasonOut(BaseModel):
    """A stored track that pulled a result in, with its cosine similarity to the result."""

    track_uri: str
    title: str
    artist: str
    similarity: float

    @classmethod
    def of(cls, reason: Reason) -> ReasonOut:
        return cls(**reason.__dict__)


class TrackResult(BaseModel):
    rank: int
    track_uri: str
    title: str
    artist: str
    score: float
    because_of: list[ReasonOut]


class Recommendations(BaseModel):
    playlist_uri: str | None = Field(description="None for an ad-hoc list of seeds.")
    name: str | None
    strategy: Strategy
    results: list[TrackResult]

    @classmethod
    def of(cls, playlist: PlaylistRecord | None, strategy: str, found: list[TrackSuggestion]) -> Recommendations:
        results = [
            TrackResult(
                rank=i,
                track_uri=s.track.track_uri,
                title=s.track.title,
                artist=s.track.artist,
                score=s.score,
                because_of=[ReasonOut.of(r) for r in s.because_of],
            )
            for i, s in enumerate(found, 1)
        ]
        return cls(
            playlist_uri=playlist.playlist_uri if playlist else None,
            name=playlist.name if playlist else None,
            strategy=strategy,  # type: ignore[arg-type]
            results=results,
        )


class PlaylistResult(BaseModel):
    rank: int
    playlist_uri: str
    name: str
    score: float
    because_of: list[ReasonOut] = Field(description="The playlist's tracks closest to the track.")

    @classmethod
    def ranked(cls, found: list[PlaylistSuggestion]) -> list[PlaylistResult]:
        return [
            cls(
                rank=i,
                playlist_uri=s.playlist.playlist_uri,
                name=s.playlist.name,
                score=s.score,
                because_of=[ReasonOut.of(r) for r in s.because_of],
            )
            for i, s in enumerate(found, 1)
        ]


class TrackPlaylists(BaseModel):
    track_uri: str
    results: list[PlaylistResult]


class TrackAdded(BaseModel):
    """The stored track and, at once, the playlists that suit it."""

    created: bool = Field(description="False when the same track was already stored (it was updated).")
    track: Track
    playlists: list[PlaylistResult]


class TrackFromUrl(Strict):
    """Add a track the service fetches itself (only when started with --allow-fetch)."""

    track_uri: UriItem
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://", description="http(s) URL of the audio.")
    title: Text | None = Field(default=None, max_length=500)
    artist: Text | None = Field(default=None, max_length=500)
    album: Text | None = Field(default=None, max_length=500)


class UploadFields(Strict):
    """The metadata fields of a multipart upload (beside the `audio` file part)."""

    track_uri: UriItem | None = None
    title: Text | None = Field(default=None, max_length=500)
    artist: Text | None = Field(default=None, max_length=500)
    album: Text | None = Field(default=None, max_length=500)


class PlaylistIn(Strict):
    name: Text = Field(min_length=1, max_length=500)
    track_uris: list[UriItem] = Field(max_length=10_000, description="Member track URIs, in order.")
    description: Text = Field(default="", max_length=5000)
    source: Text = Field(default="api", max_length=100)


class PlaylistSummary(BaseModel):
    playlist_uri: str
    name: str
    source: str
    tracks: int

    @classmethod
    def of(cls, playlist: PlaylistRecord) -> PlaylistSummary:
        return cls(
            playlist_uri=playlist.playlist_uri,
            name=playlist.name,
            source=playlist.source,
            tracks=len(playlist.track_uris),
        )


class Playlist(BaseModel):
    playlist_uri: str
    name: str
    source: str
    description: str
    followers: int | None
    track_uris: list[str]
    tracks_with_audio: int

    @classmethod
    def of(cls, playlist: PlaylistRecord, with_audio: int) -> Playlist:
        return cls(
            playlist_uri=playlist.playlist_uri,
            name=playlist.name,
            source=playlist.source,
            description=playlist.description,
            followers=playlist.followers,
            track_uris=playlist.track_uris,
            tracks_with_audio=with_audio,
        )


class SeedsIn(Strict):
    seed_track_uris: list[UriItem] = Field(min_length=1, max_length=1000, description="Stored tracks to start from.")
    k: int = Field(default=20, ge=1, le=1000)
    strategy: Strategy = "mean"
    include_warm: bool = False


class Deleted(BaseModel):
    deleted: str
    removed_from_playlists: list[str] = Field(default_factory=list)


class Health(BaseModel):
    status: Literal["ok"]


class Info(BaseModel):
    version: str
    model: str
    model_version: str
    dim: int
    store: Literal["embedded", "server"]
    tracks: int
    cold_tracks: int
    playlists: int
    upload_limit_bytes: int
    duration_limit_s: float
    fetch_enabled: bool
    metric: Literal["plain", "adapted"] = Field(description="How results are ranked (`siamrec serve --metric`).")
