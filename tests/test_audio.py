from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from siamrec import constants as C
from siamrec.audio import decode, track_windows, window_starts, windows_from_signal
from siamrec.errors import EmptyAudioError, NotAudioError, SilentAudioError, TooShortAudioError
from siamrec.testing import chord, drums, write_audio


@pytest.mark.parametrize("name", ["chord_a.wav", "chord_c.flac", "bright_a.ogg", "bright_e.mp3"])
def test_decode_formats_to_contract(library_files: dict[str, Path], name: str) -> None:
    signal = decode(library_files[name])
    assert signal.dtype == np.float32 and signal.ndim == 1
    assert abs(signal.size / C.SAMPLE_RATE - 4.0) < 0.1  # mp3 adds a little encoder padding


def test_eight_channel_96k_wav_is_downmixed_and_resampled(tmp_path: Path) -> None:
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(2 * 96_000) / 96_000)).astype(np.float32)
    path = write_audio(tmp_path / "surround.wav", tone, 96_000, channels=8)
    signal = decode(path)
    assert signal.size == 2 * C.SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(signal))
    peak_hz = np.argmax(spectrum) * C.SAMPLE_RATE / signal.size
    assert abs(peak_hz - 440.0) < 2.0  # the resampled pitch is right


def test_bad_inputs_raise_their_own_errors(tmp_path: Path, library_files: dict[str, Path]) -> None:
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 50)
    empty = tmp_path / "empty.ogg"
    empty.touch()
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(library_files["bright_e.mp3"].read_bytes()[:600])
    short = write_audio(tmp_path / "short.wav", chord(0.2))
    silent = write_audio(tmp_path / "silent.wav", np.zeros(10 * C.SAMPLE_RATE, np.float32))
    with pytest.raises(NotAudioError):
        decode(text)
    with pytest.raises(EmptyAudioError):
        decode(empty)
    with pytest.raises((NotAudioError, TooShortAudioError)):
        decode(truncated)
    with pytest.raises(TooShortAudioError):
        decode(short)
    with pytest.raises(SilentAudioError):
        track_windows(silent)


def test_windows_are_spread_evenly_and_short_audio_is_tiled() -> None:
    starts = window_starts(30 * C.SAMPLE_RATE, max_windows=4)
    assert starts[0] == 0 and starts[-1] == 27 * C.SAMPLE_RATE
    assert np.allclose(np.diff(starts), 9 * C.SAMPLE_RATE)
    short = chord(1.5)
    windows = windows_from_signal(short)
    assert windows.shape == (1, C.WINDOW_SAMPLES)
    assert np.array_equal(windows[0, : short.size], short) and np.array_equal(windows[0, short.size :][:10], short[:10])


def test_seeking_reader_matches_full_decode(tmp_path: Path) -> None:
    signal = np.concatenate([drums(12.0, sample_rate=22_050), chord(12.0, 330.0, 22_050, bright=True)])
    path = write_audio(tmp_path / "long.flac", signal, 22_050)  # the rate of the rendered corpus tracks
    seeked, info = track_windows(path, max_windows=4)
    full = windows_from_signal(decode(path), max_windows=4)
    assert seeked.shape == full.shape == (4, C.WINDOW_SAMPLES)
    assert info.sample_rate == 22_050 and abs(info.duration_s - 24.0) < 0.01
    # Resampling each window separately differs from resampling the whole file only at the window edges.
    assert np.abs(seeked[:, 1000:-1000] - full[:, 1000:-1000]).max() < 0.05


def test_m4a_goes_through_ffmpeg(tmp_path: Path, library_files: dict[str, Path]) -> None:
    m4a = tmp_path / "song.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(library_files["drums_120.wav"]), "-c:a", "aac", str(m4a)], check=True
    )
    signal = decode(m4a)
    reference = decode(library_files["drums_120.wav"])
    assert abs(signal.size - reference.size) < 0.1 * C.SAMPLE_RATE  # AAC adds priming samples
    windows, info = track_windows(m4a)
    assert windows.shape == (1, C.WINDOW_SAMPLES) and info.sample_rate == C.SAMPLE_RATE
