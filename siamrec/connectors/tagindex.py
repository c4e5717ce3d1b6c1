"""`--audio-dir`: audio for named tracks found in a collection the user owns, by tags (artist, title, duration)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import mutagen

from siamrec.audio import is_audio_path
from siamrec.connectors.base import SourceTrack
from siamrec.errors import ConnectorError
from siamrec.logs import get_logger
from siamrec.tags import read_tags

log = get_logger(__name__)

# ---- a collection the user owns, matched by tags -------------------------------------------------------


def normalise(text: str) -> str:
    """Casefolded words without accents, bracketed asides ("(Remastered 2011)", "[Official Video]") or "feat."."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = re.sub(r"[(\[][^)\]]*[)\]]", " ", text)
    text = re.sub(r"\b(feat|ft|featuring)\b.*", " ", text)
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def artists_of(text: str) -> set[str]:
    return {normalise(part) for part in re.split(r",|&|;|/|\band\b|\bx\b", text) if normalise(part)}


def file_duration(path: Path) -> float | None:
    try:
        audio = mutagen.File(str(path))
    except (mutagen.MutagenError, OSError, ValueError):
        audio = None
    length = getattr(getattr(audio, "info", None), "length", None)
    return float(length) if length else None


@dataclass(frozen=True)
class _Tagged:
    path: Path
    title: str
    artists: frozenset[str]
    duration_s: float | None


class TagIndex:
    """Audio files under a folder, found by artist and title (fuzzy within the artist) and checked by duration."""

    def __init__(self, root: Path, tolerance_s: float = 10.0, min_similarity: float = 0.85) -> None:
        if not root.is_dir():
            raise ConnectorError(f"--audio-dir {root}: no such folder")
        self.tolerance_s = tolerance_s
        self.min_similarity = min_similarity
        self.files = [self._tagged(path) for path in sorted(root.rglob("*")) if path.is_file() and is_audio_path(path)]

    @staticmethod
    def _tagged(path: Path) -> _Tagged:
        tags = read_tags(path)
        return _Tagged(path, normalise(tags["title"]), frozenset(artists_of(tags["artist"])), file_duration(path))

    def match(self, track: SourceTrack) -> Path | None:
        title, artists = normalise(track.title), artists_of(track.artist)
        best: tuple[float, Path] | None = None
        for item in self.files:
            if artists and item.artists and not artists & item.artists:
                continue
            if track.duration_s and item.duration_s and abs(track.duration_s - item.duration_s) > self.tolerance_s:
                continue
            score = 1.0 if item.title == title else SequenceMatcher(None, item.title, title).ratio()
            if score >= self.min_similarity and (best is None or score > best[0]):
                best = (score, item.path)
        return best[1] if best else None
