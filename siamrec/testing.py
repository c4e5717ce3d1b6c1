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
