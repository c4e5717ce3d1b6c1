"""Adding audio to the store: files → windows → batched ONNX inference → idempotent upserts.

Decoding runs in a small thread pool (soundfile and soxr release the GIL) one chunk ahead of inference,
so memory stays bounded by two chunks however large the library is.

Re-adds do only what changed: a file whose path, size and modification time match the stored track is
neither decoded nor embedded; one whose bytes are a stored track's (touched, moved, copied, or named again by a
playlist source) is not decoded either, and takes that track's audio identity and vector; one whose stat and
bytes changed is decoded, and when its audio is the audio already stored (re-tagged) the stored vector is kept
and only the metadata is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from siamrec.audio import AUDIO_SUFFIXES, is_audio_path
from siamrec.audio_items import (
    AudioItem,
    audio_file_sha1,
    file_facts,
    load_item,
    reuse_stored,
    same_audio,
    same_mtime,
    wanted_uri,
)
from siamrec.embed import TrackEncoder
from siamrec.errors import AudioError, ConfigError, NotFoundError
from siamrec.names import quoted
from siamrec.store import Store, StoredTrack, TrackRecord

# Tracks decoded one chunk ahead of inference: 16 overlaps decoding with ONNX sooner than 32 did (8 % faster
# on 60 tracks, benchmarks/embed_throughput.py --pipeline).
CHUNK_TRACKS = 16
DECODE_THREADS = 2
HASH_PAGE = 256  # files hashed and looked up together before an embedder elsewhere (Ray) gets the rest


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # files skipped: stored path, size and mtime match
    embedded: int = 0  # tracks that went through the encoder
    vanished: list[str] = field(default_factory=list)  # stored files under the folders added that are gone
    removed: list[str] = field(default_factory=list)  # their tracks, when removed (--prune)
    failed: list[tuple[str, str]] = field(default_factory=list)
    uri_by_path: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "embedded": self.embedded,
            "vanished": self.vanished,
            "removed": self.removed,
            "failed": [{"path": path, "reason": reason} for path, reason in self.failed],
            "track_uris": self.added + self.updated,
        }


@dataclass
class _Loaded:
    item: AudioItem
    record: TrackRecord | None
    windows: np.ndarray | None  # None when the file's bytes are a stored track's: `vector` is that track's
    error: str | None
    vector: np.ndarray | None = None


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


def unchanged_items(store: Store, items: list[AudioItem]) -> tuple[list[AudioItem], dict[str, str]]:
    """Split off the items whose file is stored with the same path, size and mtime: {path: uri} of those."""
    facts = {id(item): file_facts(item.path) for item in items}
    stored = store.tracks_at({f[0] for f in facts.values() if f is not None})
    todo: list[AudioItem] = []
    skipped: dict[str, str] = {}
    for item in items:
        fact = facts[id(item)]
        record = stored.get(fact[0]) if fact else None
        same = (
            record is not None
            and fact is not None
            and record.size == fact[1]
            and same_mtime(record.mtime, fact[2])
            and wanted_uri(item) in (None, record.track_uri)
            and not item.overrides
        )
        if same and record is not None:
            skipped[str(item.path)] = record.track_uri
        else:
            todo.append(item)
    return todo, skipped


def _load(item: AudioItem, sha1: str | None = None) -> _Loaded:
    try:
        record, windows = load_item(item, sha1)
    except AudioError as exc:
        return _Loaded(item, None, None, str(exc))
    except OSError as exc:
        return _Loaded(item, None, None, f"{quoted(item.path)}: {exc.strerror or exc}")
    return _Loaded(item, record, windows, None)


def _known_file(item: AudioItem, sha1: str | None, stored: StoredTrack | None) -> _Loaded | None:
    """The item without decoding, when its bytes are those of a stored track with a vector: same bytes, same
    decoded windows, so the same audio identity and vector (its length is the stored track's)."""
    if sha1 is None or stored is None:
        return None
    try:
        reused = reuse_stored(item, sha1, stored)
    except OSError as exc:  # its tags could not be read
        return _Loaded(item, None, None, f"{quoted(item.path)}: {exc.strerror or exc}")
    return None if reused is None else _Loaded(item, reused[0], None, None, reused[1])


def _hashed(
    store: Store, items: list[AudioItem], pool: ThreadPoolExecutor
) -> list[tuple[AudioItem, str | None, _Loaded | None]]:
    """Each item with its file's SHA-1 (hashed in the pool) and, when the store holds those bytes, the item as
    loaded from the stored track (no decoding needed)."""
    sha1s = list(pool.map(audio_file_sha1, [item.path for item in items]))
    stored = store.tracks_with_audio("audio_sha1", [sha1 for sha1 in sha1s if sha1])
    return [
        (item, sha1, _known_file(item, sha1, stored.get(sha1) if sha1 else None))
        for item, sha1 in zip(items, sha1s, strict=True)
    ]


def _start_chunk(store: Store, items: list[AudioItem], pool: ThreadPoolExecutor) -> list[Future[_Loaded] | _Loaded]:
    """Take the chunk's files whose bytes the store holds as they are, and start decoding the others."""
    return [known or pool.submit(_load, item, sha1) for item, sha1, known in _hashed(store, items, pool)]


def _chunks_decoded_ahead(store: Store, items: list[AudioItem], pool: ThreadPoolExecutor) -> Iterator[list[_Loaded]]:
    """Yield decoded chunks while the next chunk decodes in the background."""
    pending: list[Future[_Loaded] | _Loaded] | None = None
    for start in range(0, len(items) + CHUNK_TRACKS, CHUNK_TRACKS):
        upcoming = _start_chunk(store, items[start : start + CHUNK_TRACKS], pool)
        if pending:
            yield [loaded.result() if isinstance(loaded, Future) else loaded for loaded in pending]
        pending = upcoming


def start_add(
    store: Store, encoder: TrackEncoder, items: list[AudioItem], on_progress: Callable[[int], None] | None = None
) -> tuple[AddReport, list[AudioItem]]:
    """Set aside the files stored unchanged, then bind the model: (report so far, items still to embed).

    The model's test run (`encoder.check()`) comes before the bind, and only when something will be embedded
    or a store created: a broken model writes nothing, and a re-add of unchanged files never runs the model.
    """
    skipped: dict[str, str] = {}
    filled = store.stored_model() is not None
    if filled:
        items, skipped = unchanged_items(store, items)
    if items or not filled:
        encoder.check()
    store.bind_model(encoder.name, encoder.dim, create=True)
    report = AddReport()
    report.unchanged = list(dict.fromkeys(skipped.values()))
    report.uri_by_path.update(skipped)
    if skipped and on_progress:
        on_progress(len(skipped))
    return report, items


# What embeds a list of files into a store (add_audio here, or on Ray): (store, encoder, items, on_progress).
AddFunction = Callable[[Store, TrackEncoder, list[AudioItem], Callable[[int], None] | None], AddReport]


def add_audio(
    store: Store,
    encoder: TrackEncoder,
    items: list[AudioItem],
    on_progress: Callable[[int], None] | None = None,
) -> AddReport:
    """Embed and store `items`; bad files are reported, never raised, and never touch stored points.

    Files stored with the same path, size and mtime are skipped (listed in `unchanged`, never decoded).
    """
    report, items = start_add(store, encoder, items, on_progress)
    # The matrix products here (a chunk's projection) are too small to gain from BLAS threads, whose spin-waiting
    # after each product takes the core the decoding threads need: 8 % of a first add's CPU (README).
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(DECODE_THREADS) as pool:
        for chunk in _chunks_decoded_ahead(store, items, pool):
            _store_chunk(store, encoder, chunk, report)
            if on_progress:
                on_progress(len(chunk))
    return report


def add_known_files(
    store: Store,
    encoder: TrackEncoder,
    items: list[AudioItem],
    report: AddReport,
    on_progress: Callable[[int], None] | None = None,
) -> list[tuple[AudioItem, str | None]]:
    """Write the items whose bytes a stored track was made from (hashed, never decoded), as `add_audio` does a
    chunk at a time, for an embedder that decodes elsewhere (Ray); the others come back with their SHA-1 (None
    when unhashed: an empty store holds no bytes, so its first add goes to the embedder unread)."""
    if store.count_tracks() == 0:
        return [(item, None) for item in items]
    rest: list[tuple[AudioItem, str | None]] = []
    with ThreadPoolExecutor(DECODE_THREADS) as pool:  # no model runs here: nothing for BLAS threads to spin on
        for start in range(0, len(items), HASH_PAGE):
            hashed = _hashed(store, items[start : start + HASH_PAGE], pool)
            known = [loaded for _, _, loaded in hashed if loaded is not None]
            _store_chunk(store, encoder, known, report)
            if known and on_progress:
                on_progress(len(known))
            rest += [(item, sha1) for item, sha1, loaded in hashed if loaded is None]
    return rest


def _vectors(
    store: Store, encoder: TrackEncoder, good: list[_Loaded], report: AddReport
) -> tuple[list[_Loaded], list[np.ndarray]]:
    """The tracks that have a vector, and their vectors: the stored one when it was made from the same audio
    (the file's bytes are a stored track's; or under this URI, or any other: the same windows give the same
    vector), else the encoder's. A track the model cannot embed (NaN from absurd samples, a run failure) fails
    alone, before any write."""
    # A file whose bytes were found stored came with that track's vector: only the others' previous vectors are read.
    uris = {loaded.record.track_uri for loaded in good if loaded.record and loaded.vector is None}
    stored = store.get_tracks(uris, with_vectors=True)
    vectors: list[np.ndarray | None] = []
    for loaded in good:
        previous = stored.get(loaded.record.track_uri) if loaded.record else None
        keep = previous is not None and previous.vector is not None and same_audio(previous.record, loaded.record)
        vectors.append(loaded.vector if loaded.vector is not None else previous.vector if keep and previous else None)
    missing = {i: loaded.record.audio_id for i, loaded in enumerate(good) if vectors[i] is None and loaded.record}
    known = store.tracks_with_audio("audio_id", [audio_id for audio_id in missing.values() if audio_id])
    for i, audio_id in missing.items():
        vectors[i] = known[audio_id].vector if audio_id in known else None
    fresh = [i for i, vector in enumerate(vectors) if vector is None]
    if fresh:
        encoded, problems = encoder.try_track_vectors([good[i].windows for i in fresh])
        for i, vector, problem in zip(fresh, encoded, problems, strict=True):
            path = good[i].item.path
            if problem:
                report.failed.append((str(path), f"{quoted(path)}: {problem}"))
            else:
                vectors[i] = vector
                report.embedded += 1
    kept = [i for i, vector in enumerate(vectors) if vector is not None]
    return [good[i] for i in kept], [vectors[i] for i in kept]  # type: ignore[misc]


def _store_chunk(store: Store, encoder: TrackEncoder, chunk: list[_Loaded], report: AddReport) -> None:
    """Write a chunk's tracks (reporting the files that failed to load); bad files never touch stored points."""
    report.failed += [(str(loaded.item.path), loaded.error) for loaded in chunk if loaded.error]
    good = [loaded for loaded in chunk if loaded.error is None]
    if not good:
        return
    good, vectors = _vectors(store, encoder, good, report)
    records = [loaded.record for loaded in good if loaded.record is not None]
    for loaded, record in zip(good, records, strict=True):
        report.uri_by_path[str(loaded.item.path)] = record.track_uri
    added, updated = write_tracks(store, records, vectors)
    report.added += added
    report.updated += updated


def write_tracks(
    store: Store, records: list[TrackRecord], vectors: list[np.ndarray] | np.ndarray
) -> tuple[list[str], list[str]]:
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
    touched = store.get_playlists({p for record, _ in unique for p in record.playlists}, with_centroids=False)
    if touched:
        store.refresh_centroids([playlist for playlist, _ in touched.values()])
    return added, updated


def vanished_tracks(store: Store, folders: Iterable[Path]) -> dict[str, str]:
    """{path: uri} of stored local tracks under `folders` whose file no longer exists."""
    gone: dict[str, str] = {}
    for folder in folders:
        for record in store.tracks_under(str(folder.resolve())):
            if record.path and not Path(record.path).exists():
                gone[record.path] = record.track_uri
    return gone


def report_vanished(store: Store, folders: Iterable[Path], report: AddReport, prune: bool = False) -> None:
    """List the stored files under `folders` that disappeared; with `prune`, remove their tracks."""
    if store.stored_model() is None:
        return
    store.bind_stored_model()
    gone = vanished_tracks(store, folders)
    report.vanished = sorted(gone)
    if prune and gone:
        store.delete_tracks(gone.values())
        report.removed = sorted(set(gone.values()))


@dataclass
class AddRequest:
    """What `add-track` was asked to add, checked before any store opens or model loads."""

    paths: list[Path]
    items: list[AudioItem]
    missing: list[tuple[str, str]]  # (path, reason) of the paths that are neither a file nor a folder
    unchanged: dict[str, str] = field(default_factory=dict)  # {path: uri} set aside by set_aside_unchanged

    @property
    def to_embed(self) -> list[AudioItem]:
        """The items not set aside as stored unchanged."""
        return [item for item in self.items if str(item.path) not in self.unchanged]

    @property
    def folders(self) -> list[Path]:
        """The folders given: their stored files that are gone are reported (or pruned)."""
        return [path for path in self.paths if path.is_dir()]


def add_request(paths: Iterable[Path], overrides: dict[str, str] | None = None) -> AddRequest:
    """The files under `paths`, refused when there is nothing to read at all (say why before any work: "added 0,
    failed 0" explains nothing) or when metadata `overrides` (title, artist…) would apply to several files."""
    paths = list(paths)
    files, missing = collect_audio_files(paths)
    if not files and not missing:
        raise NotFoundError(
            f"no audio files in {', '.join(quoted(p) for p in paths)} (siamrec reads "
            f"{', '.join(sorted(s.lstrip('.') for s in AUDIO_SUFFIXES))})"
        )
    overrides = {key: value for key, value in (overrides or {}).items() if value}
    if overrides and len(files) != 1:
        raise ConfigError("--uri/--title/--artist/--album apply to exactly one file")
    return AddRequest(paths, [AudioItem(path, overrides=dict(overrides)) for path in files], missing)


def set_aside_unchanged(store: Store, encoder: TrackEncoder, request: AddRequest) -> None:
    """Set the files stored unchanged aside (out of `request.to_embed`) before any progress is drawn; the model's
    test run comes only when a file is left to embed (so a re-add of an unchanged library never runs the model)."""
    report, _ = start_add(store, encoder, request.to_embed)
    request.unchanged.update(report.uri_by_path)


def add_paths(
    store: Store,
    encoder: TrackEncoder | None,
    paths: Iterable[Path] | AddRequest,
    on_progress: Callable[[int], None] | None = None,
    prune: bool = False,
    add: AddFunction = add_audio,
) -> AddReport:
    """`siamrec add-track`: add what changed under `paths`, report (or prune) what vanished from its folders.

    The command's one path, taken by the CLI and the tests alike. `encoder` may be None only for a request
    with no files (nothing to embed, so no model is loaded); `add` embeds (add_audio, or on Ray).
    """
    request = paths if isinstance(paths, AddRequest) else add_request(paths)
    if request.to_embed:
        if encoder is None:
            raise ValueError("files to add need an encoder")
        report = add(store, encoder, request.to_embed, on_progress)
    else:
        report = AddReport()
    report.unchanged = list(dict.fromkeys([*request.unchanged.values(), *report.unchanged]))
    report.uri_by_path = {**request.unchanged, **report.uri_by_path}
    report.failed = request.missing + report.failed
    report_vanished(store, request.folders, report, prune)
    return report
