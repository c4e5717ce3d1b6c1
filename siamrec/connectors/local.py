"""Local playlists: M3U/M3U8 and PLS files, and one-folder-per-playlist layouts.

Entries are paths (relative to the playlist file) or track URIs. A local file's track URI is
`local:track:<sha1 of its bytes>`, so the same audio is one track whichever list or folder names it.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from siamrec.audio import identify, is_audio_path
from siamrec.connectors.base import Problem, SourcePlaylist, SourceTrack
from siamrec.connectors.files import PLAYLIST_BYTES, FileRefused, read_bounded
from siamrec.errors import AudioError, ConnectorError
from siamrec.names import quoted
from siamrec.paths import write_error
from siamrec.tags import read_tags
from siamrec.uris import URI_SCHEMES, local_playlist_uri, local_track_uri

PLAYLIST_SUFFIXES = frozenset({".m3u", ".m3u8", ".pls"})
SOURCE = "local"
_PLS_FILE = re.compile(r"^file(\d+)=(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class PlaylistEntries:
    """A playlist read from disk: its name and its entries in order (files that may not exist, or URIs)."""

    name: str
    entries: list[Path | str]

    @property
    def files(self) -> list[Path]:
        return [entry for entry in self.entries if isinstance(entry, Path)]

    @property
    def uris(self) -> list[str]:
        return [entry for entry in self.entries if isinstance(entry, str)]


def _entry(location: str, base: Path) -> Path | str:
    """A path (made absolute against the list's folder) or a URI kept as it is."""
    if location.startswith("file://"):
        return Path(unquote(urlparse(location).path))
    if location.startswith(URI_SCHEMES):
        return location
    entry = Path(location)
    return entry if entry.is_absolute() else base / entry


def _read_text(path: Path) -> str:
    """The playlist's text; a FIFO, a device or a file over PLAYLIST_BYTES is refused, never read."""
    try:
        return read_bounded(path, PLAYLIST_BYTES).decode("utf-8-sig", errors="replace")
    except FileRefused as exc:
        raise ConnectorError(f"cannot read playlist {quoted(path)}: {exc}") from None


def read_m3u(path: Path) -> PlaylistEntries:
    """Parse an M3U/M3U8 file; `#EXTM3U`/`#EXTINF` lines are comments for our purpose."""
    text = _read_text(path)
    entries = [
        _entry(line.strip(), path.parent)
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    name = next((line[10:].strip() for line in text.splitlines() if line.startswith("#PLAYLIST:")), path.stem)
    return PlaylistEntries(name=name, entries=entries)


def read_pls(path: Path) -> PlaylistEntries:
    """Parse a PLS file (`[playlist]`, `File1=…`, `Title1=…`): entries in the order of their numbers."""
    text = _read_text(path)
    numbered = []
    for line in text.splitlines():
        match = _PLS_FILE.match(line.strip())
        if match and match.group(2).strip():
            numbered.append((int(match.group(1)), match.group(2).strip()))
    if not numbered and "[playlist]" not in text.casefold():
        raise ConnectorError(f"{path}: not a PLS playlist (no [playlist] section)")
    return PlaylistEntries(name=path.stem, entries=[_entry(location, path.parent) for _, location in sorted(numbered)])


def read_playlist_file(path: Path) -> PlaylistEntries:
    """M3U/M3U8 or PLS, by suffix."""
    return read_pls(path) if path.suffix.lower() == ".pls" else read_m3u(path)


def write_m3u(path: Path, entries: list[tuple[str, str, float | None]]) -> None:
    """Write (location, "artist - title", duration) rows as an extended M3U file."""
    lines = ["#EXTM3U"]
    for location, label, duration in entries:
        lines.append(f"#EXTINF:{int(duration) if duration else -1},{' '.join(label.split())}")
        lines.append(location)
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise write_error(path, exc) from exc


def local_track(path: Path) -> SourceTrack:
    """A file as a track: URI from its decoded audio (as `siamrec add-track` gives it), names from its tags.

    Raises AudioError for a file that is not usable audio.
    """
    tags = read_tags(path)
    return SourceTrack(
        uri=local_track_uri(identify(path)),
        title=tags["title"],
        artist=tags["artist"],
        album=tags["album"],
        path=path.resolve(),
    )


def folder_playlists(root: Path) -> list[tuple[str, list[Path]]]:
    """(name, audio files) for each subfolder of `root` (searched recursively), plus `root`'s loose files."""
    if not root.is_dir():
        raise ConnectorError(f"{root}: no such folder")
    found = []
    loose = sorted(p for p in root.iterdir() if p.is_file() and is_audio_path(p))
    if loose:
        found.append((root.resolve().name, loose))
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_path(p))
        if files:
            found.append((folder.name, files))
    return found


class LocalSource:
    """Playlists from M3U/M3U8/PLS files and from folders (one subfolder per playlist)."""

    label = "local files"

    def __init__(
        self,
        playlist_files: Iterable[Path] = (),
        folders: Iterable[Path] = (),
        named: Iterable[tuple[str, list[Path | str]]] = (),
    ) -> None:
        """`named`: playlists given directly as (name, files and track URIs), as `siamrec playlist create` does."""
        self.playlist_files = list(playlist_files)
        self.folders = list(folders)
        self.named = list(named)
        self.problems: list[Problem] = []
        self._claimed: dict[str, str] = {}  # playlist URI → where the playlist that took it came from

    def playlists(self) -> Iterator[SourcePlaylist]:
        """Lists first, then folders, each in the order given; a second playlist with the same URI (an
        `x.m3u8` beside an `x/` folder) is a conflict: reported, never saved over the first."""
        for name, entries in self.named:
            yield from self._playlist(name, entries, where=name)
        for path in self.playlist_files:
            try:
                entries = read_playlist_file(path)
            except ConnectorError as exc:
                self.problems.append(Problem(str(path), str(exc).removeprefix(f"{path}: ")))
                continue
            yield from self._playlist(entries.name, entries.entries, where=path.name)
        for root in self.folders:
            for name, files in folder_playlists(root):
                yield from self._playlist(name, list(files), where=f"{root}/{name}/")

    def _playlist(self, name: str, entries: list[Path | str], where: str) -> Iterator[SourcePlaylist]:
        uri = local_playlist_uri(name)
        first = self._claimed.setdefault(uri, where)
        if first != where:
            self.problems.append(
                Problem(where, f"conflict: playlist {name!r} ({uri}) is already read from {first}; not saved, "
                        "rename one of them")
            )  # fmt: skip
            return
        tracks = [track for track in (self._track(entry, where) for entry in entries) if track is not None]
        yield SourcePlaylist(uri=uri, name=name, source=SOURCE, tracks=tracks)

    def _track(self, entry: Path | str, where: str) -> SourceTrack | None:
        if isinstance(entry, str):
            return SourceTrack(uri=entry)
        try:
            if not entry.is_file():
                self.problems.append(Problem(f"{where}: {entry}", "no such file"))
                return None
            if not is_audio_path(entry):
                self.problems.append(Problem(f"{where}: {entry}", "not an audio file (unknown suffix)"))
                return None
            return local_track(entry)
        except (OSError, ValueError) as exc:  # a name too long for the filesystem, a NUL byte in a line
            why = "path too long" if getattr(exc, "errno", None) == errno.ENAMETOOLONG else _reason(exc)
            self.problems.append(Problem(f"{where}: {_short(str(entry))}", f"unreadable ({why})"))
            return None
        except AudioError as exc:
            self.problems.append(Problem(f"{where}: {entry}", str(exc).removeprefix(f"{entry}: ")))
            return None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _short(text: str, limit: int = 200) -> str:
    """An entry as shown in a report: an over-long line is cut, so one problem stays one readable line."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
