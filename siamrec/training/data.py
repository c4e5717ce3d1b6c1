"""Training data: find tracks (audio folder, FMA layout, siamrec corpus), decode them once into a cache of
memory-mapped 16 kHz arrays, hold playlists out for validation, and serve random 3 s crops.

Decoding an mp3/ogg costs far more than a training step's worth of crops, so every file is decoded once into
`<cache>/<key>.npy` and read back with `np.load(mmap_mode="r")`: a crop touches only its own pages, and
DataLoader workers share the page cache instead of copying arrays. float16 halves disk and page cache; its
11-bit mantissa keeps rounding error about 66 dB below the signal, under the log-mel front end's floor.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from siamrec import constants as C
from siamrec.audio import decode, is_audio_path, windows_from_signal
from siamrec.errors import AudioError, ConfigError

if TYPE_CHECKING:
    from siamrec.store import Store

CACHE_VERSION = "1"
# How a positive pair is made: one crop twice, two crops of one track, or crops of two different tracks of
# one playlist (the playlist is the label SimSiam never sees otherwise).
PAIRS = ("same-crop", "two-crops", "playlist")


@dataclass(frozen=True)
class Track:
    """One training track: its identity, its file, and the playlists (or genre, or folder) it belongs to."""

    uri: str
    path: Path
    playlists: tuple[str, ...] = ()


@dataclass
class TrackSet:
    """Tracks and the playlists that group them (playlist id → indices into `tracks`)."""

    tracks: list[Track]
    playlists: dict[str, list[int]] = field(default_factory=dict)

    def subset(self, keep: Iterable[int]) -> TrackSet:
        """The tracks at `keep` with their playlists re-indexed (playlists left empty are dropped)."""
        keep = list(keep)
        new_index = {old: new for new, old in enumerate(keep)}
        playlists = {
            name: [new_index[i] for i in members if i in new_index] for name, members in self.playlists.items()
        }
        return TrackSet([self.tracks[i] for i in keep], {k: v for k, v in playlists.items() if v})


def _group(tracks: list[Track]) -> TrackSet:
    playlists: dict[str, list[int]] = {}
    for index, track in enumerate(tracks):
        for name in track.playlists:
            playlists.setdefault(name, []).append(index)
    return TrackSet(tracks, playlists)


def folder_tracks(root: str | Path) -> TrackSet:
    """Every audio file under `root` (recursive); a file's first-level sub-folder is its playlist."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"--data {root}: no such folder")
    tracks = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_audio_path(p)):
        relative = path.relative_to(root)
        group = (relative.parts[0],) if len(relative.parts) > 1 else ()
        tracks.append(Track(f"file:{relative.as_posix()}", path, group))
    if not tracks:
        raise ConfigError(f"--data {root}: no audio files found (looked for wav, flac, ogg, mp3, …)")
    return _group(tracks)


def _fma_genres(metadata: Path) -> dict[int, str]:
    """track id → top genre from FMA's tracks.csv (three header rows: section, field, then 'track_id')."""
    with open(metadata, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        sections, fields = next(rows), next(rows)
        next(rows)
        columns = [f"{s}.{f}" for s, f in zip(sections, fields, strict=True)]
        if "track.genre_top" not in columns:
            raise ConfigError(f"{metadata}: not an FMA tracks.csv (no track.genre_top column)")
        genre = columns.index("track.genre_top")
        return {int(row[0]): row[genre] for row in rows if row and row[genre]}


def fma_tracks(root: str | Path) -> TrackSet:
    """The FMA layout (`fma_small/000/000002.mp3`, `fma_metadata/tracks.csv`): top genre as the playlist."""
    root = Path(root).expanduser()
    audio = sorted(p for p in root.rglob("*.mp3") if p.stem.isdigit())
    if not audio:
        raise ConfigError(f"--fma {root}: no FMA audio (expected fma_*/000/000002.mp3)")
    metadata = next(iter(sorted(root.rglob("tracks.csv"))), None)
    genres = _fma_genres(metadata) if metadata is not None else {}
    tracks = [
        Track(f"fma:track:{int(p.stem)}", p, (genres[int(p.stem)],) if int(p.stem) in genres else ()) for p in audio
    ]
    return _group(tracks)


def corpus_tracks(root: str | Path) -> TrackSet:
    """A siamrec corpus (playlists.json in the MPD slice format + tracks.tsv mapping track URIs to files)."""
    root = Path(root).expanduser()
    slice_file, table = root / "playlists.json", root / "tracks.tsv"
    if not slice_file.is_file() or not table.is_file():
        raise ConfigError(f"--corpus {root}: expected playlists.json and tracks.tsv (see shared/corpus)")
    with open(table, newline="", encoding="utf-8") as handle:
        files = {row["track_uri"]: root / row["path"] for row in csv.DictReader(handle, delimiter="\t")}
    membership: dict[str, list[str]] = {}
    for playlist in json.loads(slice_file.read_text(encoding="utf-8"))["playlists"]:
        name = str(playlist.get("name") or playlist["pid"])
        for item in playlist["tracks"]:
            membership.setdefault(item["track_uri"], []).append(name)
    tracks = [Track(uri, files[uri], tuple(names)) for uri, names in membership.items() if uri in files]
    return _group(tracks)


def store_tracks(store: Store) -> TrackSet:
    """The tracks a user has synced whose audio file is still readable, grouped by the stored playlists."""
    membership: dict[str, list[str]] = {}
    for playlist in store.iter_playlists():
        for uri in playlist.track_uris:
            membership.setdefault(uri, []).append(playlist.name or playlist.playlist_uri)
    tracks = [
        Track(stored.record.track_uri, Path(stored.record.path), tuple(membership.get(stored.record.track_uri, ())))
        for stored in store.iter_tracks(with_vectors=False)
        if stored.record.path and Path(stored.record.path).is_file()
    ]
    if not tracks:
        raise ConfigError("--from-store: no stored track has a readable audio file (add tracks or sync with audio)")
    return _group(tracks)


def split_by_playlist(tracks: TrackSet, fraction: float, seed: int) -> tuple[TrackSet, TrackSet, list[str]]:
    """Hold out whole playlists: (train, validation, held-out playlist ids).

    A track in any held-out playlist leaves the training set, so validation audio is never trained on.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction {fraction} must be in [0, 1)")
    names = sorted(tracks.playlists)
    count = int(round(fraction * len(names)))
    if fraction > 0 and len(names) >= 4:
        count = max(count, 2)  # a ranking metric needs at least two playlists
    held = sorted(np.random.default_rng(seed).permutation(names)[:count].tolist()) if count else []
    held_tracks = {i for name in held for i in tracks.playlists[name]}
    train = tracks.subset(i for i in range(len(tracks.tracks)) if i not in held_tracks)
    val = tracks.subset(sorted(held_tracks))
    return train, val, held


def parse_pairs(text: str) -> dict[str, float]:
    """`two-crops` or `two-crops:0.5,playlist:0.5` → pair kind → probability (weights normalised to 1)."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight_text = part.strip().partition(":")
        if name not in PAIRS:
            raise ConfigError(f"--pairs {text}: unknown kind {name!r}; choose from {', '.join(PAIRS)}")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ConfigError(f"--pairs {text}: {weight_text!r} is not a number (write KIND:WEIGHT)") from None
        if not weight > 0 or name in weights:
            raise ConfigError(f"--pairs {text}: each kind once, with a positive weight")
        weights[name] = weight
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def playlist_partners(n_tracks: int, playlists: dict[str, list[int]]) -> list[np.ndarray]:
    """For every track, the other tracks that share at least one playlist with it (sorted, distinct)."""
    partners: list[set[int]] = [set() for _ in range(n_tracks)]
    for members in playlists.values():
        distinct = set(members)
        for track in distinct:
            partners[track] |= distinct - {track}
    return [np.array(sorted(p), dtype=np.int64) for p in partners]


class PairSampler:
    """Which two tracks (and which kind of pair) item `index` of an epoch is made of.

    A playlist pair takes its second track among the anchor's partners, so it never pairs a track with itself
    nor with a track of another playlist. A track without partners makes two-crop pairs instead; when every
    pair is a playlist pair, such tracks are left out of the epoch.
    """

    def __init__(self, n_tracks: int, weights: dict[str, float], partners: list[np.ndarray] | None = None) -> None:
        self.kinds = list(weights)
        self.probabilities = np.array([weights[k] for k in self.kinds])
        self.partners = partners if partners is not None else [np.zeros(0, np.int64)] * n_tracks
        if "playlist" in weights and not any(len(p) for p in self.partners):
            raise ConfigError("--pairs playlist: no playlist has two training tracks (use two-crops)")
        only_playlists = self.kinds == ["playlist"]
        self.anchors = np.array([i for i in range(n_tracks) if not only_playlists or len(self.partners[i])])

    def __len__(self) -> int:
        return len(self.anchors)

    def draw(self, index: int, rng: np.random.Generator) -> tuple[int, int, str]:
        """(first track, second track, kind) for item `index` (anchors repeat every len(self) items)."""
        first = int(self.anchors[index % len(self.anchors)])
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.probabilities))]
        if kind == "playlist":
            if len(self.partners[first]) == 0:
                return first, first, "two-crops"
            return first, int(rng.choice(self.partners[first])), kind
        return first, first, kind


# ---------------------------------------------------------------------------------------------- cache
def cache_key(path: Path) -> str:
    """Identity of a decoded file: its resolved path, size and modification time (a changed file re-decodes)."""
    stat = path.stat()
    text = f"{CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{C.SAMPLE_RATE}"
    return hashlib.sha1(text.encode()).hexdigest()


def _decode_to_cache(job: tuple[Path, Path]) -> str | None:
    """Decode one file into the cache (atomically); return an error message instead of raising."""
    path, target = job
    try:
        signal = decode(path)
    except AudioError as exc:
        return str(exc)
    tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, signal.astype(np.float16))
    tmp.replace(target)
    return None


def build_cache(
    tracks: TrackSet,
    cache_dir: str | Path,
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
) -> tuple[TrackSet, list[Path], list[str]]:
    """Decode every track not yet cached. Returns (decodable tracks, their cache files, skipped reasons)."""
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    targets = [cache_dir / f"{cache_key(t.path)}.npy" for t in tracks.tracks]
    jobs = [(t.path, target) for t, target in zip(tracks.tracks, targets, strict=True) if not target.exists()]
    errors: dict[Path, str] = {}
    if on_done is not None:
        on_done(len(targets) - len(jobs))
    if jobs:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for (path, _), error in zip(jobs, pool.map(_decode_to_cache, jobs), strict=True):
                if error is not None:
                    errors[path] = error
                if on_done is not None:
                    on_done(1)
    keep = [i for i, t in enumerate(tracks.tracks) if t.path not in errors]
    return tracks.subset(keep), [targets[i] for i in keep], list(errors.values())


def open_cached(files: list[Path]) -> list[np.ndarray]:
    """Memory-map the cached signals (float16, 16 kHz)."""
    return [np.load(f, mmap_mode="r") for f in files]


def random_crop(signal: np.ndarray, rng: np.random.Generator, length: int = C.WINDOW_SAMPLES) -> np.ndarray:
    """A random `length`-sample float32 crop; a signal shorter than that is looped to fill it."""
    if signal.shape[0] <= length:
        return np.resize(np.asarray(signal, dtype=np.float32), length)
    start = int(rng.integers(0, signal.shape[0] - length + 1))
    return np.asarray(signal[start : start + length], dtype=np.float32)


def evaluation_windows(signal: np.ndarray, max_windows: int = C.WINDOWS_PER_TRACK) -> np.ndarray:
    """The windows a track vector is made of (evenly spread, as siamrec.audio does for inference)."""
    return windows_from_signal(np.asarray(signal, dtype=np.float32), max_windows)
