"""The Million Playlist Dataset (Spotify, RecSys Challenge 2018): slice files and the challenge set.

The dump is 1,000 slice files (`mpd.slice.<first pid>-<last pid>.json`, 1,000 playlists each, ~33 GB in all).
Slices are read one at a time in pid order, so memory holds one slice plus the selected playlists (with
`--top-followers N`, only the N best so far). A slice that is not valid JSON, or a playlist or track that
lacks a required field, is reported as a Problem and skipped; the rest of the dump is still read.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siamrec.connectors.base import Problem, SourcePlaylist, SourceTrack, duration_seconds, text_field
from siamrec.connectors.files import SLICE_BYTES, FileRefused, read_bounded
from siamrec.errors import ConnectorError

SOURCE = "mpd"
PLAYLIST_PREFIX = "mpd:playlist:"
SLICE_GLOB = "mpd.slice.*.json"
_RANGE = re.compile(r"(\d+)-(\d+)")


def playlist_uri(pid: int) -> str:
    return f"{PLAYLIST_PREFIX}{pid}"


@dataclass(frozen=True)
class MpdSelection:
    """Which playlists to take: filters first (pid, name, length), then the N most-followed of those."""

    top_followers: int | None = None
    pids: frozenset[int] = frozenset()
    name_pattern: re.Pattern[str] | None = None
    min_tracks: int = 0

    def admits(self, pid: int, playlist: SourcePlaylist) -> bool:
        if self.pids and pid not in self.pids:
            return False
        if self.name_pattern is not None and not self.name_pattern.search(playlist.name):
            return False
        return len(playlist.tracks) >= self.min_tracks

    def may_hold(self, slice_path: Path) -> bool:
        """False when the slice's pid range (from its name) holds none of the requested pids: skip reading it."""
        bounds = slice_range(slice_path)
        if not self.pids or bounds is None:
            return True
        return any(bounds[0] <= pid <= bounds[1] for pid in self.pids)


def slice_range(path: Path) -> tuple[int, int] | None:
    match = _RANGE.search(path.name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def slice_files(path: Path) -> list[Path]:
    """The slice files of a dump folder (the zip's layout or a flat folder) in pid order, or one file."""
    if not path.is_dir():
        if path.exists():
            return [path]  # a file; reading it refuses a FIFO or a device
        raise ConnectorError(f"{path}: no such Million Playlist Dataset folder or slice file")
    files = sorted(path.rglob(SLICE_GLOB)) or sorted(path.glob("*.json"))
    if not files:
        raise ConnectorError(f"{path}: no slice files ({SLICE_GLOB}) in this folder")
    # Numeric order: "mpd.slice.10000-10999" sorts before "mpd.slice.2000-2999" by name, not by pid.
    return sorted(files, key=lambda f: (slice_range(f) or (10**12, 0), f.name))


class MpdSource:
    """Playlists from Million Playlist Dataset slice files or the challenge set, filtered by MpdSelection."""

    label = "Million Playlist Dataset"

    def __init__(self, paths: Iterable[Path], selection: MpdSelection | None = None) -> None:
        self.paths = list(paths)
        for path in self.paths:  # before any work starts: a typo should not cost a half-done sync
            if not path.exists():
                raise ConnectorError(f"{path}: no such Million Playlist Dataset folder or slice file")
        self.selection = selection or MpdSelection()
        self.problems: list[Problem] = []
        self._first_seen: dict[int, str] = {}  # pid → slice it was first read from

    def playlists(self) -> Iterator[SourcePlaylist]:
        admitted = (
            playlist
            for path in self.paths
            for slice_path in slice_files(path)
            if self.selection.may_hold(slice_path)
            for pid, playlist in self._first_of_each_pid(slice_path)
            if self.selection.admits(pid, playlist)
        )
        if self.selection.top_followers is None:
            yield from admitted
        else:
            yield from most_followed(admitted, self.selection.top_followers)

    def _first_of_each_pid(self, path: Path) -> Iterator[tuple[int, SourcePlaylist]]:
        """The rule for a pid seen twice (two slices, or twice in one): the first in reading order wins
        (paths as given, slices in pid order, playlists in file order); later copies are reported, skipped."""
        name = path.name
        for pid, playlist in self._read_slice(path):
            first = self._first_seen.get(pid)
            if first is not None:
                self._problem(f"{path.name}: playlist {pid}", f"duplicate pid (first read in {first}); skipped")
                continue
            self._first_seen[pid] = name
            yield pid, playlist

    def _read_slice(self, path: Path) -> Iterator[tuple[int, SourcePlaylist]]:
        document = self._load(path)
        if document is None:
            return
        challenge = document.get("name") == "challenge_set" or "num_holdouts" in _first(document["playlists"])
        for index, raw in enumerate(document["playlists"]):
            parsed = self._parse_playlist(path, index, raw, challenge)
            # A title-only challenge playlist has no seed tracks: nothing to store, and not an error.
            if parsed is not None and (parsed[1].tracks or not challenge):
                yield parsed

    def _load(self, path: Path) -> dict[str, Any] | None:
        """The slice as a dict with a 'playlists' list, or None (and a Problem) when it is not one."""
        try:
            document = json.loads(read_bounded(path, SLICE_BYTES))
        except FileRefused as exc:
            self._problem(str(path), str(exc))
            return None
        except json.JSONDecodeError as exc:
            self._problem(str(path), f"not valid JSON ({exc.msg} at line {exc.lineno}); re-download this slice")
            return None
        except RecursionError:
            self._problem(str(path), "JSON nested too deeply to be a Million Playlist Dataset slice; skipped")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._problem(str(path), f"unreadable ({getattr(exc, 'strerror', None) or exc})")
            return None
        if not isinstance(document, dict) or not isinstance(document.get("playlists"), list):
            self._problem(str(path), "no 'playlists' list: not a Million Playlist Dataset slice")
            return None
        return document

    def _parse_playlist(self, path: Path, index: int, raw: Any, challenge: bool) -> tuple[int, SourcePlaylist] | None:
        where = f"{path.name}: playlist #{index}"
        missing = _missing_fields(raw, {"pid": int, "tracks": list} | ({} if challenge else {"name": str}))
        if missing:
            self._problem(where, f"missing or malformed {', '.join(repr(m) for m in missing)}; playlist skipped")
            return None
        pid = raw["pid"]
        parsed = (self._parse_track(path, pid, i, raw_track) for i, raw_track in enumerate(raw["tracks"]))
        tracks = [track for track in parsed if track is not None]
        followers = raw.get("num_followers")
        description = text_field(raw.get("description"))
        if challenge:
            total = raw.get("num_tracks")
            given = f"challenge set: {len(tracks)} of {total if isinstance(total, int) else '?'} tracks given"
            description = f"{description} ({given})" if description else given
        playlist = SourcePlaylist(
            uri=playlist_uri(pid),
            name=text_field(raw.get("name")) or f"challenge playlist {pid}",
            source=SOURCE,
            tracks=tracks,
            followers=followers if isinstance(followers, int) else None,
            description=description,
        )
        return pid, playlist

    def _parse_track(self, path: Path, pid: int, index: int, raw: Any) -> SourceTrack | None:
        missing = _missing_fields(raw, {"track_uri": str})
        if missing:
            self._problem(f"{path.name}: playlist {pid} track #{index}", "missing 'track_uri'; track skipped")
            return None
        return SourceTrack(
            uri=raw["track_uri"],
            title=text_field(raw.get("track_name")),
            artist=text_field(raw.get("artist_name")),
            album=text_field(raw.get("album_name")),
            duration_s=duration_seconds(raw.get("duration_ms")),
        )

    def _problem(self, where: str, reason: str) -> None:
        self.problems.append(Problem(where, reason))


def _first(playlists: list[Any]) -> dict[str, Any]:
    return playlists[0] if playlists and isinstance(playlists[0], dict) else {}


def _missing_fields(raw: Any, required: dict[str, type]) -> list[str]:
    if not isinstance(raw, dict):
        return list(required)
    return [key for key, kind in required.items() if not isinstance(raw.get(key), kind) or isinstance(raw[key], bool)]


@dataclass(order=True)
class _Ranked:
    followers: int
    neg_pid: int
    playlist: SourcePlaylist = field(compare=False)


def most_followed(playlists: Iterable[SourcePlaylist], n: int) -> list[SourcePlaylist]:
    """The n most-followed playlists (ties: lower pid first), holding only n at a time; most-followed first."""
    heap: list[_Ranked] = []
    if n <= 0:
        return []
    for playlist in playlists:
        ranked = _Ranked(playlist.followers or 0, -int(playlist.uri.removeprefix(PLAYLIST_PREFIX)), playlist)
        if len(heap) < n:
            heapq.heappush(heap, ranked)
        elif ranked > heap[0]:
            heapq.heapreplace(heap, ranked)
    return [ranked.playlist for ranked in sorted(heap, reverse=True)]
