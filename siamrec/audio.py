"""Decode audio files into the contract's mono 16 kHz float32 and cut them into model windows.

soundfile (libsndfile) reads wav/flac/ogg/opus/mp3; what it cannot read (m4a, aac, webm, …) goes through
ffmpeg when it is installed. Every bad input raises one AudioError subclass with a one-line message.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from siamrec import constants as C
from siamrec.errors import EmptyAudioError, NotAudioError, SilentAudioError, TooShortAudioError

AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".aiff", ".aif", ".wma"}
)


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header (or from a full decode when the header cannot be trusted)."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def is_audio_path(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def file_sha1(path: Path) -> str:
    """SHA-1 of the file's bytes: the identity of local audio (`local:track:<sha1>`)."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def audio_identity(windows: np.ndarray, info: AudioInfo) -> str:
    """The identity of a recording: a SHA-1 of its decoded model windows (16-bit) and its length.

    Tags are not audio, so re-tagging a file keeps its identity (and its `local:track:` URI), while any
    edit of the audio changes it. It hashes the windows `track_windows` already decoded, so adding a file
    costs no extra read.
    """
    digest = hashlib.sha1(f"{info.sample_rate}:{info.frames}:".encode())
    digest.update(np.round(np.clip(windows, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return digest.hexdigest()


def identify(path: str | Path) -> str:
    """`audio_identity` of a file (decodes its windows: for sources that name files before embedding)."""
    windows, info = track_windows(path)
    return audio_identity(windows, info)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise NotAudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"{path}: the file is empty (0 bytes)")


def _to_contract(data: np.ndarray, sample_rate: int) -> np.ndarray:
    """`[frames, channels]` at any rate → mono float32 at SAMPLE_RATE."""
    mono = data.mean(axis=1, dtype=np.float32) if data.ndim == 2 else data.astype(np.float32)
    if sample_rate != C.SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, C.SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _ffmpeg_decode(path: Path) -> np.ndarray:
    """Decode anything ffmpeg reads straight to mono 16 kHz float32."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise NotAudioError(f"{path}: not readable by libsndfile, and ffmpeg is not installed to try it")
    command = [ffmpeg, "-v", "error", "-nostdin", "-i", str(path), "-f", "f32le", "-ac", "1",
               "-ar", str(C.SAMPLE_RATE), "-"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise NotAudioError(f"{path}: not an audio file ({reason[-1] if reason else 'ffmpeg failed'})")
    return np.frombuffer(result.stdout, dtype=np.float32).copy()


def _soundfile_info(path: Path) -> AudioInfo | None:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return None
    return AudioInfo(info.samplerate, info.channels, info.frames)


def decode(path: str | Path) -> np.ndarray:
    """The whole file as mono float32 at 16 kHz, checked for emptiness, length and silence."""
    path = Path(path)
    _check_file(path)
    if _soundfile_info(path) is not None:
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise NotAudioError(f"{path}: corrupt or truncated audio ({exc})") from exc
        signal = _to_contract(data, rate)
    else:
        signal = _ffmpeg_decode(path)
    return check_signal(signal, str(path))


def check_signal(signal: np.ndarray, name: str) -> np.ndarray:
    """Refuse audio with no samples, shorter than MIN_TRACK_SECONDS, non-finite, or digitally silent."""
    if signal.size == 0:
        raise EmptyAudioError(f"{name}: the file holds no audio samples")
    if not np.isfinite(signal).all():
        raise NotAudioError(f"{name}: the audio holds NaN or infinite samples")
    if signal.size < C.MIN_TRACK_SAMPLES:
        raise TooShortAudioError(
            f"{name}: {signal.size / C.SAMPLE_RATE:.2f} s of audio; a track needs at least {C.MIN_TRACK_SECONDS:g} s"
        )
    if float(np.abs(signal).max()) < C.SILENCE_PEAK:
        raise SilentAudioError(f"{name}: the audio is digital silence")
    return signal


def window_starts(n_samples: int, max_windows: int = C.WINDOWS_PER_TRACK, span: int = C.WINDOW_SAMPLES) -> np.ndarray:
    """Start offsets of up to `max_windows` windows of `span` samples spread evenly over `n_samples`."""
    count = int(min(max_windows, max(1, n_samples // span)))
    last = max(0, n_samples - span)
    return np.linspace(0, last, count).round().astype(np.int64)


def windows_from_signal(signal: np.ndarray, max_windows: int = C.WINDOWS_PER_TRACK) -> np.ndarray:
    """`[n, WINDOW_SAMPLES]` windows of a checked signal; audio shorter than a window is tiled to fill it."""
    if signal.size < C.WINDOW_SAMPLES:
        signal = np.resize(signal, C.WINDOW_SAMPLES)  # repeats the clip: a loop sounds like the clip
    starts = window_starts(signal.size, max_windows)
    index = starts[:, None] + np.arange(C.WINDOW_SAMPLES)[None, :]
    return signal[index]


def _read_windows_by_seeking(path: Path, info: AudioInfo, max_windows: int) -> np.ndarray:
    """Read only the windows' spans from disk: a 20-minute track costs eight 3 s reads, not a full decode."""
    span = int(np.ceil(C.WINDOW_SECONDS * info.sample_rate))
    chunks = []
    with sf.SoundFile(str(path)) as handle:
        for start in window_starts(info.frames, max_windows, span):
            handle.seek(int(start))
            data = handle.read(span, dtype="float32", always_2d=True)
            chunks.append(_to_contract(data, info.sample_rate))
    return np.stack([np.resize(chunk, C.WINDOW_SAMPLES) for chunk in chunks])


def track_windows(path: str | Path, max_windows: int = C.WINDOWS_PER_TRACK) -> tuple[np.ndarray, AudioInfo]:
    """The model windows `[n, WINDOW_SAMPLES]` of one file and what the file holds.

    Long files readable by soundfile are read window by window (seek + read); everything else is decoded
    whole. The same checks apply either way.
    """
    path = Path(path)
    _check_file(path)
    info = _soundfile_info(path)
    # Seeking pays off once the windows cover less than the file; shorter files are decoded whole.
    if info is not None and info.duration_s >= C.WINDOW_SECONDS * max_windows:
        try:
            windows = _read_windows_by_seeking(path, info, max_windows)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise NotAudioError(f"{path}: corrupt or truncated audio ({exc})") from exc
        check_signal(windows.reshape(-1), str(path))
        return windows, info
    signal = decode(path)
    if info is None:
        info = AudioInfo(C.SAMPLE_RATE, 1, signal.size)
    return windows_from_signal(signal, max_windows), info
