"""Bad audio through `siamrec add-track`: exit status, exactly one stderr line, the store dumped before and after.

What siamrec survives here: absurd sample values that make the model return NaN (beside good files),
files cut short or whose header lies about their length, non-MP3 data named .mp3 (libmpg123's notes),
newlines and undecodable bytes in file names, folders with nothing to read, and long ffmpeg-only files.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from siamrec import constants as C
from siamrec.audio import EvenBlocks, identify, track_windows
from siamrec.config import resolve_settings
from siamrec.embed import TrackEncoder
from siamrec.library import add_paths
from siamrec.names import path_from_payload
from siamrec.store import Store
from siamrec.testing import chord, drums, noise, write_audio
from siamrec.uris import local_track_uri
from tests.cli import assert_one_error_line, run_siamrec, stderr_messages
from tests.stores import dump_store


def written_as(raw: bytes, signal: np.ndarray) -> Path:
    """Audio under a file name given as bytes (soundfile itself cannot create a non-UTF-8 name)."""
    plain = write_audio(Path(os.fsdecode(raw)).with_name("plain" + Path(os.fsdecode(raw)).suffix), signal)
    os.rename(bytes(plain), raw)
    return Path(os.fsdecode(raw))


def track_id(path: Path) -> str:
    """The key of a file's track in a store dump: its `local:track:` URI (from the decoded audio)."""
    return local_track_uri(identify(path))


@pytest.fixture
def filled(home: Path, tmp_path: Path, tiny_model: Path) -> dict[str, Any]:
    """A store holding one track already (added in-process, for speed): every test checks it survives."""
    first = write_audio(tmp_path / "stored" / "first.wav", chord(4.0, 196.0))
    with Store.open(resolve_settings()) as store:
        assert add_paths(store, TrackEncoder(tiny_model), [first]).added
    return dump_store()


def assert_only_added(before: dict[str, Any], after: dict[str, Any], added: list[Path]) -> None:
    """The store changed exactly by `added`: old points identical, new ids are those files', vectors finite."""
    assert {k: v for k, v in after["tracks"].items() if k in before["tracks"]} == before["tracks"]
    assert set(after["tracks"]) - set(before["tracks"]) == {track_id(p) for p in added}
    assert all(np.isfinite(v).all() for vectors, _ in after["tracks"].values() for v in vectors.values())


# ---- 1. a file the model cannot embed never costs the good files beside it ---------------------------


def test_enormous_samples_fail_alone(
    filled: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    good = [write_audio(folder / "a.wav", drums(4.0)), write_audio(folder / "c.flac", chord(4.0, 330.0))]
    huge = folder / "b_huge.wav"  # finite float32, far beyond any real audio: the mel power overflows
    sf.write(str(huge), (noise(4.0, level=1.0) * 1e30).astype(np.float32), C.SAMPLE_RATE, subtype="FLOAT")
    result = run_siamrec("add-track", str(folder))
    line = assert_one_error_line(result, "b_huge.wav", "skipped:", alone=True)
    assert "no usable vector" in line and "e+30" in line
    assert_only_added(filled, dump_store(), good)


# ---- 2. windows only from audio that exists; files much shorter than declared are refused -------------


def wav_declaring(path: Path, declared_s: float, present_s: float) -> Path:
    """A 16-bit WAV whose header declares `declared_s` but whose data stops at `present_s` (a cut download)."""
    pcm = (chord(present_s, 220.0) * 32767).astype("<i2").tobytes()
    declared = int(declared_s * C.SAMPLE_RATE) * 2
    fmt = struct.pack("<HHIIHH", 1, 1, C.SAMPLE_RATE, 2 * C.SAMPLE_RATE, 2, 16)
    path.write_bytes(
        b"RIFF" + struct.pack("<I", 36 + declared) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", declared) + pcm
    )  # fmt: skip
    return path


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


def ogg_claiming(path: Path, real: Path, claimed_s: float) -> Path:
    """`real` (an Ogg) with its last page's granule position set to `claimed_s` (CRC fixed): a lying length."""
    data = bytearray(real.read_bytes())
    page = data.rfind(b"OggS")
    struct.pack_into("<q", data, page + 6, int(claimed_s * C.SAMPLE_RATE))
    struct.pack_into("<I", data, page + 22, 0)
    segments = data[page + 26]
    length = 27 + segments + sum(data[page + 27 : page + 27 + segments])
    struct.pack_into("<I", data, page + 22, _ogg_crc(bytes(data[page : page + length])))
    path.write_bytes(data)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True)


def cut(source: Path, target: Path, share: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * share)])
    return target


def make_cut_flac(tmp: Path) -> Path:
    return cut(write_audio(tmp / "whole.flac", drums(600.0)), tmp / "cut.flac", 0.15)


def make_cut_webm(tmp: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=600:r=16000", "-c:a", "libopus", "-b:a", "24k", str(tmp / "whole.webm"))
    return cut(tmp / "whole.webm", tmp / "cut.webm", 0.15)


def make_lying_ogg(tmp: Path) -> Path:
    return ogg_claiming(tmp / "liar.ogg", write_audio(tmp / "real.ogg", drums(30.0)), 4 * 3600)


TRUNCATED = {
    "wav-60min-15pct": (
        lambda tmp: wav_declaring(tmp / "cut.wav", 3600, 540),
        "declares 1:00:00 of audio but holds 9:00",
    ),
    "flac-cut-15pct": (make_cut_flac, "declares 10:00 of audio"),
    "ogg-last-page-claims-4h": (make_lying_ogg, "declares 4:00:00 of audio but holds 0:30"),
    "webm-cut-15pct": (make_cut_webm, "declares 10:00 of audio"),
}


@pytest.mark.parametrize("case", sorted(TRUNCATED))
def test_files_much_shorter_than_declared_are_refused(
    case: str, filled: dict[str, Any], tmp_path: Path
) -> None:
    maker, fragment = TRUNCATED[case]
    bad = maker(tmp_path)
    line = assert_one_error_line(run_siamrec("add-track", str(bad)), fragment, "skipped:", alone=True)
    assert "truncated" in line and bad.name in line
    assert dump_store() == filled


def test_ogg_declaring_a_little_more_than_it_holds_is_read(tmp_path: Path) -> None:
    """Vorbis headers often declare a few ms more than the pages hold (3 dev-corpus tracks do): the last
    window comes back a little short and is kept, not refused as corrupt."""
    real = write_audio(tmp_path / "real.ogg", chord(40.0, 220.0) + noise(40.0, level=0.05))
    slightly_long = ogg_claiming(tmp_path / "long-header.ogg", real, 40.2)
    windows, info = track_windows(slightly_long)
    assert windows.shape == (C.WINDOWS_PER_TRACK, C.WINDOW_SAMPLES) and np.isfinite(windows).all()
    assert abs(info.duration_s - 40.2) < 0.05  # the header's length: well within the 90 % rule


def test_slightly_short_file_is_read_from_the_audio_it_has(tmp_path: Path) -> None:
    """A FLAC cut at 95 %: accepted, with its real length, and every window holds real (non-silent) audio."""
    whole = write_audio(tmp_path / "whole.flac", chord(60.0, 220.0) + noise(60.0, level=0.05))
    short = cut(whole, tmp_path / "short.flac", 0.95)
    windows, info = track_windows(short)
    assert 50.0 < info.duration_s < 58.0
    assert windows.shape == (C.WINDOWS_PER_TRACK, C.WINDOW_SAMPLES)
    assert (np.abs(windows).max(axis=1) > 0.1).all()


# ---- 3. ffmpeg formats stream: only evenly spread windows are kept -------------------------------------


def test_even_blocks_keep_bounded_evenly_spread_windows() -> None:
    blocks = EvenBlocks(max_windows=8)
    for i in range(1000):  # 50 minutes of 3 s blocks, each filled with its index
        blocks.offer(np.full(C.WINDOW_SAMPLES, i, np.float32))
        assert len(blocks.kept) <= 16
    blocks.offer(np.zeros(100, np.float32))
    windows = blocks.windows()
    assert windows is not None and windows.shape == (8, C.WINDOW_SAMPLES)
    firsts = windows[:, 0]
    assert firsts[0] == 0 and firsts[-1] > 800 and np.ptp(np.diff(firsts)) <= 64
    assert blocks.samples == 1000 * C.WINDOW_SAMPLES + 100


@pytest.mark.parametrize("suffix", [".m4a", ".webm"])
def test_ffmpeg_formats_are_added(
    suffix: str, filled: dict[str, Any], tmp_path: Path
) -> None:
    wav = write_audio(tmp_path / "src.wav", drums(40.0) + chord(40.0, 261.6))
    path = tmp_path / f"song{suffix}"
    ffmpeg("-i", str(wav), "-c:a", "aac" if suffix == ".m4a" else "libopus", str(path))
    windows, info = track_windows(path)
    assert windows.shape == (C.WINDOWS_PER_TRACK, C.WINDOW_SAMPLES) and abs(info.duration_s - 40.0) < 0.2
    result = run_siamrec("add-track", str(path))
    assert result.returncode == 0 and not stderr_messages(result.stderr), result.stderr
    assert_only_added(filled, dump_store(), [path])


# ---- 4. one line, for real: no native chatter, names quoted -------------------------------------------


@pytest.mark.parametrize("name", ["notes.mp3", "two\nlines.mp3", "tab\there.ogg"])
def test_non_audio_gives_one_line_and_no_native_notes(
    name: str, filled: dict[str, Any], tmp_path: Path
) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"ID3 not really\n" + bytes(range(256)) * 40)  # libmpg123 notes illegal headers on this
    line = assert_one_error_line(run_siamrec("add-track", str(bad)), repr(name)[1:-1], "skipped:", alone=True)
    assert "Illegal" not in line and "Note:" not in line
    assert dump_store() == filled


def test_native_notes_stay_silent_beside_good_files(
    filled: dict[str, Any], tmp_path: Path
) -> None:
    """Decoding runs in a thread pool: silencing one thread's decode must not swallow siamrec's own lines."""
    folder = tmp_path / "mixed"
    good = [write_audio(folder / f"good{i}.mp3", chord(3.0, 200.0 + 40 * i)) for i in range(4)]
    for i in range(3):
        (folder / f"junk{i}.mp3").write_bytes(bytes(range(256)) * 60)
    result = run_siamrec("add-track", str(folder))
    assert result.returncode == 1
    lines = sorted(stderr_messages(result.stderr))
    assert [line.split(": ")[:2] for line in lines] == [["skipped", str(folder / f"junk{i}.mp3")] for i in range(3)]
    assert_only_added(filled, dump_store(), good)


# ---- 5. file names that are not UTF-8 -----------------------------------------------------------------


def test_non_utf8_names_are_added_and_reported(
    filled: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "latin1"
    folder.mkdir()
    good = written_as(bytes(folder) + b"/caf\xe9.wav", chord(4.0, 246.9))
    bad = Path(os.fsdecode(bytes(folder) + b"/\xff\xfe.mp3"))
    bad.write_bytes(bytes(range(256)) * 40)
    result = run_siamrec("add-track", str(folder))
    line = assert_one_error_line(result, "\\xff\\xfe.mp3", "skipped:", alone=True)
    assert line.startswith("skipped: '") and "\\udc" not in line
    after = dump_store()
    assert_only_added(filled, after, [good])
    _, payload = after["tracks"][track_id(good)]
    assert payload["title"] == "caf\\xe9"
    assert path_from_payload(payload["path"]) == good.resolve()  # stored as text, the file is still found
    payload["path"].encode("utf-8")


def test_non_utf8_names_in_json_output(home: Path, tmp_path: Path) -> None:
    import json

    path = written_as(bytes(tmp_path) + b"/na\xefve.flac", drums(4.0))
    result = run_siamrec("add-track", "--json", str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 1


# ---- 7. a folder with nothing to read says so ----------------------------------------------------------


@pytest.mark.parametrize("content", ["empty", "no-audio"])
def test_folder_with_nothing_to_read_gives_the_reason(
    content: str, filled: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    if content == "no-audio":
        (folder / "cover.jpg").write_bytes(b"\xff\xd8 a picture")
        (folder / "notes.txt").write_text("liner notes")
    line = assert_one_error_line(run_siamrec("add-track", str(folder)), "no audio files in", alone=True)
    assert str(folder) in line and "flac" in line
    assert dump_store() == filled


def test_non_utf8_names_in_playlist_create_and_folder_sync(
    home: Path, tmp_path: Path
) -> None:
    path = written_as(bytes(tmp_path) + b"/music/caf\xe9.wav", chord(4.0, 246.9))
    created = run_siamrec("playlist", "create", "Cafe", str(path))
    assert created.returncode == 0, created.stderr
    synced = run_siamrec("sync-playlists", "--folder", str(path.parent))
    assert synced.returncode == 0, synced.stderr
    dump = dump_store()
    assert set(dump["tracks"]) == {track_id(path)}
    names = sorted(payload["name"] for _, payload in dump["playlists"].values())
    assert names == ["Cafe", "music"]
