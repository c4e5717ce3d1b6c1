"""Test helpers that ship with the package (like beets' test helper): real audio made from numpy.

Distinct "timbres" (sine chords, bright saw chords, drum loops, noise) give an encoder something to tell
apart; every maker is seeded so tests are repeatable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from siamrec import constants as C


def _time(seconds: float, sample_rate: int) -> np.ndarray:
    return np.arange(int(seconds * sample_rate)) / sample_rate


def chord(
    seconds: float = 5.0, root_hz: float = 220.0, sample_rate: int = C.SAMPLE_RATE, bright: bool = False
) -> np.ndarray:
    """A major triad; `bright` uses sawtooth-like harmonics instead of sines."""
    t = _time(seconds, sample_rate)
    harmonics = range(1, 9) if bright else (1,)
    signal = sum(np.sin(2 * np.pi * root_hz * ratio * h * t) / h for ratio in (1.0, 1.26, 1.5) for h in harmonics)
    return (0.25 * signal / np.abs(signal).max()).astype(np.float32)


def drums(seconds: float = 5.0, bpm: float = 120.0, sample_rate: int = C.SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """Kick (decaying 60 Hz sine) on every beat and a noise snare on the off-beats."""
    rng = np.random.default_rng(seed)
    t = _time(seconds, sample_rate)
    beat = 60.0 / bpm
    phase = t % beat
    kick = np.sin(2 * np.pi * 60 * phase) * np.exp(-phase * 25)
    off = (t + beat / 2) % beat
    snare = rng.standard_normal(t.size) * np.exp(-off * 40)
    return (0.4 * kick + 0.2 * snare).astype(np.float32)


def noise(seconds: float = 5.0, sample_rate: int = C.SAMPLE_RATE, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * sample_rate))).astype(np.float32)


def write_audio(path: Path, signal: np.ndarray, sample_rate: int = C.SAMPLE_RATE, channels: int = 1) -> Path:
    """Write mono `signal` to `path` (format from the suffix), copied to `channels` channels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.repeat(signal[:, None], channels, axis=1) if channels > 1 else signal
    sf.write(str(path), data, sample_rate)
    return path


def music_library(folder: Path, seconds: float = 4.0) -> dict[str, Path]:
    """A few short tracks of clearly different character, as wav/flac/ogg/mp3 files."""
    tracks = {
        "chord_a.wav": chord(seconds, 220.0),
        "chord_c.flac": chord(seconds, 261.6),
        "bright_a.ogg": chord(seconds, 220.0, bright=True),
        "bright_e.mp3": chord(seconds, 329.6, bright=True),
        "drums_120.wav": drums(seconds, 120.0),
        "drums_90.flac": drums(seconds, 90.0, seed=1),
        "noise.ogg": noise(seconds),
    }
    return {name: write_audio(folder / name, signal) for name, signal in tracks.items()}


# ---- hostile files: lists of other files dressed up as audio --------------------------------------------
# ffmpeg left to probe reads these as playlists (HLS, DASH, ffconcat) and decodes the files they name; the
# ADTS frames make a header sniffer such as mutagen take the same bytes for AAC. Decoders must refuse them.


def adts_frames(count: int = 4, length: int = 257) -> bytes:
    """ADTS (AAC) frame headers over filler: no byte is NUL, CR, LF or an XML control character, so the frames
    fit on a playlist's comment line or in a Latin-1 XML comment (257 bytes puts printable bytes in the header)."""
    header = bytes([0xFF, 0xF1, 0x50, 0x80 | length >> 11, length >> 3 & 0xFF, (length & 7) << 5 | 0x1F, 0xFC])
    return (header + b"A" * (length - len(header))) * count


def hls_playlist(targets: list[str], seconds: float) -> bytes:
    """An HLS media playlist naming `targets` (paths or URLs), each `seconds` long."""
    entries = "".join(f"#EXTINF:{seconds:g},\n{target}\n" for target in targets)
    head = f"#EXTM3U\n#EXT-X-TARGETDURATION:{int(np.ceil(seconds))}\n#ADIF".encode()
    return head + adts_frames() + b"\n" + entries.encode() + b"#EXT-X-ENDLIST\n"


def ffconcat_list(targets: list[str]) -> bytes:
    """An ffconcat script naming `targets` (relative names: ffmpeg's probe only follows "safe" ones)."""
    return b"ffconcat version 1.0\n#ADIF" + adts_frames() + b"\n" + "".join(f"file '{t}'\n" for t in targets).encode()


def dash_manifest(target: str, seconds: float) -> bytes:
    """A DASH manifest whose one representation is `target` (Latin-1, so the ADTS frames are well-formed XML)."""
    return (
        b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!--ADIF' + adts_frames() + b"-->\n"
        b'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" '
        + f'type="static" mediaPresentationDuration="PT{seconds:g}S" minBufferTime="PT1S"><Period>'
        f'<AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="128000"><BaseURL>{target}'
        "</BaseURL></Representation></AdaptationSet></Period></MPD>\n".encode()
    )


def id3_tagged(data: bytes, padding: int = 64) -> bytes:
    """`data` behind an empty ID3v2.4 tag, as MP3, AAC and FLAC files may open (ffmpeg's probe skips the tag)."""
    size = bytes(padding >> shift & 0x7F for shift in (21, 14, 7, 0))  # "syncsafe": 7 bits a byte
    return b"ID3\x04\x00\x00" + size + bytes(padding) + data
