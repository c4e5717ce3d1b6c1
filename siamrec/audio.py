"""Decode audio files into the contract's mono 16 kHz float32 and cut them into model windows.

A file's container is sniffed from its bytes first (siamrec.sniff): what opens like no audio container is
refused, never guessed. soundfile (libsndfile) reads wav/aiff/flac/ogg/opus/mp3; the rest (m4a, aac, webm,
wma), and any file libsndfile gives up on part-way (a chained Ogg stops after its first link), goes through
ffmpeg told that one container (siamrec.ffmpeg_decode). Every bad input raises one AudioError subclass with a
one-line message.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf
import soxr

from siamrec import constants as C
from siamrec.errors import AudioError, EmptyAudioError, NotAudioError, SilentAudioError, TooShortAudioError
from siamrec.ffmpeg_decode import stream_decode
from siamrec.names import quoted
from siamrec.quiet import native_stderr_silenced
from siamrec.sniff import READABLE, Container, sniff

AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".aiff", ".aif", ".wma"}
)
# A file holding less than this share of the audio its header declares is refused as truncated
# (an interrupted download); a smaller shortfall (an estimated MP3 length) is read as it is.
PRESENT_SHARE_REQUIRED = 0.9
# The longest audio decoded at all: longer files are refused once this much is decoded (a service passes its own,
# shorter limit). Twelve hours hold any album, mix or audiobook chapter.
MAX_AUDIO_SECONDS = 12 * 3600.0
Decoded = TypeVar("Decoded")


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


def _native_name(path: Path) -> bytes:
    """The file name as bytes for libsndfile: soundfile cannot encode a name that is not valid UTF-8."""
    return os.fsencode(path)


def _check_file(path: Path, name: str) -> None:
    if not path.is_file():
        raise NotAudioError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"{name}: the file is empty (0 bytes)")


def _container(path: Path, name: str) -> Container:
    """The container the file's bytes open with; a file that opens like none is refused, not guessed."""
    _check_file(path, name)
    container = sniff(path)
    if container is None:
        raise NotAudioError(f"{name}: not an audio file siamrec reads (its bytes open like none of {READABLE})")
    return container


def _check_length(name: str, seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise AudioError(f"{name}: the audio is too long: this accepts up to {max_seconds:g} s")


def _to_contract(data: np.ndarray, sample_rate: int) -> np.ndarray:
    """`[frames, channels]` at any rate → mono float32 at SAMPLE_RATE."""
    if data.ndim == 2 and data.shape[1] == 2:
        # Stereo, the common case, bit for bit what `mean(axis=1)` gives (so audio identities stay the same)
        # but about 35x faster: that strided reduction over a tiny axis was a fifth of add-track's decoding.
        mono = (data[:, 0] + data[:, 1]) * np.float32(0.5)
    elif data.ndim == 2:
        mono = data.mean(axis=1, dtype=np.float32)
    else:
        mono = data.astype(np.float32)
    if sample_rate != C.SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, C.SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _ffmpeg_signal(path: Path, container: Container, name: str, max_seconds: float) -> np.ndarray:
    """The whole decode through ffmpeg (training clips); add-track keeps only windows with `_ffmpeg_windows`."""
    blocks: list[np.ndarray] = []
    samples, declared = stream_decode(path, container, name, max_seconds, blocks.append)
    _check_length(name, samples / C.SAMPLE_RATE, max_seconds)
    if declared is not None:
        _check_present(name, declared * C.SAMPLE_RATE, samples, C.SAMPLE_RATE)
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


class EvenBlocks:
    """Window-long blocks spread evenly over a stream of unknown length, in bounded memory.

    Every block is offered in order; kept blocks sit at multiples of a stride that doubles (dropping every
    other kept block) whenever more than twice the wanted count are kept. So at most 2·max_windows blocks
    are held however long the stream is, and they cover it evenly. The last partial block is kept too: a
    stream shorter than one window is that partial block.
    """

    def __init__(self, max_windows: int) -> None:
        self.limit = 2 * max_windows
        self.max_windows = max_windows
        self.stride = 1
        self.kept: list[np.ndarray] = []
        self.blocks = 0
        self.tail = np.zeros(0, np.float32)

    def offer(self, block: np.ndarray) -> None:
        if block.size < C.WINDOW_SAMPLES:
            self.tail = block
            return
        if self.blocks % self.stride == 0:
            self.kept.append(block)
            if len(self.kept) > self.limit:
                self.kept = self.kept[::2]
                self.stride *= 2
        self.blocks += 1

    @property
    def samples(self) -> int:
        return self.blocks * C.WINDOW_SAMPLES + self.tail.size

    def windows(self) -> np.ndarray | None:
        """`[n, WINDOW_SAMPLES]`, or None when the stream is shorter than one window (use `tail`)."""
        if not self.kept:
            return None
        picks = np.unique(np.linspace(0, len(self.kept) - 1, min(self.max_windows, len(self.kept))).round())
        return np.stack([self.kept[int(i)] for i in picks])


def _ffmpeg_windows(
    path: Path, container: Container, name: str, max_windows: int, max_seconds: float
) -> tuple[np.ndarray, AudioInfo]:
    """Stream ffmpeg's decode, keeping only evenly spread windows: memory is bounded whatever the length."""
    blocks = EvenBlocks(max_windows)
    samples, declared = stream_decode(path, container, name, max_seconds, blocks.offer)
    _check_length(name, samples / C.SAMPLE_RATE, max_seconds)
    if declared is not None:
        _check_present(name, declared * C.SAMPLE_RATE, samples, C.SAMPLE_RATE)
    info = AudioInfo(C.SAMPLE_RATE, 1, samples)
    windows = blocks.windows()
    if windows is None:  # shorter than a window: checked before it is tiled up to one
        return windows_from_signal(check_signal(blocks.tail, name), max_windows), info
    return windows, info


def _check_present(name: str, declared_frames: float, present_frames: int, sample_rate: int) -> None:
    """Refuse a file holding much less audio than it declares (an interrupted download, a lying header)."""
    if present_frames < PRESENT_SHARE_REQUIRED * declared_frames and declared_frames - present_frames > sample_rate:
        raise NotAudioError(
            f"{name}: truncated: it declares {_clock(declared_frames / sample_rate)} of audio but holds "
            f"{_clock(present_frames / sample_rate)} ({present_frames / declared_frames:.0%}); an interrupted "
            "download? fetch it again"
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def _soundfile_info(path: Path, container: Container, name: str) -> AudioInfo | None:
    """The header's view of a file libsndfile reads as the sniffed container (None otherwise); refuses a
    WAV/AIFF cut short."""
    if not container.soundfile_formats:
        return None
    try:
        with native_stderr_silenced():
            info = sf.info(_native_name(path))
    except (sf.LibsndfileError, RuntimeError):
        return None
    if info.format not in container.soundfile_formats:  # libsndfile sees another format in these bytes
        return None
    # libsndfile clamps a data chunk longer than the file to what is there, and logs the declared size.
    sizes = re.search(r"(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", info.extra_info)
    if sizes is not None and int(sizes[2]) > 0:  # byte sizes: scale the frames that are there
        _check_present(name, info.frames * int(sizes[1]) / int(sizes[2]), info.frames, info.samplerate)
    return AudioInfo(info.samplerate, info.channels, info.frames)


def _decoded(
    path: Path,
    name: str,
    by_soundfile: Callable[[AudioInfo], Decoded],
    by_ffmpeg: Callable[[Container], Decoded],
) -> Decoded:
    """Decode with libsndfile where it reads the sniffed container, otherwise with ffmpeg told that container.

    When libsndfile fails part-way (a chained Ogg stops after its first link, a header it misreads), ffmpeg
    tries before the file is called corrupt; if ffmpeg cannot read it either, libsndfile's reason stands.
    """
    container = _container(path, name)
    info = _soundfile_info(path, container, name)  # a header declaring more bytes than the file has is a cut
    if info is None:
        return by_ffmpeg(container)
    try:
        return by_soundfile(info)
    except NotAudioError as failure:
        try:
            return by_ffmpeg(container)
        except NotAudioError:
            raise failure from None


def _soundfile_signal(path: Path, info: AudioInfo, name: str, max_seconds: float) -> np.ndarray:
    _check_length(name, info.duration_s, max_seconds)
    try:
        with native_stderr_silenced():
            data, rate = sf.read(_native_name(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise NotAudioError(f"{name}: corrupt or truncated audio ({exc})") from exc
    _check_present(name, info.frames, len(data), rate)
    return _to_contract(data, rate)


def decode(path: str | Path, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """The whole file as mono float32 at 16 kHz, checked for emptiness, length and silence."""
    path = Path(path)
    name = quoted(path)
    signal = _decoded(
        path,
        name,
        lambda info: _soundfile_signal(path, info, name, max_seconds),
        lambda container: _ffmpeg_signal(path, container, name, max_seconds),
    )
    return check_signal(signal, name)


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


def _read_spans(path: Path, info: AudioInfo, max_windows: int) -> np.ndarray | None:
    """Each window's span read from disk, or None when a span comes back less than half full (the audio ends
    well before the header says)."""
    span = int(np.ceil(C.WINDOW_SECONDS * info.sample_rate))
    chunks = []
    with native_stderr_silenced(), sf.SoundFile(_native_name(path)) as handle:
        for start in window_starts(info.frames, max_windows, span):
            try:
                handle.seek(int(start))
                data = handle.read(span, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError):
                return None
            if len(data) < span // 2:  # the audio ends well before the header says: find where
                return None
            # A last window a little short (Vorbis headers often declare a few ms more than they hold) is
            # kept and looped to full length below.
            chunks.append(_to_contract(data, info.sample_rate))
    return np.stack([np.resize(chunk, C.WINDOW_SAMPLES) for chunk in chunks])


def _has_audio_at(path: Path, frame: int) -> bool:
    """Whether a read at `frame` returns audio (a fresh handle each time: a failed seek spoils one)."""
    try:
        with native_stderr_silenced(), sf.SoundFile(_native_name(path)) as handle:
            handle.seek(frame)
            return len(handle.read(1)) == 1
    except (sf.LibsndfileError, RuntimeError):
        return False


def _present_frames(path: Path, declared: int) -> int:
    """How many frames a file really holds when reads stop short of its declared end (binary search)."""
    low, high = 0, declared  # audio at `low`, none at `high`
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _has_audio_at(path, middle) else (low, middle)
    return high


def _read_windows_by_seeking(path: Path, info: AudioInfo, name: str, max_windows: int) -> tuple[np.ndarray, AudioInfo]:
    """Read only the windows' spans from disk: a 20-minute track costs eight 3 s reads, not a full decode.

    Windows come only from audio that exists: when the header declares more (a cut FLAC, an Ogg whose
    last page claims hours), the real length is found, a large shortfall is refused, and the windows are
    spread over what is there.
    """
    try:
        windows = _read_spans(path, info, max_windows)
        if windows is None:
            present = _present_frames(path, info.frames)
            _check_present(name, info.frames, present, info.sample_rate)
            info = AudioInfo(info.sample_rate, info.channels, present)
            windows = _read_spans(path, info, max_windows)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise NotAudioError(f"{name}: corrupt or truncated audio ({exc})") from exc
    if windows is None:
        raise NotAudioError(f"{name}: corrupt audio (reads fail inside the audio it holds)")
    return windows, info


def _soundfile_windows(
    path: Path, info: AudioInfo, name: str, max_windows: int, max_seconds: float
) -> tuple[np.ndarray, AudioInfo]:
    """Long files are read window by window (seek + read), short ones decoded whole."""
    # Seeking pays off once the windows cover less than the file; shorter files are decoded whole.
    if info.duration_s < C.WINDOW_SECONDS * max_windows:
        signal = _soundfile_signal(path, info, name, max_seconds)
        return windows_from_signal(check_signal(signal, name), max_windows), AudioInfo(C.SAMPLE_RATE, 1, signal.size)
    windows, info = _read_windows_by_seeking(path, info, name, max_windows)
    _check_length(name, info.duration_s, max_seconds)
    return windows, info


def track_windows(
    path: str | Path,
    max_windows: int = C.WINDOWS_PER_TRACK,
    max_seconds: float = MAX_AUDIO_SECONDS,
    name: str | None = None,
) -> tuple[np.ndarray, AudioInfo]:
    """The model windows `[n, WINDOW_SAMPLES]` of one file and what the file holds.

    Files libsndfile reads are read window by window, or whole when short; everything else streams through
    ffmpeg keeping only the windows. Audio longer than `max_seconds` is refused; messages call the file
    `name` (its quoted path by default).
    """
    path = Path(path)
    name = name or quoted(path)
    windows, info = _decoded(
        path,
        name,
        lambda info: _soundfile_windows(path, info, name, max_windows, max_seconds),
        lambda container: _ffmpeg_windows(path, container, name, max_windows, max_seconds),
    )
    check_signal(windows.reshape(-1), name)
    return windows, info
