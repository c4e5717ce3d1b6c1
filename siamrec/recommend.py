"""Recommendation queries: new tracks for a playlist, playlists for a new track, each with its reasons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from siamrec.constants import STRATEGIES
from siamrec.errors import NotFoundError, SiamrecError
from siamrec.store import PlaylistRecord, Store, StoredTrack, TrackRecord, playlist_centroid
from siamrec.store import feedback as stored_feedback
from siamrec.vectors import l2_normalise

REASONS_PER_RESULT = 3
# How far the mean strategy's query moves away from the tracks a listener rejected (Rocchio's γ over α = 1); chosen
# on the dev corpus with `siamrec bench --feedback` (best-score uses Qdrant's negative examples instead).
NEGATIVE_WEIGHT = 0.5


@dataclass(frozen=True)
class Reason:
    """A stored track that pulled a result in, with its cosine similarity to the result."""

    track_uri: str
    title: str
    artist: str
    similarity: float


@dataclass(frozen=True)
class TrackSuggestion:
    track: TrackRecord
    score: float
    because_of: list[Reason]


@dataclass(frozen=True)
class PlaylistSuggestion:
    playlist: PlaylistRecord
    score: float
    because_of: list[Reason]


def _reasons(result_vectors: np.ndarray, seeds: list[StoredTrack]) -> list[list[Reason]]:
    """For each result, the seeds most similar to it (one matrix product for all results)."""
    seed_matrix = np.stack([s.vector for s in seeds if s.vector is not None])  # S x D
    similarity = result_vectors @ seed_matrix.T  # R x S
    order = np.argsort(-similarity, axis=1)[:, :REASONS_PER_RESULT]
    return [
        [
            Reason(seeds[j].record.track_uri, seeds[j].record.title, seeds[j].record.artist, float(similarity[i, j]))
            for j in row
        ]
        for i, row in enumerate(order)
    ]


def playlist_seeds(store: Store, playlist: PlaylistRecord) -> list[StoredTrack]:
    """The playlist's tracks that have vectors; none is an error the user can fix by adding audio."""
    tracks = store.get_tracks(playlist.track_uris, with_vectors=True, using=store.query_vector)
    seeds = [tracks[u] for u in playlist.track_uris if u in tracks and tracks[u].vector is not None]
    if not seeds:
        raise NotFoundError(
            f"playlist {playlist.name!r} has no tracks with audio yet: add its audio with `siamrec add-track` "
            "or sync with --fetch-audio/--audio-dir"
        )
    return seeds


def steer(centroid: np.ndarray, rejected_centroid: np.ndarray | float) -> np.ndarray:
    """The mean strategy's query once tracks were rejected: the playlist's centroid minus NEGATIVE_WEIGHT times the
    rejected tracks' centroid, renormalised (`[D]` or rows `[P, D]`; a zero rejected centroid changes nothing).
    The bench (siamrec.bench.feedback) ranks with this same query."""
    return l2_normalise(centroid - NEGATIVE_WEIGHT * rejected_centroid)


def with_feedback(store: Store, playlist: PlaylistRecord) -> tuple[PlaylistRecord, list[StoredTrack]]:
    """The playlist with the tracks its listener accepted among its members (seeds even where a re-sync left
    them out), and its rejected tracks with their vectors in the metric in use."""
    found = stored_feedback.read(store.backend, playlist.playlist_uri) if playlist.playlist_uri else None
    accepted, rejected = found or ([], [])
    missing = [uri for uri in accepted if uri not in set(playlist.track_uris)]
    if missing:
        playlist = replace(playlist, track_uris=[*playlist.track_uris, *missing])
    stored = store.get_tracks(rejected, with_vectors=True, using=store.query_vector)
    return playlist, [stored[uri] for uri in rejected if uri in stored]


def recommend_tracks(
    store: Store, playlist: PlaylistRecord, k: int = 20, strategy: str = "mean", include_warm: bool = False
) -> list[TrackSuggestion]:
    """Top-k tracks not in the playlist (cold ones only unless `include_warm`), best first. The listener's feedback
    counts: accepted tracks are seeds, rejected ones are never returned and steer the query away from them."""
    if strategy not in STRATEGIES:
        raise SiamrecError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    playlist, rejected = with_feedback(store, playlist)
    seeds = playlist_seeds(store, playlist)
    examples = np.stack([s.vector for s in seeds])  # type: ignore[misc]
    exclude, cold_only = [*playlist.track_uris, *(r.record.track_uri for r in rejected)], not include_warm
    seed_audio = [s.record.audio_id for s in [*seeds, *rejected] if s.record.audio_id]
    against = [r.vector for r in rejected if r.vector is not None]
    negatives = np.stack(against) if against else np.empty((0, examples.shape[1]), dtype=np.float32)
    if strategy == "mean":
        query = steer(playlist_centroid(examples), playlist_centroid(negatives) if len(negatives) else 0.0)
        found = store.nearest_tracks(query, k, exclude, cold_only, exclude_audio=seed_audio)
    else:
        found = store.best_score_tracks(
            examples, k, exclude, cold_only, exclude_audio=seed_audio, negatives=negatives if len(negatives) else None
        )
    if not found:
        return []
    reasons = _reasons(np.stack([f.vector for f in found]), seeds)
    # One readable score for both strategies: a cosine similarity (-1…1). `mean` ranks by the cosine to the
    # centroid, which the engine returns as is; Qdrant's best_score is a sigmoid of the best cosine, so the
    # score shown is that best cosine itself, the first "because of" similarity (same order).
    return [
        TrackSuggestion(f.record, f.score if strategy == "mean" else r[0].similarity, r)
        for f, r in zip(found, reasons, strict=True)
    ]


def recommend_playlists(
    store: Store, vector: np.ndarray, k: int = 10, exclude_track_uri: str | None = None
) -> list[PlaylistSuggestion]:
    """Playlists whose centroid is nearest to a track's (model) vector, best first, in the store's metric (those
    holding the track, and those whose listener rejected it, left out)."""
    vector = store.to_query_space(vector)
    track = exclude_track_uri
    holding = store.playlists_holding(track) + stored_feedback.rejecting(store.backend, track) if track else []
    suggestions = []
    for found in store.nearest_playlists(vector, k, exclude_uris=holding):
        seeds = playlist_seeds(store, found.record)
        suggestions.append(PlaylistSuggestion(found.record, found.score, _reasons(vector[None, :], seeds)[0]))
    return suggestions


def recommend_tracks_where(
    store: Store, playlist: PlaylistRecord, keep: Callable[[str], bool], k: int = 20, strategy: str = "mean",
    include_warm: bool = False,
) -> list[TrackSuggestion]:  # fmt: skip
    """The top-k of `recommend_tracks` among tracks whose URI passes `keep` (for a destination, like a streaming
    server or a Spotify account, that can hold only some sources' tracks): asks for more until k pass."""
    limit = k
    while True:
        suggestions = recommend_tracks(store, playlist, limit, strategy, include_warm)
        kept = [s for s in suggestions if keep(s.track.track_uri)]
        if len(kept) >= k or len(suggestions) < limit:
            return kept[:k]
        limit *= 4
