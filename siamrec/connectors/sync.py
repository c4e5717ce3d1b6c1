"""`siamrec sync-playlists`: playlists from any source into the store, resumable and idempotent.

Playlists are taken a round at a time (bounded memory, whatever the source's size), and each round runs the
phases in order: store track metadata → resolve audio (source files, manifest, tagged folder, fetch cache)
→ fetch what is still missing → embed → save playlists. Every phase compares with what is stored and writes
only what differs, in batches (the embedded Qdrant commits per point), so a run killed at any point is
finished by the next one without re-downloading (audio cache by track URI) or re-embedding (a stored vector
made from a file with the same path, size and mtime, or the same audio, is kept), and a second run writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from siamrec.audio_items import AudioItem
from siamrec.connectors.base import PlaylistSource, Problem, SourcePlaylist, SourceTrack
from siamrec.connectors.cache import AudioCache
from siamrec.connectors.fetch import Fetcher
from siamrec.connectors.manifest import read_manifest
from siamrec.connectors.tagindex import TagIndex
from siamrec.embed import TrackEncoder
from siamrec.library import AddFunction, add_audio
from siamrec.store import PlaylistRecord, Store, StoredTrack, TrackRecord, playlist_centroid
from siamrec.vectors import batched

PHASES = {
    "read": "reading playlists",
    "tracks": "storing track metadata",
    "audio": "resolving audio",
    "fetch": "fetching audio",
    "embed": "embedding",
    "playlists": "saving playlists",
}
DEFAULT_BATCH = 64
DEFAULT_ROUND = 1000
DEFAULT_ROUND_TRACKS = 20_000
CENTROID_ATOL = 1e-5
T = TypeVar("T")


class SyncProgress(Protocol):
    """Where the sync reports its progress: work discovered (`grow`) and work done (`advance`) per phase."""

    def grow(self, phase: str, n: int) -> None: ...

    def advance(self, phase: str, n: int) -> None: ...


class _Silent:
    def grow(self, phase: str, n: int) -> None: ...

    def advance(self, phase: str, n: int) -> None: ...


@dataclass
class SyncOptions:
    """Where audio comes from, and how much work goes in one write or one round."""

    audio_manifest: Path | None = None
    audio_dir: Path | None = None
    cache: AudioCache | None = None
    fetcher: Fetcher | None = None
    batch_size: int = DEFAULT_BATCH
    playlists_per_round: int = DEFAULT_ROUND
    tracks_per_round: int = DEFAULT_ROUND_TRACKS
    after_round: Callable[[], None] | None = None  # e.g. free a round's uncached audio once it is embedded
    embed: AddFunction = add_audio  # or add_audio_on_ray (--ray): same writes, same report
    learn: Callable[[Store], list[Learned]] | None = None  # feedback read from listeners once the playlists are in


@dataclass
class Learned:
    """Feedback a source read from what a listener did (songs kept or removed in the player) for one playlist."""

    playlist_uri: str
    name: str
    accepted: list[str]
    rejected: list[str]


def learned_line(learned: list[Learned]) -> str:
    """What was learned, in one line: `2 accepted, 3 rejected, for 1 playlist`."""
    counts = learned_dict(learned)
    playlists = f"{counts['playlists']} playlist{'' if counts['playlists'] == 1 else 's'}"
    return f"{counts['accepted']} accepted, {counts['rejected']} rejected, for {playlists}"


def learned_dict(learned: list[Learned]) -> dict[str, Any]:
    """The counts and, per playlist, the track URIs (the sync's --json `learned`)."""
    return {
        "playlists": len(learned),
        "accepted": sum(len(item.accepted) for item in learned),
        "rejected": sum(len(item.rejected) for item in learned),
        "by_playlist": [asdict(item) for item in learned],
    }


@dataclass
class SyncReport:
    """What a sync found and did; `failed` lists every skipped slice, playlist, entry or track with its reason."""

    playlists: int = 0
    playlists_written: int = 0
    playlists_without_audio: int = 0
    tracks: int = 0
    tracks_written: int = 0
    with_audio: int = 0
    fetched: int = 0
    embedded: int = 0
    skipped: int = 0
    without_audio: list[str] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    learned: list[Learned] | None = None  # None: no source could tell (only a Subsonic sync reads the player)

    def as_dict(self) -> dict[str, Any]:
        counts = {key: value for key, value in asdict(self).items() if isinstance(value, int)}
        return {
            **counts,
            "without_audio": len(self.without_audio),
            "without_audio_uris": self.without_audio,
            "failed": [{"where": p.where, "reason": p.reason} for p in self.failed],
            **({"learned": learned_dict(self.learned)} if self.learned is not None else {}),
        }


def rounds(playlists: Iterable[SourcePlaylist], max_playlists: int, max_tracks: int) -> Iterator[list[SourcePlaylist]]:
    """Rounds of at most `max_playlists` playlists and (unless one alone is bigger) `max_tracks` entries."""
    current: list[SourcePlaylist] = []
    entries = 0
    for playlist in playlists:
        if current and (len(current) >= max_playlists or entries + len(playlist.tracks) > max_tracks):
            yield current
            current, entries = [], 0
        current.append(playlist)
        entries += len(playlist.tracks)
    if current:
        yield current


@dataclass
class _Round:
    """One round's working state: its playlists, their distinct tracks, and what the store holds for them."""

    playlists: list[SourcePlaylist]
    tracks: dict[str, SourceTrack] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    records: dict[str, TrackRecord] = field(default_factory=dict)
    vector_sha1: dict[str, str | None] = field(default_factory=dict)  # tracks stored with a vector → its audio
    audio: dict[str, Path] = field(default_factory=dict)


class Sync:
    """Runs sources through the phases into one store, with one encoder."""

    def __init__(
        self,
        store: Store,
        encoder: TrackEncoder,
        options: SyncOptions | None = None,
        progress: SyncProgress | None = None,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.options = options or SyncOptions()
        self.progress = progress or _Silent()
        self.on_batch = on_batch or (lambda phase, done: None)
        self.report = SyncReport()
        self._seen_tracks: set[str] = set()
        self._with_audio: set[str] = set()
        self._manifest: dict[str, Path] = {}
        self._tag_index: TagIndex | None = None

    def run(self, sources: Iterable[PlaylistSource]) -> SyncReport:
        self.store.bind_model(self.encoder.name, self.encoder.dim, create=True)
        self._open_audio_sources()
        for source in sources:
            options = self.options
            for playlists in rounds(self._readable(source), options.playlists_per_round, options.tracks_per_round):
                self._sync_round(_Round(playlists))
                if options.after_round is not None:
                    options.after_round()
        if self.options.learn is not None:
            self.report.learned = self.options.learn(self.store)
        self.report.tracks = len(self._seen_tracks)
        self.report.with_audio = len(self._seen_tracks & self._with_audio)
        self.report.without_audio = sorted(self._seen_tracks - self._with_audio)
        return self.report

    def _open_audio_sources(self) -> None:
        if self.options.audio_manifest is not None:
            self._manifest, problems = read_manifest(self.options.audio_manifest)
            self.report.failed += problems
        if self.options.audio_dir is not None:
            self._tag_index = TagIndex(self.options.audio_dir)

    def _readable(self, source: PlaylistSource) -> Iterator[SourcePlaylist]:
        """The source's playlists; one with no track left to store is a failure, and what is stored stays.

        The source's problems join the report as they happen, so failures read in the order of the input.
        """
        reported = 0
        for playlist in source.playlists():
            self.progress.advance("read", 1)
            self.report.failed += source.problems[reported:]
            reported = len(source.problems)
            if playlist.tracks:
                yield self._keep_stored_uri(playlist)
            else:
                self.report.failed.append(
                    Problem(f"{playlist.name} ({playlist.uri})", "no resolvable tracks; the playlist was not saved")
                )
        self.report.failed += source.problems[reported:]

    def _keep_stored_uri(self, playlist: SourcePlaylist) -> SourcePlaylist:
        """A local playlist stored under its name's URI from before names got collision-free URIs keeps it."""
        if playlist.source != "local" or "~" not in playlist.uri:
            return playlist
        named = self.store.playlists_named(playlist.name)
        legacy = [p for p in named if p.source == "local" and "~" not in p.playlist_uri]
        return replace(playlist, uri=legacy[0].playlist_uri) if len(legacy) == 1 else playlist

    def _sync_round(self, work: _Round) -> None:
        for playlist in work.playlists:
            for track in playlist.tracks:
                known = work.tracks.get(track.uri)
                if known is None or (known.path is None and track.path is not None):
                    work.tracks[track.uri] = track
                members = work.members.setdefault(track.uri, set())
                if not playlist.collection:
                    members.add(playlist.uri)
                work.sources.setdefault(track.uri, playlist.source)
        self.report.playlists += sum(not playlist.collection for playlist in work.playlists)
        self._seen_tracks.update(work.tracks)
        self._store_tracks(work)
        self._resolve_audio(work)
        self._fetch(work)
        self._embed(work)
        self._save_playlists(work)

    # ---- phase: track metadata -------------------------------------------------------------------------

    def _store_tracks(self, work: _Round) -> None:
        uris = list(work.tracks)
        self.progress.grow("tracks", len(uris))
        for done, batch in enumerate(batched(uris, self.options.batch_size), 1):
            stored = self.store.get_tracks(batch, with_vectors=True)
            changed: list[tuple[TrackRecord, np.ndarray | None]] = []
            for uri in batch:
                previous = stored.get(uri)
                record = desired_record(work.tracks[uri], work.sources[uri], work.members[uri], previous)
                work.records[uri] = record
                if previous is not None and previous.vector is not None:
                    self._with_audio.add(uri)
                    if _current(previous.record, work.tracks[uri]):
                        work.vector_sha1[uri] = previous.record.audio_sha1
                if previous is None or not same_track(record, previous.record):
                    changed.append((replace(record), previous.vector if previous else None))
            if changed:
                self.store.upsert_tracks([r for r, _ in changed], [v for _, v in changed])
                self.report.tracks_written += len(changed)
            self.progress.advance("tracks", len(batch))
            self.on_batch("tracks", done)

    # ---- phase: audio that needs no network ------------------------------------------------------------

    def _resolve_audio(self, work: _Round) -> None:
        self.progress.grow("audio", len(work.tracks))
        for uri, track in work.tracks.items():
            path = self._local_audio(track)
            if path is not None:
                work.audio[uri] = path
            self.progress.advance("audio", 1)

    def _local_audio(self, track: SourceTrack) -> Path | None:
        if track.path is not None:
            return track.path
        listed = self._manifest.get(track.uri)
        if listed is not None:
            try:
                if listed.is_file():
                    return listed
                why = "which does not exist"
            except (OSError, ValueError) as exc:  # a path too long for the filesystem, a NUL byte
                why = f"which cannot be read ({getattr(exc, 'strerror', None) or exc})"
            self.report.failed.append(Problem(track.uri, f"the audio manifest names {str(listed)[:200]}, {why}"))
        if self._tag_index is not None:
            matched = self._tag_index.match(track)
            if matched is not None:
                return matched
        return self.options.cache.path(track.uri) if self.options.cache is not None else None

    # ---- phase: fetching -------------------------------------------------------------------------------

    def _fetch(self, work: _Round) -> None:
        """Download audio for tracks that have none, neither on disk nor as a stored vector."""
        fetcher = self.options.fetcher
        if fetcher is None:
            return
        wanted = [t for uri, t in work.tracks.items() if uri not in work.audio and uri not in work.vector_sha1]
        self.progress.grow("fetch", len(wanted))
        for done, batch in enumerate(batched(wanted, self.options.batch_size), 1):
            before = fetcher.downloads
            found, problems = fetcher.fetch_many(batch, lambda n: self.progress.advance("fetch", n))
            work.audio.update(found)
            self.report.failed += problems
            self.report.fetched += fetcher.downloads - before
            self.on_batch("fetch", done)

    # ---- phase: embedding ------------------------------------------------------------------------------

    def _embed(self, work: _Round) -> None:
        """Embed the round's audio; files stored with the same path, size and mtime are skipped unread."""
        items = []
        for uri, path in work.audio.items():
            record = work.records[uri]
            version = work.tracks[uri].version or record.audio_version
            items.append(
                AudioItem(path, record=replace(record, playlists=list(record.playlists), audio_version=version))
            )
        self.progress.grow("embed", len(items))
        for done, batch in enumerate(batched(items, self.options.batch_size), 1):
            result = self.options.embed(self.store, self.encoder, batch, lambda n: self.progress.advance("embed", n))
            uri_of = {str(item.path): item.record.track_uri for item in batch if item.record}
            self.report.failed += [Problem(uri_of.get(path, path), reason) for path, reason in result.failed]
            # unchanged files (skipped unread) and re-read files whose audio kept its stored vector
            self.report.skipped += len(batch) - result.embedded - len(result.failed)
            self.report.embedded += result.embedded
            self._with_audio.update(uri_of[path] for path in result.uri_by_path if path in uri_of)
            self.on_batch("embed", done)

    # ---- phase: playlists ------------------------------------------------------------------------------

    def _save_playlists(self, work: _Round) -> None:
        playlists = [playlist for playlist in work.playlists if not playlist.collection]
        self.progress.grow("playlists", len(playlists))
        for done, batch in enumerate(batched(playlists, self.options.batch_size), 1):
            stored = self.store.get_playlists(p.uri for p in batch)
            vectors = self.store.get_tracks({t.uri for p in batch for t in p.tracks}, with_vectors=True)
            changed = []
            for playlist in batch:
                record = playlist_record(playlist)
                previous, previous_centroid = stored.get(playlist.uri, (None, None))
                self._drop_membership(record, previous)
                centroid = _centroid(record, vectors)
                if centroid is None:
                    self.report.playlists_without_audio += 1
                if previous != record or not _same_vector(previous_centroid, centroid):
                    changed.append(record)
            if changed:
                self.store.refresh_centroids(changed)
                self.report.playlists_written += len(changed)
            self.progress.advance("playlists", len(batch))
            self.on_batch("playlists", done)

    def _drop_membership(self, record: PlaylistRecord, previous: PlaylistRecord | None) -> None:
        """Tracks that left the playlist at its source leave it in the store too."""
        dropped = set(previous.track_uris) - set(record.track_uris) if previous else set()
        for uri, track in self.store.get_tracks(dropped).items():
            if record.playlist_uri in track.record.playlists:
                remaining = sorted(set(track.record.playlists) - {record.playlist_uri})
                self.store.set_track_payload(uri, {"playlists": remaining})


def desired_record(track: SourceTrack, source: str, members: set[str], previous: StoredTrack | None) -> TrackRecord:
    """The stored record updated with what the source knows (empty source fields keep stored values).

    `source` names the connector that first stored the track; later ones add membership and metadata.
    """
    if previous is None:
        record = TrackRecord(track_uri=track.uri, source=source)
    else:
        record = replace(previous.record, playlists=list(previous.record.playlists))
    for key in ("title", "artist", "album", "duration_s"):
        value = getattr(track, key)
        if value not in (None, ""):
            setattr(record, key, round(value, 3) if isinstance(value, float) else value)
    record.playlists = sorted(set(record.playlists) | members)
    return record


def _current(record: TrackRecord, track: SourceTrack) -> bool:
    """Whether a stored vector still stands for the source's audio (sources without versions: always)."""
    return not track.version or record.audio_version == track.version


def same_track(a: TrackRecord, b: TrackRecord) -> bool:
    """Equal payloads, ignoring when the track was first added."""
    return replace(a, added_at="") == replace(b, added_at="")


def playlist_record(playlist: SourcePlaylist) -> PlaylistRecord:
    return PlaylistRecord(
        playlist_uri=playlist.uri,
        name=playlist.name,
        source=playlist.source,
        track_uris=list(dict.fromkeys(track.uri for track in playlist.tracks)),
        followers=playlist.followers,
        description=playlist.description,
    )


def _centroid(record: PlaylistRecord, tracks: dict[str, StoredTrack]) -> np.ndarray | None:
    vectors = [tracks[uri].vector for uri in record.track_uris if uri in tracks and tracks[uri].vector is not None]
    return playlist_centroid(np.stack(vectors)) if vectors else None


def _same_vector(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.allclose(a, b, atol=CENTROID_ATOL))
