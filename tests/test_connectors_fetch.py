"""Audio for named tracks: manifests, a tagged collection, and yt-dlp downloads from a local file server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from mutagen.flac import FLAC

from siamrec.audio import file_sha1
from siamrec.connectors.base import SourceTrack
from siamrec.connectors.cache import AudioCache, cache_key
from siamrec.connectors.fetch import Fetcher
from siamrec.connectors.manifest import MANIFEST_COLUMNS, read_manifest
from siamrec.connectors.search import Candidate, FetchOptions, rank, url_template_search
from siamrec.connectors.tagindex import TagIndex
from siamrec.errors import ConnectorError
from siamrec.testing import chord, drums, write_audio
from tests.servers import FileServer, Response

HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please log in</body></html>"
FAST = FetchOptions(workers=2, min_interval_s=0.0)


def test_tracks_tsv_manifest(tmp_path: Path) -> None:
    """The dev corpus's format: extra columns are fine, paths are relative to the manifest."""
    manifest = tmp_path / "corpus" / "tracks.tsv"
    manifest.parent.mkdir()
    manifest.write_text(
        "track_uri\tpath\tduration_ms\tplaylist\tpackage\tsource\n"
        "local:track:aa\taudio/x/one.ogg\t74083\tx\tpkg\tusr/share/one.ogg\n"
        "local:track:bb\t/abs/two.ogg\t1000\tx\tpkg\tsrc\n"
        "local:track:cc\n"
    )
    files, problems = read_manifest(manifest)
    assert files == {"local:track:aa": manifest.parent / "audio/x/one.ogg", "local:track:bb": Path("/abs/two.ogg")}
    assert [str(p) for p in problems] == [f"{manifest}:4: no track_uri or path; line skipped"]
    (tmp_path / "bad.tsv").write_text("uri\tfile\nx\ty\n")
    with pytest.raises(ConnectorError, match="must name the columns, with track_uri and path"):
        read_manifest(tmp_path / "bad.tsv")


def test_jsonl_manifest_with_a_torn_line(tmp_path: Path) -> None:
    manifest = tmp_path / "fetched.jsonl"
    manifest.write_text(json.dumps({"track_uri": "spotify:track:a", "path": "a.opus"}) + '\n{"track_uri": "spo')
    files, problems = read_manifest(manifest)
    assert files == {"spotify:track:a": tmp_path / "a.opus"} and len(problems) == 1


def tagged(path: Path, artist: str, title: str, seconds: float) -> Path:
    write_audio(path, chord(seconds, 261.6))
    tags = FLAC(str(path))
    tags["artist"], tags["title"] = artist, title
    tags.save()
    return path


def test_audio_dir_matches_by_tags_and_duration(tmp_path: Path) -> None:
    song = tagged(tmp_path / "lib" / "01.flac", "Beyoncé", "Halo", 3.0)
    tagged(tmp_path / "lib" / "02.flac", "Someone Else", "Halo", 3.0)
    index = TagIndex(tmp_path / "lib", tolerance_s=1.0)
    assert (
        index.match(SourceTrack("spotify:track:1", "Halo (Remastered 2011)", "Beyonce, Jay-Z", duration_s=3.4)) == song
    )
    assert index.match(SourceTrack("spotify:track:2", "Halo", "Beyoncé", duration_s=9.0)) is None
    assert index.match(SourceTrack("spotify:track:3", "Crazy in Love", "Beyoncé", duration_s=3.0)) is None


def test_candidates_are_ranked_and_rejected_with_reasons() -> None:
    track = SourceTrack("spotify:track:x", "Bohemian Rhapsody", "Queen", duration_s=355.0)
    candidates = [
        Candidate("u:cover", "Bohemian Rhapsody piano cover", 356.0),
        Candidate("u:react", "Queen - Bohemian Rhapsody REACTION", 360.0),
        Candidate("u:long", "Queen - Bohemian Rhapsody (10 hours)", 36000.0),
        Candidate("u:live", "Queen - Bohemian Rhapsody (Live Aid 1985)", 420.0),
        Candidate("u:other", "Queen - Don't Stop Me Now", 350.0),
        Candidate("u:best", "Queen – Bohemian Rhapsody (Official Video Remastered)", 359.0),
        Candidate("u:unknown"),
    ]
    kept, rejected = rank(track, candidates, FetchOptions())
    assert [c.url for c in kept] == ["u:best", "u:cover", "u:unknown"]
    reasons = dict(reason.split(": ", 1) for reason in rejected)
    assert reasons["u:react"] == "looks like a non-music video ('reaction')"
    assert reasons["u:long"] == "too long (36000 s > 900 s)"
    assert reasons["u:live"] == "lasts 420 s, the track 355 s"
    assert reasons["u:other"].startswith('title "Queen - Don\'t Stop Me Now" does not match')
    review = SourceTrack("spotify:track:y", "Review", "My Band", duration_s=200.0)
    assert rank(review, [Candidate("u:r", "My Band - Review (audio)", 201.0)], FetchOptions())[0]


@pytest.fixture
def files(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    write_audio(root / "one.ogg", chord(2.0, 220.0))
    write_audio(root / "two.flac", drums(2.0))
    write_audio(root / "long.ogg", chord(40.0, 110.0))
    with FileServer(root) as server:
        yield server


def fetcher(tmp_path: Path, server: FileServer, options: FetchOptions = FAST) -> Fetcher:
    return Fetcher(AudioCache(tmp_path / "cache"), url_template_search(f"{server.base}/{{id}}"), options)


def test_download_convert_cache_and_manifest(tmp_path: Path, files: FileServer) -> None:
    track = SourceTrack("spotify:track:one.ogg", "One", "Tester", duration_s=2.0)
    path = fetcher(tmp_path, files).fetch(track)
    assert path == tmp_path / "cache" / cache_key(track.uri) / "audio.ogg"  # as served: never converted
    assert abs(sf.info(str(path)).duration - 2.0) < 0.1
    hits = files.hits["one.ogg"]
    lines = (tmp_path / "cache" / "manifest.tsv").read_text().splitlines()
    assert lines[0].split("\t") == list(MANIFEST_COLUMNS)
    row = dict(zip(MANIFEST_COLUMNS, lines[1].split("\t"), strict=True))
    assert row["track_uri"] == track.uri and row["path"] == f"{cache_key(track.uri)}/audio.ogg"
    assert (row["source_url"], row["extractor"], row["video_id"]) == (files.url("one.ogg"), "Generic", "one")
    assert row["audio_sha1"] == file_sha1(path) and abs(int(row["duration_ms"]) - 2000) < 100 and row["fetched_at"]
    again = fetcher(tmp_path, files)  # a new process, the same cache: no request at all
    assert again.fetch(track) == path and files.hits["one.ogg"] == hits and again.downloads == 0
    assert read_manifest(tmp_path / "cache" / "manifest.tsv")[0] == {track.uri: path}


def test_lost_manifest_rows_come_back_from_the_cache(tmp_path: Path, files: FileServer) -> None:
    track = SourceTrack("spotify:track:two.flac", "Two", duration_s=2.0)
    path = fetcher(tmp_path, files).fetch(track)
    (tmp_path / "cache" / "manifest.tsv").unlink()  # as if killed between the rename and the append
    (tmp_path / "cache" / ".tmp" / "stale.999999999.1").mkdir()
    cache = AudioCache(tmp_path / "cache")
    assert cache.path(track.uri) == path and list((tmp_path / "cache" / ".tmp").iterdir()) == []
    assert read_manifest(cache.manifest)[0] == {track.uri: path}


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (Response(200, HTML, {"Content-Type": "text/html"}), "a web page with no audio in it (HTML, not audio)"),
        (Response(200, HTML, {"Content-Type": "audio/ogg"}), "the server returned an HTML page instead of audio"),
        (Response(404, b"gone", {"Content-Type": "text/plain"}), "HTTP Error 404"),
    ],
)
def test_a_bad_download_is_one_clear_line(tmp_path: Path, files: FileServer, route: Response, reason: str) -> None:
    files.routes["bad.ogg"] = route
    track = SourceTrack("spotify:track:bad.ogg", "Bad", duration_s=2.0)
    found, problems = fetcher(tmp_path, files).fetch_many([track])
    (problem,) = problems
    assert found == {} and problem.where == track.uri and reason in problem.reason and "\n" not in problem.reason
    assert list((tmp_path / "cache").glob("spotify_track_*")) == [] and (tmp_path / "cache" / ".tmp").is_dir()


def test_downloads_are_checked_against_the_track(tmp_path: Path, files: FileServer) -> None:
    short = FetchOptions(workers=1, min_interval_s=0.0, max_duration_s=30.0, duration_tolerance_s=5.0)
    tracks = [
        SourceTrack("spotify:track:long.ogg", "Long"),
        SourceTrack("spotify:track:one.ogg", "One", duration_s=60.0),
    ]
    found, problems = fetcher(tmp_path, files, short).fetch_many(tracks)
    assert found == {}
    assert [p.reason.split(": ", 2)[-1] for p in problems] == [
        "the download: the audio is too long: this accepts up to 30 s",
        "the audio lasts 2 s, the track 60 s",
    ]


class ScheduleClock:
    """The rate limiter's clock, standing still: each wait it would sleep is recorded instead of slept, so the
    schedule it sets is checked exactly, with no real time measured."""

    def __init__(self) -> None:
        self.now, self.waits, self._lock = 1000.0, [], threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)


def test_concurrency_and_rate_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ScheduleClock()
    monkeypatch.setattr("siamrec.connectors.fetch.time", clock)
    active, peak = [0], [0]
    lock = threading.Lock()
    both_workers = threading.Barrier(2)  # the first two searches meet here: two workers run at once

    def slow_search(track: SourceTrack) -> list[Candidate]:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        if track.uri in ("spotify:track:0", "spotify:track:1"):  # the pool's first two tasks: one per worker
            both_workers.wait(timeout=30)  # a bound for a broken pool, not a measurement
        with lock:
            active[0] -= 1
        return []

    options = FetchOptions(workers=2, min_interval_s=0.03)
    tracks = [SourceTrack(f"spotify:track:{i}", f"T{i}") for i in range(6)]
    found, problems = Fetcher(AudioCache(tmp_path / "cache"), slow_search, options).fetch_many(tracks)
    assert found == {} and all("no candidates found" in p.reason for p in problems) and len(problems) == 6
    assert peak[0] == 2
    # The first request starts at once; the k-th waits k intervals from it, whichever worker asks.
    assert sorted(clock.waits) == pytest.approx([k * options.min_interval_s for k in range(1, len(tracks))])
