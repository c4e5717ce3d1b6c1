"""Local playlists: M3U/M3U8 files (entries are paths, relative to the list, or track URIs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from siamrec.errors import ConnectorError

URI_SCHEMES = ("spotify:", "local:", "http://", "https://", "file://")


@dataclass(frozen=True)
class PlaylistEntries:
    """A playlist read from disk: its name and its entries (files that may or may not exist, or URIs)."""

    name: str
    files: list[Path]
    uris: list[str]


def read_m3u(path: Path) -> PlaylistEntries:
    """Parse an M3U/M3U8 file; `#EXTM3U`/`#EXTINF` lines are comments for our purpose."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise ConnectorError(f"cannot read playlist {path}: {exc.strerror or exc}") from exc
    files: list[Path] = []
    uris: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("file://"):
            files.append(Path(line.removeprefix("file://")))
        elif line.startswith(URI_SCHEMES):
            uris.append(line)
        else:
            entry = Path(line)
            files.append(entry if entry.is_absolute() else (path.parent / entry))
    name = next((line[10:].strip() for line in text.splitlines() if line.startswith("#PLAYLIST:")), path.stem)
    return PlaylistEntries(name=name, files=files, uris=uris)


def write_m3u(path: Path, entries: list[tuple[str, str, float | None]]) -> None:
    """Write (location, "artist - title", duration) rows as an extended M3U file."""
    lines = ["#EXTM3U"]
    for location, label, duration in entries:
        lines.append(f"#EXTINF:{int(duration) if duration else -1},{label}")
        lines.append(location)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
