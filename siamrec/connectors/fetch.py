"""`--fetch-audio` / `--audio-url`: yt-dlp downloads of the chosen candidate, rate-limited, cached by track URI
(connectors.cache) as the bytes arrived: never converted by an ffmpeg left to probe (a playlist or concat
list dressed up as audio would make it read the files the list names); the container is sniffed from the
bytes, and anything siamrec does not read as audio is refused. Only plain HTTP(S) formats are downloaded
(never HLS or DASH manifests, whose segments a server names).

Each download, its conversion included, runs within the download deadline (connectors.bounded): yt-dlp runs
in a worker thread that is abandoned (and told to stop at its next block) when the deadline passes, since a
server that trickles bytes never trips a per-read timeout. Its size is capped as it arrives, not only by
the length a server declares.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from siamrec.audio import track_windows
from siamrec.connectors.base import Problem, SourceTrack
from siamrec.connectors.bounded import Limits
from siamrec.connectors.cache import AudioCache
from siamrec.connectors.search import (
    Candidate,
    FetchOptions,
    QuietYtdlpLogger,
    Searcher,
    download_message,
    rank,
    search_query,
    youtube_search,
)
from siamrec.errors import AudioError, ConnectorError
from siamrec.logs import get_logger
from siamrec.redact import one_line, redacting
from siamrec.sniff import READABLE, sniff

log = redacting(get_logger(__name__))

HTML_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")


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


class _Stop(Exception):
    """Raised from yt-dlp's progress hook: the download is over its size cap, or its deadline has passed."""


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith(HTML_PREFIXES)


class Fetcher:
    """Finds, downloads and caches audio for tracks with yt-dlp, a few at a time."""

    def __init__(
        self, cache: AudioCache, searcher: Searcher | None = None, options: FetchOptions | None = None,
        limits: Limits | None = None,
    ) -> None:  # fmt: skip
        if shutil.which("ffmpeg") is None:
            raise ConnectorError("fetching audio needs ffmpeg to decode downloads: install it (apt install ffmpeg)")
        self.cache = cache
        self.searcher = searcher or youtube_search
        self.options = options or FetchOptions()
        self.limits = limits or Limits.from_env()
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
            raise ConnectorError(f"search failed: {one_line(download_message(exc))}") from None
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
        raise ConnectorError(one_line("; ".join(failures), limit=1000))

    def _download(self, track: SourceTrack, candidate: Candidate) -> Path:
        work = self.cache.work_dir(track.uri)
        try:
            self._rate.wait()
            info = self._run_ytdlp(candidate, work)
            audio, duration = self._check(track, work)
            self.downloads += 1
            return self.cache.put_download(
                work,
                audio,
                track.uri,
                duration_ms=round(duration * 1000),
                source_url=info.get("webpage_url") or candidate.url,
                extractor=info.get("extractor_key") or candidate.extractor,
                video_id=str(info.get("id") or candidate.video_id),
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run_ytdlp(self, candidate: Candidate, work: Path) -> dict[str, Any]:
        """yt-dlp's download and conversion within the download deadline, or ConnectorError."""
        seconds = self.limits.download_s
        stop = threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["info"] = self._ytdlp(candidate, work, stop)
            except Exception as exc:  # handed to the waiting thread, which raises it
                outcome["error"] = exc

        worker = threading.Thread(target=run, name="siamrec-yt-dlp", daemon=True)
        worker.start()
        worker.join(seconds)
        if worker.is_alive():
            stop.set()  # the worker stops at its next block; nothing waits for it
            raise ConnectorError(f"the fetch did not finish within {seconds:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return dict(outcome["info"])

    def _ytdlp(self, candidate: Candidate, work: Path, stop: threading.Event) -> dict[str, Any]:
        import yt_dlp

        refused: list[str] = []
        max_bytes = min(self.options.max_filesize, self.limits.song_bytes)

        def bounded(status: dict[str, Any]) -> None:
            """Stop as the bytes arrive: yt-dlp checks max_filesize only against a length the server declares."""
            if stop.is_set():
                raise _Stop("the fetch was stopped")
            if (status.get("downloaded_bytes") or 0) > max_bytes:
                refused.append(f"the download passed the {max_bytes / (1 << 20):.0f} MiB allowed")
                raise _Stop(refused[-1])

        def too_long(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
            duration = info.get("duration")
            if duration and duration > self.options.max_duration_s:
                refused.append(f"too long ({duration:.0f} s > {self.options.max_duration_s:.0f} s)")
                return refused[-1]
            return None

        options = {
            "format": "bestaudio[protocol^=http]/best[protocol^=http]",  # no HLS/DASH: their segments are named
            "outtmpl": str(work / "download.%(ext)s"),
            "match_filter": too_long,
            "max_filesize": max_bytes,
            "progress_hooks": [bounded],
            "socket_timeout": min(self.options.socket_timeout_s, self.limits.download_s),
            "noplaylist": True,
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": QuietYtdlpLogger(),
        }
        try:
            with yt_dlp.YoutubeDL(options) as ydl:
                info = ydl.extract_info(candidate.url, download=True) or {}
        except _Stop as exc:
            raise ConnectorError(str(exc)) from None
        except (yt_dlp.utils.DownloadError, yt_dlp.utils.PostProcessingError) as exc:
            if refused:
                raise ConnectorError(refused[-1]) from None
            raise ConnectorError(one_line(self._explain(exc, work))) from None
        if refused:
            raise ConnectorError(refused[0])
        return info

    @staticmethod
    def _explain(exc: BaseException, work: Path) -> str:
        leftovers = [p for p in work.iterdir() if p.is_file() and p.stat().st_size > 0]
        if any(_looks_like_html(p) for p in leftovers):
            return "the server returned an HTML page instead of audio"
        return download_message(exc)

    def _check(self, track: SourceTrack, work: Path) -> tuple[Path, float]:
        """The download, checked: audio in a container siamrec reads (sniffed from its bytes, then decoded
        within the length allowed), and as long as the track; with its sniffed suffix and its duration."""
        produced = [p for p in sorted(work.glob("download.*")) if p.suffix != ".part"]
        if not produced:
            raise ConnectorError("yt-dlp produced no audio file")
        download = produced[0]
        if _looks_like_html(download):
            raise ConnectorError("the server returned an HTML page instead of audio")
        container = sniff(download)
        if container is None:
            raise ConnectorError(f"the download is not audio siamrec reads ({READABLE})")
        audio = download.rename(work / f"download{container.suffix}")
        try:
            duration = track_windows(audio, max_seconds=self.options.max_duration_s, name="the download")[1].duration_s
        except AudioError as exc:
            raise ConnectorError(one_line(exc)) from None
        if track.duration_s and abs(duration - track.duration_s) > self.options.tolerance(track.duration_s):
            raise ConnectorError(f"the audio lasts {duration:.0f} s, the track {track.duration_s:.0f} s")
        return audio, duration
