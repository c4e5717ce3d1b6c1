"""Files that name other files never make siamrec read them (issue 19), and Opus files made by ffmpeg are read.

A few hundred bytes of HLS playlist, DASH manifest or ffconcat script, dressed up as AAC for a header sniffer,
made ffmpeg (left to probe) decode a file of the server's that the bytes named: stored with 201, a missing one
answered 415 (a probe of which files exist), a list of one file 1,500 times stored as hours of audio. Every
such file here, bare, behind an ID3 tag or opening like each container the sniffer accepts, goes through the
real entry points: `siamrec add-track`, `POST /tracks` (upload and `--allow-fetch`) and a Subsonic sync. Each
is refused, the store dump is the same before and after, and the files it names are never read (their access
time, set in the past, stays where it was).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from siamrec import constants as C
from siamrec import ffmpeg_decode, sniff
from siamrec.audio import track_windows
from siamrec.connectors.base import SourceTrack
from siamrec.connectors.cache import AudioCache
from siamrec.connectors.fetch import Fetcher
from siamrec.connectors.search import FetchOptions, url_template_search
from siamrec.errors import AudioError, ConnectorError
from siamrec.service.config import ServiceConfig
from siamrec.testing import (
    adts_frames,
    chord,
    dash_manifest,
    drums,
    ffconcat_list,
    hls_playlist,
    id3_tagged,
    write_audio,
)
from tests.bad_input.hostile import HostileServer, sync
from tests.cli import answer, home_env, run_siamrec, stderr_messages
from tests.servers import FileServer
from tests.service import assert_problem, service_config, serving, upload
from tests.stores import dump_store

SECRET_SECONDS = 4.0
FETCH_NOW = FetchOptions(workers=1, min_interval_s=0.0, max_attempts=1)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True)


def write_secrets(folder: Path) -> list[Path]:
    """Real audio the lists name: mp3 for HLS (this ffmpeg's HLS takes only media suffixes), wav for ffconcat
    (named relative to the list: the probe follows only such "safe" names), m4a for DASH."""
    wav = write_audio(folder / "secret.wav", chord(SECRET_SECONDS, 392.0, bright=True))
    mp3 = write_audio(folder / "secret.mp3", drums(SECRET_SECONDS, 100.0, seed=7))
    ffmpeg("-i", str(wav), "-c:a", "aac", str(folder / "secret.m4a"))
    return [wav, mp3, folder / "secret.m4a"]


def reference_lists(folder: Path, name: str = "secret") -> dict[str, bytes]:
    """Every kind of list naming `folder/<name>.*`, bare and behind an ID3 tag (ffmpeg's probe skips the tag)."""
    bare = {
        "hls": hls_playlist([str(folder / f"{name}.mp3")], SECRET_SECONDS),
        "hls-1500-times": hls_playlist([str(folder / f"{name}.mp3")] * 1500, SECRET_SECONDS),
        "ffconcat": ffconcat_list([f"{name}.wav"]),
        "dash": dash_manifest(str(folder / f"{name}.m4a"), SECRET_SECONDS),
    }
    return {**bare, **{f"id3-{kind}": id3_tagged(data) for kind, data in bare.items() if kind != "dash"}}


def mpeg_frames(count: int = 2) -> bytes:
    header = bytes([0xFF, 0xFB, 0x90, 0x44])  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417 bytes a frame
    return (header + b"A" * 413) * count


# How each container the sniffer accepts opens; the list follows (a demuxer told the format must not follow it).
OPENINGS = {
    sniff.WAV: b"RIFF\x24\x00\x00\x00WAVE",
    sniff.AIFF: b"FORM\x00\x00\x00\x04AIFF",
    sniff.FLAC: b"fLaC",
    sniff.OGG: b"OggS\x00" + bytes(23),
    sniff.OPUS: b"OggS\x00" + bytes(23) + b"OpusHead",
    sniff.MP3: mpeg_frames(),
    sniff.AAC: adts_frames(),
    sniff.MP4: b"\x00\x00\x00\x14ftypM4A \x00\x00\x00\x00M4A ",
    sniff.MATROSKA: b"\x1a\x45\xdf\xa3",
    sniff.ASF: sniff.ASF_GUID,
}


def test_every_container_the_sniffer_accepts_has_an_opening() -> None:
    assert set(OPENINGS) == set(sniff.CONTAINERS)


def hostile_files(folder: Path, secrets: Path) -> list[Path]:
    """Each list as a file of `folder` (named like audio), bare, tagged, and inside every container's opening."""
    lists = reference_lists(secrets)
    files = [folder / f"{kind}.aac" for kind in lists]
    for path, data in zip(files, lists.values(), strict=True):
        path.write_bytes(data)
    for container, opening in OPENINGS.items():
        for kind in ("hls", "ffconcat"):
            path = folder / f"{kind}-in-{container.label}{container.suffix}"
            path.write_bytes(opening + b"\n" + lists[kind])
            assert sniff.sniff(path) == container, path.name
            files.append(path)
    return files


@pytest.fixture
def untouched() -> Iterator[Callable[[list[Path]], None]]:
    """`watch(paths)`: their access times go into the past; on exit, any read of one fails the test."""
    watched: dict[Path, float] = {}

    def watch(paths: list[Path]) -> None:
        for path in paths:
            status = path.stat()
            os.utime(path, (status.st_mtime - 1000, status.st_mtime))
            watched[path] = path.stat().st_atime

    yield watch
    control = next(iter(watched))  # a read moves an atime from before the mtime (relatime does, too)
    read = [path for path, atime in watched.items() if path.stat().st_atime != atime]
    assert not read, f"read: {read}"
    control.read_bytes()
    assert control.stat().st_atime != watched[control], "this file system records no reads: the check is void"


@pytest.fixture(scope="module")
def filled_home(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]) -> Path:
    """A store with two tracks of the test library, made once; each test works on its own copy."""
    home = tmp_path_factory.mktemp("filled") / "home"
    env = home_env(home, tiny_model)
    answer("add-track", str(library_files["chord_a.wav"]), str(library_files["drums_90.flac"]), env=env)
    return home


@pytest.fixture
def store_home(filled_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(filled_home, home)
    monkeypatch.setenv("SIAMREC_HOME", str(home))
    monkeypatch.setenv("SIAMREC_MODEL", str(tiny_model))
    return home


# ---- siamrec add-track -----------------------------------------------------------------------------------


def test_add_track_refuses_every_list_and_reads_no_file_it_names(
    store_home: Path, tmp_path: Path, untouched: Any
) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    untouched(write_secrets(folder))
    files = hostile_files(folder, folder)
    before = dump_store(store_home)
    result = run_siamrec("add-track", *(str(f) for f in files))
    assert result.returncode != 0
    lines = stderr_messages(result.stderr)
    assert sorted(line.split(": ")[1].strip("'") for line in lines) == sorted(map(str, files)), result.stderr
    assert all(line.startswith("skipped: ") for line in lines)
    bare = [line for line in lines if "-in-" not in line]
    assert all("not an audio file siamrec reads" in line for line in bare), bare
    assert dump_store(store_home) == before


# ---- POST /tracks: uploads and --allow-fetch ---------------------------------------------------------------


@pytest.fixture
def fetching_config(store_home: Path, tiny_model: Path) -> ServiceConfig:
    """The service over the copied store, fetching allowed from loopback (where the test's file server is)."""
    return service_config(
        store_home, tiny_model, allow_fetch=True, fetch_allow_networks=("127.0.0.1/32",), max_duration_s=60.0
    )


def test_uploads_and_fetches_of_lists_are_refused_alike_whether_their_target_exists(
    fetching_config: ServiceConfig, store_home: Path, tmp_path: Path, untouched: Any
) -> None:
    uploads = store_home / "uploads"  # the ffconcat list names a file beside itself: put one there
    uploads.mkdir(parents=True, exist_ok=True)
    secrets = write_secrets(uploads)
    untouched(secrets)
    served = tmp_path / "served"
    served.mkdir()
    present, missing = reference_lists(uploads), reference_lists(uploads, "missing")
    for kind in present:
        (served / f"{kind}.aac").write_bytes(present[kind])
        (served / f"{kind}-missing.aac").write_bytes(missing[kind])
    before = dump_store(store_home)
    with serving(fetching_config) as base, httpx.Client(base_url=base, timeout=60) as client, FileServer(served) as web:
        for kind in present:
            answers = []
            for name in (f"{kind}.aac", f"{kind}-missing.aac"):
                answers.append(upload(client, served / name))
                fetch = {"track_uri": f"spotify:track:{kind}", "url": web.url(name)}
                answers.append(client.post("/tracks", json=fetch))
            for answer in answers:
                body = assert_problem(answer, 415, "the upload is not audio this service reads")
                assert str(store_home) not in answer.text and "secret" not in answer.text
                assert body == answers[0].json()  # a missing target answers exactly like a present one
    assert sorted(uploads.iterdir()) == sorted(secrets)  # nothing refused was kept
    assert dump_store(store_home) == before


def m4a_claiming(path: Path, seconds: float, claimed_s: float) -> Path:
    """A real AAC m4a of `seconds` whose movie and media headers claim `claimed_s` (what mutagen reports)."""
    source = write_audio(path.with_suffix(".wav"), chord(seconds, 220.0) + drums(seconds))
    ffmpeg("-i", str(source), "-c:a", "aac", str(path))
    data = bytearray(path.read_bytes())
    for box in (b"mvhd", b"mdhd"):  # version 0: flags, created, modified, then the time scale and the duration
        at = data.index(box)
        scale = struct.unpack_from(">I", data, at + 16)[0]
        struct.pack_into(">I", data, at + 20, int(claimed_s * scale))
    path.write_bytes(data)
    return path


def test_an_upload_is_judged_on_its_decoded_length_not_its_header(
    fetching_config: ServiceConfig, store_home: Path, tmp_path: Path
) -> None:
    liar = m4a_claiming(tmp_path / "liar.m4a", 90.0, 5.0)
    before = dump_store(store_home)
    with serving(fetching_config) as base, httpx.Client(base_url=base, timeout=60) as client:
        answer = upload(client, liar)
        assert_problem(answer, 422, "the upload: the audio is too long: this accepts up to 60 s")
    assert not [p for p in (store_home / "uploads").iterdir() if p.is_file()]
    assert dump_store(store_home) == before


# ---- sync-playlists --subsonic -----------------------------------------------------------------------------


def test_a_subsonic_song_that_is_a_list_is_skipped_unread(store_home: Path, tmp_path: Path, untouched: Any) -> None:
    untouched(write_secrets(tmp_path))
    before = dump_store(store_home)
    with HostileServer(audio=reference_lists(tmp_path)["hls"]) as server:
        done = sync(server, "--json")
    assert done.returncode == 1 and [line for line in done.stderr.splitlines() if "━" not in line] == [], done.stderr
    ((failure,),) = [json.loads(done.stdout)["failed"]]
    assert "not an audio file siamrec reads" in failure["reason"], failure
    after = dump_store(store_home)
    assert {uri: after["tracks"][uri] for uri in before["tracks"]} == before["tracks"]
    added = set(after["tracks"]) - set(before["tracks"])  # the server's song: its metadata, no vector
    assert len(added) == 1 and after["tracks"][added.pop()][0] == {}


# ---- yt-dlp fetches (sync-playlists --fetch-audio, --audio-url) --------------------------------------------


def test_a_fetched_list_is_refused_and_names_no_file_that_is_read(tmp_path: Path, untouched: Any) -> None:
    """yt-dlp once handed its download to ffmpeg to convert, with probing on: a list read the files it named."""
    secrets_folder = tmp_path / "secrets"
    secrets_folder.mkdir()
    untouched(write_secrets(secrets_folder))
    served = tmp_path / "served"
    served.mkdir()
    lists = reference_lists(secrets_folder)
    for kind, data in lists.items():
        (served / f"{kind}.aac").write_bytes(data)
    with FileServer(served) as web:
        fetcher = Fetcher(AudioCache(tmp_path / "cache"), url_template_search(f"{web.base}/{{id}}"), FETCH_NOW)
        for kind in lists:
            with pytest.raises(ConnectorError) as refused:
                fetcher.fetch(SourceTrack(f"spotify:track:{kind}.aac", kind, "Tester"))
            assert "secret" not in str(refused.value), refused.value
    assert fetcher.downloads == 0 and not list((tmp_path / "cache").glob("*/audio.*"))


# ---- the decoder's own bounds -----------------------------------------------------------------------------


def test_a_decode_past_its_deadline_is_killed_and_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    song = tmp_path / "song.m4a"
    ffmpeg("-i", str(write_audio(tmp_path / "song.wav", chord(30.0))), "-c:a", "aac", str(song))
    monkeypatch.setattr(ffmpeg_decode, "MIN_DEADLINE_S", 0.001)  # far less than ffmpeg needs to start
    monkeypatch.setattr(ffmpeg_decode, "SLOWEST_SPEED", 1e9)
    with pytest.raises(AudioError, match=r"song\.m4a'?: decoding took longer than 0\.001 s; refused"):
        track_windows(song)


# ---- Opus made by ffmpeg ------------------------------------------------------------------------------------


@pytest.fixture
def opus_files(tmp_path: Path) -> dict[str, Path]:
    """Ogg Opus as ffmpeg writes it (yt-dlp's downloads), and two such encodes chained into one file (what
    libsndfile reads only the first link of)."""
    folder = tmp_path / "opus"
    folder.mkdir()
    first = write_audio(tmp_path / "a.wav", drums(6.0) + chord(6.0, 261.6))
    second = write_audio(tmp_path / "b.wav", chord(40.0, 329.6, bright=True) + drums(40.0, 90.0))
    ffmpeg("-i", str(second), "-c:a", "libopus", "-fflags", "+bitexact", str(folder / "ffmpeg.opus"))
    ffmpeg("-i", str(first), "-c:a", "libopus", str(tmp_path / "link1.opus"))
    chained = folder / "chained.opus"
    chained.write_bytes((tmp_path / "link1.opus").read_bytes() + (folder / "ffmpeg.opus").read_bytes())
    return {"ffmpeg": folder / "ffmpeg.opus", "chained": chained}


def test_opus_files_made_by_ffmpeg_are_added_whole(
    store_home: Path, opus_files: dict[str, Path]
) -> None:
    before = dump_store(store_home)
    result = run_siamrec("add-track", str(opus_files["ffmpeg"].parent), "--json")
    assert result.returncode == 0 and not stderr_messages(result.stderr), result.stderr
    after = dump_store(store_home)
    added = {uri: payload for uri, (_, payload) in after["tracks"].items() if uri not in before["tracks"]}
    durations = sorted(round(payload["duration_s"]) for payload in added.values())
    assert durations == [40, 46], added  # the chained file holds both links: 6 s and 40 s
    assert {k: v for k, v in after["tracks"].items() if k in before["tracks"]} == before["tracks"]
    windows, info = track_windows(opus_files["chained"])
    assert windows.shape == (C.WINDOWS_PER_TRACK, C.WINDOW_SAMPLES) and np.isfinite(windows).all()
