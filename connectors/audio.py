"""Audio for tracks that a playlist source names but does not hold, with a record of where each clip came from.

Three ways, tried in this order by the sync:
- `--audio-manifest FILE`: a manifest (TSV with a header, or JSON lines) mapping track URIs to files, paths
  relative to the manifest's folder. The dev corpus's tracks.tsv is one; so is the fetch cache's manifest.tsv.
- `--audio-dir DIR`: a collection the user owns, matched by tags (artist, title, duration).
- `--fetch-audio`: yt-dlp. A pluggable searcher proposes candidates (default: YouTube "artist - title"); the best
  by duration and title that does not look like non-music is downloaded audio-only and converted by ffmpeg to
  Ogg Opus (which soundfile reads). Each clip is cached under its track URI, one folder per track holding the
  audio and its manifest row, moved into place by one rename: a killed fetch leaves nothing half-done, and
  nothing is downloaded twice. Rows are also appended to `manifest.tsv` in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import mutagen
import soundfile as sf

from siamrec.audio import file_sha1, is_audio_path
from siamrec.connectors.base import Problem, SourceTrack
from siamrec.errors import ConnectorError
from siamrec.logs import get_logger
from siamrec.tags import read_tags

log = get_logger(__name__)

MANIFEST_NAME = "manifest.tsv"
ROW_NAME = "row.json"
FETCH_CODEC = "opus"
HTML_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")
NON_MUSIC = (
    "interview", "podcast", "reaction", "reacts", "review", "tutorial", "lesson", "karaoke", "trailer",
    "gameplay", "walkthrough", "documentary", "unboxing", "vlog", "asmr", "full album", "live stream",
)  # fmt: skip


@dataclass(frozen=True)
class ManifestRow:
    """Where one track's audio came from; `path` is relative to the manifest's folder."""

    track_uri: str
    path: str
    duration_ms: int | None = None
    source_url: str = ""
    extractor: str = ""
    video_id: str = ""
    audio_sha1: str = ""
    fetched_at: str = ""

    def tsv_line(self) -> str:
        values = ["" if value is None else str(value) for value in asdict(self).values()]
        return "\t".join(value.replace("\t", " ").replace("\n", " ") for value in values) + "\n"


MANIFEST_COLUMNS = tuple(f.name for f in fields(ManifestRow))


# ---- reading manifests -------------------------------------------------------------------------------


def read_manifest(path: Path) -> tuple[dict[str, Path], list[Problem]]:
    """track URI → audio file (not checked for existence) from a TSV or JSON-lines manifest; bad lines reported."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectorError(f"cannot read audio manifest {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    rows = _jsonl_rows(text) if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else _tsv_rows(text, path)
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    for line_number, row in rows:
        uri, location = _field(row, "track_uri"), _field(row, "path")
        if not uri or not location:
            problems.append(Problem(f"{path}:{line_number}", "no track_uri or path; line skipped"))
            continue
        files[uri] = Path(location) if Path(location).is_absolute() else path.parent / location
    return files, problems


def _field(row: dict[str, Any], key: str) -> str:
    """A manifest field as text; a number, list or object where a string belongs counts as missing."""
    value = row.get(key)
    return value.strip() if isinstance(value, str) else ""


def _tsv_rows(text: str, path: Path) -> list[tuple[int, dict[str, str]]]:
    lines = text.splitlines()
    header = lines[0].split("\t") if lines else []
    if "track_uri" not in header or "path" not in header:
        raise ConnectorError(f"audio manifest {path}: the first line must name the columns, with track_uri and path")
    rows = enumerate(lines[1:], 2)
    return [(n, dict(zip(header, line.split("\t"), strict=False))) for n, line in rows if line.strip()]


def _jsonl_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            value = {}  # a torn or foreign line: reported as a row without track_uri/path
        if value is not None:
            rows.append((n, value if isinstance(value, dict) else {}))
    return rows


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


# ---- the fetch cache ------------------------------------------------------------------------------------


def cache_key(uri: str) -> str:
    """A readable, filesystem-safe, collision-free folder name for a track URI."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", uri)[:80]
    return f"{readable}-{hashlib.sha1(uri.encode()).hexdigest()[:8]}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AudioCache:
    """Fetched audio by track URI: `<root>/<key>/audio.opus` + `row.json`, listed in `<root>/manifest.tsv`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"
        self.manifest = root / MANIFEST_NAME
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._listed = set(read_manifest(self.manifest)[0]) if self.manifest.is_file() else set()
        self._remove_stale_work()

    def _remove_stale_work(self) -> None:
        """Work folders of processes that died mid-download (named `<key>.<pid>.<thread>`)."""
        for work in self.tmp.iterdir():
            parts = work.name.rsplit(".", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            if pid is None or not _alive(pid):
                shutil.rmtree(work, ignore_errors=True)

    def work_dir(self, uri: str) -> Path:
        work = self.tmp / f"{cache_key(uri)}.{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return work

    def row(self, uri: str) -> ManifestRow | None:
        """The cached row (and audio) for `uri`, or None; a row missing from manifest.tsv is appended."""
        try:
            row = ManifestRow(**json.loads((self.root / cache_key(uri) / ROW_NAME).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        if not (self.root / row.path).is_file():
            return None
        if uri not in self._listed:  # killed between the rename and the manifest append
            self._append(row)
        return row

    def path(self, uri: str) -> Path | None:
        row = self.row(uri)
        return self.root / row.path if row else None

    def put(self, work: Path, audio: Path, row: ManifestRow) -> Path:
        """Move a finished download into the cache in one rename, then list it in the manifest."""
        final = self.root / cache_key(row.track_uri)
        audio.rename(work / f"audio{audio.suffix}")
        (work / ROW_NAME).write_text(json.dumps(asdict(row)), encoding="utf-8")
        try:
            work.rename(final)
        except OSError:  # another process cached it meanwhile: keep theirs
            shutil.rmtree(work, ignore_errors=True)
        cached = self.row(row.track_uri)
        if cached is None:
            raise ConnectorError(f"{row.track_uri}: could not store the download in {final}")
        return self.root / cached.path

    def _append(self, row: ManifestRow) -> None:
        with self._lock:
            new = not self.manifest.is_file() or self.manifest.stat().st_size == 0
            with open(self.manifest, "a", encoding="utf-8") as handle:
                if new:
                    handle.write("\t".join(MANIFEST_COLUMNS) + "\n")
                elif not _ends_with_newline(self.manifest):
                    handle.write("\n")  # a line torn by a kill stays one bad line, not two
                handle.write(row.tsv_line())
                handle.flush()
                os.fsync(handle.fileno())
            self._listed.add(row.track_uri)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


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


class _QuietLogger:
    """yt-dlp prints to the terminal unless given a logger; its errors reach us as exceptions anyway."""

    def debug(self, message: str) -> None: ...

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


def search_query(track: SourceTrack) -> str:
    return f"{track.artist} - {track.title}" if track.artist else track.title


def youtube_search(track: SourceTrack, results: int = 5) -> list[Candidate]:
    """The default searcher: yt-dlp's `ytsearchN:artist - title`, flat (one request, no downloads)."""
    import yt_dlp

    options = {"quiet": True, "no_warnings": True, "extract_flat": "in_playlist", "logger": _QuietLogger()}
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(f"ytsearch{results}:{search_query(track)}", download=False) or {}
    except yt_dlp.utils.DownloadError as exc:
        raise ConnectorError(f"search failed: {_download_message(exc)}") from exc
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
        raise ConnectorError(f"--audio-url {template!r}: use only {fields_known} ({exc!r})") from exc
    scheme = urlsplit(example).scheme.lower()
    if scheme not in ("http", "https") or not urlsplit(example).netloc:
        raise ConnectorError(f"--audio-url {template!r}: give an http:// or https:// URL template")

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


# ---- downloading ----------------------------------------------------------------------------------------


class _RateLimit:
    """At most one request start per `interval_s` across all worker threads."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval_s
        if delay > 0:
            log.debug("rate limit: waiting %.1f s before the next request", delay)
            time.sleep(delay)


def _download_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^(ERROR: )?(\[[\w:]+\] [^:]*: )?", "", text)
    text = re.sub(r" \(caused by .*\)$", "", text)  # yt-dlp repeats the cause in full
    if "Unsupported URL" in text:
        return "the URL is a web page with no audio in it (HTML, not audio)"
    return text


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith(HTML_PREFIXES)


class Fetcher:
    """Finds, downloads and caches audio for tracks with yt-dlp, a few at a time."""

    def __init__(
        self, cache: AudioCache, searcher: Searcher | None = None, options: FetchOptions | None = None
    ) -> None:
        if shutil.which("ffmpeg") is None:
            raise ConnectorError("fetching audio needs ffmpeg to convert downloads: install it (apt install ffmpeg)")
        self.cache = cache
        self.searcher = searcher or youtube_search
        self.options = options or FetchOptions()
        self._rate = _RateLimit(self.options.min_interval_s)
        self.downloads = 0

    def fetch_many(
        self, tracks: list[SourceTrack], on_done: Callable[[int], None] | None = None
    ) -> tuple[dict[str, Path], list[Problem]]:
        """Fetch each track (cached ones cost nothing); failures are Problems, never exceptions."""
        found: dict[str, Path] = {}
        problems: list[Problem] = []

        def one(track: SourceTrack) -> None:
            try:
                found[track.uri] = self.fetch(track)
            except ConnectorError as exc:
                problems.append(Problem(track.uri, f"no audio fetched: {exc}"))
            if on_done:
                on_done(1)

        with ThreadPoolExecutor(max(1, self.options.workers)) as pool:
            list(pool.map(one, tracks))
        return found, problems

    def fetch(self, track: SourceTrack) -> Path:
        cached = self.cache.path(track.uri)
        if cached is not None:
            return cached
        self._rate.wait()
        try:
            candidates, rejected = rank(track, self.searcher(track), self.options)
        except ConnectorError:
            raise
        except Exception as exc:  # a plug-in searcher's failure is this track's failure, not the sync's
            raise ConnectorError(f"search failed: {_download_message(exc)}") from exc
        failures = list(rejected)
        for reason in rejected:
            log.debug("%s: rejected %s", track.uri, reason)
        for candidate in candidates[: self.options.max_attempts]:
            log.info("%s: downloading %s (%s)", track.uri, candidate.url, candidate.title)
            try:
                return self._download(track, candidate)
            except ConnectorError as exc:
                log.info("%s: %s failed: %s", track.uri, candidate.url, exc)
                failures.append(f"{candidate.url}: {exc}")
        if not failures:
            raise ConnectorError(f"no candidates found for {search_query(track)!r}")
        raise ConnectorError("; ".join(failures))

    def _download(self, track: SourceTrack, candidate: Candidate) -> Path:
        work = self.cache.work_dir(track.uri)
        try:
            self._rate.wait()
            info = self._run_ytdlp(candidate, work)
            audio = self._check(track, work)
            duration = sf.info(str(audio)).duration
            row = ManifestRow(
                track_uri=track.uri,
                path=f"{cache_key(track.uri)}/audio{audio.suffix}",
                duration_ms=round(duration * 1000),
                source_url=info.get("webpage_url") or candidate.url,
                extractor=info.get("extractor_key") or candidate.extractor,
                video_id=str(info.get("id") or candidate.video_id),
                audio_sha1=file_sha1(audio),
                fetched_at=now_iso(),
            )
            self.downloads += 1
            return self.cache.put(work, audio, row)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run_ytdlp(self, candidate: Candidate, work: Path) -> dict[str, Any]:
        import yt_dlp

        refused: list[str] = []

        def too_long(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
            duration = info.get("duration")
            if duration and duration > self.options.max_duration_s:
                refused.append(f"too long ({duration:.0f} s > {self.options.max_duration_s:.0f} s)")
                return refused[-1]
            return None

        options = {
            "format": "bestaudio/best",
            "outtmpl": str(work / "download.%(ext)s"),
            "postprocessors": [{"key": "FFmpegExtractAudio", "preferredcodec": FETCH_CODEC}],
            # Bit-exact muxing (no random Ogg serial): the same download gives the same bytes, so the same sha1.
            "postprocessor_args": {"extractaudio": ["-fflags", "+bitexact", "-flags:a", "+bitexact"]},
            "match_filter": too_long,
            "max_filesize": self.options.max_filesize,
            "socket_timeout": self.options.socket_timeout_s,
            "noplaylist": True,
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _QuietLogger(),
        }
        try:
            with yt_dlp.YoutubeDL(options) as ydl:
                info = ydl.extract_info(candidate.url, download=True) or {}
        except (yt_dlp.utils.DownloadError, yt_dlp.utils.PostProcessingError) as exc:
            raise ConnectorError(self._explain(exc, work)) from exc
        if refused:
            raise ConnectorError(refused[0])
        return info

    @staticmethod
    def _explain(exc: BaseException, work: Path) -> str:
        leftovers = [p for p in work.iterdir() if p.is_file() and p.stat().st_size > 0]
        if any(_looks_like_html(p) for p in leftovers):
            return "the server returned an HTML page instead of audio"
        return _download_message(exc)

    def _check(self, track: SourceTrack, work: Path) -> Path:
        """The converted file, checked: really audio, not over-long, and as long as the track."""
        produced = sorted(work.glob(f"download.{FETCH_CODEC}")) or sorted(work.glob("download.*"))
        if not produced:
            raise ConnectorError("yt-dlp produced no audio file")
        audio = produced[0]
        if _looks_like_html(audio):
            raise ConnectorError("the server returned an HTML page instead of audio")
        try:
            duration = sf.info(str(audio)).duration
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise ConnectorError(f"the download is not readable audio ({exc})") from exc
        if duration > self.options.max_duration_s:
            raise ConnectorError(f"too long ({duration:.0f} s > {self.options.max_duration_s:.0f} s)")
        if track.duration_s and abs(duration - track.duration_s) > self.options.tolerance(track.duration_s):
            raise ConnectorError(f"the audio lasts {duration:.0f} s, the track {track.duration_s:.0f} s")
        return audio
