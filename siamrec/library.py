"""Adding audio to the store: files → windows → batched ONNX inference → idempotent Qdrant upserts.

Decoding runs in a small thread pool (soundfile and soxr release the GIL) one chunk ahead of inference,
so memory stays bounded by two chunks however large the library is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siamrec.audio import file_sha1, is_audio_path, track_windows
from siamrec.embed import TrackEncoder
from siamrec.errors import AudioError
from siamrec.store import Store, TrackRecord
from siamrec.tags import read_tags
from siamrec.uris import local_track_uri

CHUNK_TRACKS = 32
DECODE_THREADS = 2


@dataclass
class AudioItem:
    """A file to add; `record` carries what the source already knows (URI, title…), else tags decide."""

    path: Path
    record: TrackRecord | None = None
    overrides: dict[str, str] = field(default_factory=dict)


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    uri_by_path: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "failed": [{"path": path, "reason": reason} for path, reason in self.failed],
            "track_uris": self.added + self.updated,
        }


@dataclass
class _Loaded:
    item: AudioItem
    record: TrackRecord | None
    windows: np.ndarray | None
    error: str | None


def collect_audio_files(paths: Iterable[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named explicitly are taken as they are; folders are searched recursively for audio suffixes."""
    files: list[Path] = []
    missing: list[tuple[str, str]] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and is_audio_path(p))
        elif path.is_file():
            files.append(path)
        else:
            missing.append((str(path), "no such file or folder"))
    return files, missing


def local_record(path: Path, sha1: str, duration_s: float) -> TrackRecord:
    """The record of a file with no source metadata: `local:track:<sha1>`, tags for the names."""
    tags = read_tags(path)
    return TrackRecord(
        track_uri=local_track_uri(sha1),
        title=tags["title"],
        artist=tags["artist"],
        album=tags["album"],
        duration_s=round(duration_s, 3),
        source="local",
        audio_sha1=sha1,
        path=str(path.resolve()),
    )


def load_item(item: AudioItem) -> tuple[TrackRecord, np.ndarray]:
    """Decode one file into its record and model windows (raises AudioError or OSError)."""
    windows, info = track_windows(item.path)
    sha1 = file_sha1(item.path)
    record = item.record or local_record(item.path, sha1, info.duration_s)
    for key, value in item.overrides.items():
        setattr(record, key, value)
    record.audio_sha1 = sha1
    record.path = str(item.path.resolve())
    if record.duration_s is None:
        record.duration_s = round(info.duration_s, 3)
    return record, windows


def _load(item: AudioItem) -> _Loaded:
    try:
        record, windows = load_item(item)
    except AudioError as exc:
        return _Loaded(item, None, None, str(exc))
    except OSError as exc:
        return _Loaded(item, None, None, f"{item.path}: {exc.strerror or exc}")
    return _Loaded(item, record, windows, None)


def _chunks_decoded_ahead(items: list[AudioItem], pool: ThreadPoolExecutor) -> Iterator[list[_Loaded]]:
    """Yield decoded chunks while the next chunk decodes in the background."""
    pending: list[Future[_Loaded]] | None = None
    for start in range(0, len(items) + CHUNK_TRACKS, CHUNK_TRACKS):
        upcoming = [pool.submit(_load, item) for item in items[start : start + CHUNK_TRACKS]]
        if pending:
            yield [future.result() for future in pending]
        pending = upcoming


def add_audio(
    store: Store,
    encoder: TrackEncoder,
    items: list[AudioItem],
    on_progress: Callable[[int], None] | None = None,
) -> AddReport:
    """Embed and store `items`; bad files are reported, never raised, and never touch stored points."""
    store.bind_model(encoder.name, encoder.dim, create=True)
    report = AddReport()
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        for chunk in _chunks_decoded_ahead(items, pool):
            good = [loaded for loaded in chunk if loaded.error is None]
            report.failed += [(str(loaded.item.path), loaded.error or "") for loaded in chunk if loaded.error]
            if good:
                _store_chunk(store, encoder, good, report)
            if on_progress:
                on_progress(len(chunk))
    return report


def _store_chunk(store: Store, encoder: TrackEncoder, good: list[_Loaded], report: AddReport) -> None:
    records = [loaded.record for loaded in good if loaded.record is not None]
    vectors = encoder.track_vectors([loaded.windows for loaded in good if loaded.windows is not None])
    for loaded, record in zip(good, records, strict=True):
        report.uri_by_path[str(loaded.item.path)] = record.track_uri
    added, updated = write_tracks(store, records, vectors)
    report.added += added
    report.updated += updated


def write_tracks(store: Store, records: list[TrackRecord], vectors: np.ndarray) -> tuple[list[str], list[str]]:
    """Upsert embedded tracks and refresh the centroids of the playlists that hold them: (added, updated) URIs.

    The one write path of every add (CLI and HTTP service); the records get their stored membership merged in.
    """
    seen: set[str] = set()
    unique = []
    for record, vector in zip(records, vectors, strict=True):
        if record.track_uri in seen:  # the same audio twice in one call: one point
            continue
        seen.add(record.track_uri)
        unique.append((record, vector))
    existing = store.upsert_tracks([r for r, _ in unique], [v for _, v in unique])
    added = [r.track_uri for r, _ in unique if r.track_uri not in existing]
    updated = [r.track_uri for r, _ in unique if r.track_uri in existing]
    # upsert_tracks merged the stored membership into the records: no second read of the tracks needed.
    touched = store.get_playlists({p for record, _ in unique for p in record.playlists})
    if touched:
        store.refresh_centroids([playlist for playlist, _ in touched.values()])
    return added, updated


def add_paths(
    store: Store, encoder: TrackEncoder, paths: Iterable[Path], on_progress: Callable[[int], None] | None = None
) -> AddReport:
    """`siamrec add-track`: collect files under `paths` and add them."""
    files, missing = collect_audio_files(paths)
    report = add_audio(store, encoder, [AudioItem(path) for path in files], on_progress)
    report.failed = missing + report.failed
    return report
