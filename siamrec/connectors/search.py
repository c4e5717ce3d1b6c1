"""Searching for a named track's audio and choosing among the candidates (duration, title, non-music)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from urllib.parse import quote, urlsplit

from siamrec.connectors.base import SourceTrack
from siamrec.connectors.tagindex import normalise
from siamrec.errors import ConnectorError
from siamrec.logs import get_logger
from siamrec.redact import one_line, redacting

log = redacting(get_logger(__name__))

NON_MUSIC = (
    "interview", "podcast", "reaction", "reacts", "review", "tutorial", "lesson", "karaoke", "trailer",
    "gameplay", "walkthrough", "documentary", "unboxing", "vlog", "asmr", "full album", "live stream",
)  # fmt: skip


# ---- searching ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A URL yt-dlp can download; title/duration when the searcher knows them (else checked after download)."""

    url: str
    title: str = ""
    duration_s: float | None = None
    uploader: str = ""
    extractor: str = ""
    video_id: str = ""


Searcher = Callable[[SourceTrack], list[Candidate]]


class QuietYtdlpLogger:
    """yt-dlp prints to the terminal unless given a logger; its errors reach us as exceptions anyway."""

    def debug(self, message: str) -> None: ...

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


def download_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^(ERROR: )?(\[[\w:]+\] [^:]*: )?", "", text)
    text = re.sub(r" \(caused by .*\)$", "", text)  # yt-dlp repeats the cause in full
    if "Unsupported URL" in text:
        return "the URL is a web page with no audio in it (HTML, not audio)"
    return text


def search_query(track: SourceTrack) -> str:
    return f"{track.artist} - {track.title}" if track.artist else track.title


def youtube_search(track: SourceTrack, results: int = 5) -> list[Candidate]:
    """The default searcher: yt-dlp's `ytsearchN:artist - title`, flat (one request, no downloads)."""
    import yt_dlp

    options = {"quiet": True, "no_warnings": True, "extract_flat": "in_playlist", "logger": QuietYtdlpLogger()}
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(f"ytsearch{results}:{search_query(track)}", download=False) or {}
    except yt_dlp.utils.DownloadError as exc:
        raise ConnectorError(f"search failed: {one_line(download_message(exc))}") from None
    return [
        Candidate(
            url=entry.get("url") or f"https://www.youtube.com/watch?v={entry['id']}",
            title=entry.get("title") or "",
            duration_s=entry.get("duration"),
            uploader=entry.get("channel") or entry.get("uploader") or "",
            extractor=entry.get("ie_key") or "Youtube",
            video_id=entry.get("id") or "",
        )
        for entry in info.get("entries") or []
        if entry and (entry.get("url") or entry.get("id"))
    ]


def url_template_search(template: str) -> Searcher:
    """A searcher for catalogues that host their own audio: `{uri}`, `{id}`, `{artist}`, `{title}` filled in.

    The template is checked here, before any work: an http(s) URL whose placeholders are the four above.
    """
    try:
        example = template.format(uri="spotify:track:x", id="x", artist="a", title="t")
    except (KeyError, IndexError, ValueError) as exc:
        fields_known = "{id}, {uri}, {artist}, {title}"
        raise ConnectorError(f"--audio-url {one_line(template)!r}: use only {fields_known} ({exc!r})") from None
    scheme = urlsplit(example).scheme.lower()
    if scheme not in ("http", "https") or not urlsplit(example).netloc:
        raise ConnectorError(f"--audio-url {one_line(template)!r}: give an http:// or https:// URL template")

    def search(track: SourceTrack) -> list[Candidate]:
        values = {"uri": track.uri, "id": track.uri.rsplit(":", 1)[-1], "artist": track.artist, "title": track.title}
        return [Candidate(url=template.format(**{k: quote(v, safe="") for k, v in values.items()}))]

    return search


# ---- choosing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchOptions:
    """Bounds on fetching: concurrency, request rate, what counts as the same recording."""

    workers: int = 2
    min_interval_s: float = 1.0
    duration_tolerance_s: float = 15.0
    max_duration_s: float = 900.0
    min_similarity: float = 0.5
    max_attempts: int = 3
    max_filesize: int = 200 * 1024 * 1024
    socket_timeout_s: float = 30.0

    def tolerance(self, duration_s: float) -> float:
        return max(self.duration_tolerance_s, 0.1 * duration_s)


def _words(text: str) -> set[str]:
    return set(normalise(text).split())


def title_similarity(track: SourceTrack, candidate: Candidate) -> float:
    """0..1: how much of the track's title and artist the candidate's title (and uploader) contains."""
    words = _words(f"{candidate.title} {candidate.uploader}")
    title, artist = _words(track.title), _words(track.artist)
    title_recall = len(title & words) / len(title) if title else 0.0
    artist_recall = len(artist & words) / len(artist) if artist else 1.0
    sequence = SequenceMatcher(None, normalise(search_query(track)), normalise(candidate.title)).ratio()
    return 0.5 * title_recall + 0.3 * artist_recall + 0.2 * sequence


def non_music_marker(track: SourceTrack, title: str) -> str | None:
    """A word that marks a video as talk, game footage or a long mix, unless the track's own names contain it."""
    own = normalise(f"{track.title} {track.artist} {track.album}")
    found = normalise(title)
    return next((m for m in NON_MUSIC if re.search(rf"\b{m}\b", found) and not re.search(rf"\b{m}\b", own)), None)


def rejection(track: SourceTrack, candidate: Candidate, options: FetchOptions) -> str | None:
    """Why a candidate cannot be this track (None: it may be). Unknown title/duration are checked after download."""
    duration = candidate.duration_s
    if duration is not None and duration > options.max_duration_s:
        return f"too long ({duration:.0f} s > {options.max_duration_s:.0f} s)"
    if duration is not None and track.duration_s:
        off = abs(duration - track.duration_s)
        if off > options.tolerance(track.duration_s):
            return f"lasts {duration:.0f} s, the track {track.duration_s:.0f} s"
    if candidate.title:
        marker = non_music_marker(track, candidate.title)
        if marker:
            return f"looks like a non-music video ({marker!r})"
        score = title_similarity(track, candidate)
        if score < options.min_similarity:
            return f"title {candidate.title!r} does not match (similarity {score:.2f})"
    return None


def rank(
    track: SourceTrack, candidates: Iterable[Candidate], options: FetchOptions
) -> tuple[list[Candidate], list[str]]:
    """Acceptable candidates, best first (title similarity, then closeness in duration), and why others were not."""
    kept: list[tuple[float, float, Candidate]] = []
    rejected: list[str] = []
    for candidate in candidates:
        reason = rejection(track, candidate, options)
        if reason:
            rejected.append(f"{candidate.url}: {reason}")
            continue
        # Untitled candidates (a URL template's) pass, but rank after any that visibly match.
        similarity = title_similarity(track, candidate) if candidate.title else options.min_similarity
        off = abs(candidate.duration_s - track.duration_s) if candidate.duration_s and track.duration_s else 0.0
        kept.append((-similarity, off, candidate))
    kept.sort(key=lambda item: item[:2])
    return [candidate for *_, candidate in kept], rejected
