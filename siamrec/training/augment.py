"""The three augmentation families SimSiam views are made of, with parameters that mean what they say.

a) audio effects (pedalboard, on the waveform, in DataLoader workers): a random subset per view of
   compressor, gain, chorus, low-pass, phaser, distortion, reverb (the paper's Table 1) and time reversal;
b) random mix: cut a crop into chunks, shuffle them, rejoin them with short equal-power crossfades;
c) spectrogram augmentation (torch, batched, on the training device): time/frequency masking, random
   resized crop, brightness/contrast, time flip. Hue, RGB shift and channel shuffle (image augmentations the
   paper lists) have no meaning on a one-channel log-mel and are not offered.

The reference SiamRec code had a compressor with ratio 1 (a no-op), a "low-pass" that was a 200 Hz
high-pass and a phaser depth of -10…9: every range here is checked against what the effect can mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siamrec import constants as C
from siamrec.errors import ConfigError

EFFECTS = ("compressor", "gain", "chorus", "lowpass", "phaser", "distortion", "reverb", "reverse")
AUGMENTATIONS = ("effects", "mix", "spec")

Span = tuple[float, float]


def _check_span(name: str, span: Span, low: float, high: float, open_low: bool = False) -> None:
    """`span` must be ordered and inside [low, high] (or (low, high] when `open_low`)."""
    a, b = span
    below = a <= low if open_low else a < low
    if a > b or below or b > high:
        bracket = "(" if open_low else "["
        raise ConfigError(f"augmentation {name}={span}: need low <= high within {bracket}{low}, {high}]")


@dataclass(frozen=True)
class EffectSettings:
    """Per-view probability of each effect and the range its parameters are drawn from (uniformly)."""

    probability: float = 0.5
    compressor_threshold_db: Span = (-30.0, -10.0)
    compressor_ratio: Span = (2.0, 10.0)
    gain_db: Span = (-12.0, 6.0)
    chorus_rate_hz: Span = (0.5, 3.0)
    chorus_depth: Span = (0.1, 0.6)
    lowpass_cutoff_hz: Span = (800.0, 4000.0)
    phaser_rate_hz: Span = (0.2, 2.0)
    phaser_depth: Span = (0.3, 0.9)
    distortion_drive_db: Span = (5.0, 25.0)
    reverb_room_size: Span = (0.2, 0.9)
    reverb_wet_level: Span = (0.1, 0.5)

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError(f"effect probability {self.probability} must be within [0, 1]")
        nyquist = C.SAMPLE_RATE / 2
        limits = {
            "compressor_threshold_db": (-60.0, 0.0, False),
            "compressor_ratio": (1.0, 100.0, True),  # ratio 1 compresses nothing
            "gain_db": (-40.0, 20.0, False),
            "chorus_rate_hz": (0.0, 20.0, True),
            "chorus_depth": (0.0, 1.0, True),
            "lowpass_cutoff_hz": (20.0, nyquist, False),  # above Nyquist a low-pass filters nothing
            "phaser_rate_hz": (0.0, 20.0, True),
            "phaser_depth": (0.0, 1.0, True),
            "distortion_drive_db": (0.0, 60.0, True),
            "reverb_room_size": (0.0, 1.0, False),
            "reverb_wet_level": (0.0, 1.0, True),
        }
        for item in fields(self):
            if item.name in limits:
                low, high, open_low = limits[item.name]
                _check_span(item.name, getattr(self, item.name), low, high, open_low)


def _draw(rng: np.random.Generator, span: Span) -> float:
    return float(rng.uniform(span[0], span[1]))


def _plugin(name: str, s: EffectSettings, rng: np.random.Generator) -> object:
    """One pedalboard plugin with random parameters. Built per call, inside the worker: plugins don't pickle."""
    import pedalboard as pb

    if name == "compressor":
        return pb.Compressor(
            threshold_db=_draw(rng, s.compressor_threshold_db), ratio=_draw(rng, s.compressor_ratio),
            attack_ms=_draw(rng, (1.0, 20.0)), release_ms=_draw(rng, (50.0, 300.0)),
        )  # fmt: skip
    if name == "gain":
        return pb.Gain(gain_db=_draw(rng, s.gain_db))
    if name == "chorus":
        return pb.Chorus(rate_hz=_draw(rng, s.chorus_rate_hz), depth=_draw(rng, s.chorus_depth), mix=0.5)
    if name == "lowpass":
        return pb.LowpassFilter(cutoff_frequency_hz=_draw(rng, s.lowpass_cutoff_hz))
    if name == "phaser":
        return pb.Phaser(rate_hz=_draw(rng, s.phaser_rate_hz), depth=_draw(rng, s.phaser_depth), mix=0.5)
    if name == "distortion":
        return pb.Distortion(drive_db=_draw(rng, s.distortion_drive_db))
    if name == "reverb":
        wet = _draw(rng, s.reverb_wet_level)
        return pb.Reverb(room_size=_draw(rng, s.reverb_room_size), wet_level=wet, dry_level=1.0 - wet)
    raise ConfigError(f"unknown effect {name!r}: choose from {', '.join(EFFECTS)}")


def apply_effects(
    signal: np.ndarray, names: Sequence[str], rng: np.random.Generator, settings: EffectSettings
) -> np.ndarray:
    """Run `names` in order on a float32 signal; same length and dtype out."""
    import pedalboard as pb

    reverse = "reverse" in names
    plugins = [_plugin(n, settings, rng) for n in names if n != "reverse"]
    out = pb.Pedalboard(plugins)(signal, C.SAMPLE_RATE) if plugins else signal
    out = out[::-1] if reverse else out
    return np.ascontiguousarray(np.nan_to_num(out, posinf=0.0, neginf=0.0), dtype=np.float32)


def random_effects(signal: np.ndarray, rng: np.random.Generator, settings: EffectSettings) -> np.ndarray:
    """Each effect independently with `settings.probability`, in a random order (a different chain per view)."""
    chosen = [name for name in EFFECTS if rng.random() < settings.probability]
    return apply_effects(signal, [chosen[i] for i in rng.permutation(len(chosen))], rng, settings)


@dataclass(frozen=True)
class MixSettings:
    """Random mix: how many chunks a crop is cut into, and the crossfade at each join."""

    chunks: tuple[int, int] = (2, 6)
    crossfade_ms: float = 10.0

    def __post_init__(self) -> None:
        if not 2 <= self.chunks[0] <= self.chunks[1] <= 64:
            raise ConfigError(f"mix chunks={self.chunks}: need 2 <= low <= high <= 64 (one chunk mixes nothing)")
        if not 0.0 <= self.crossfade_ms <= 100.0:
            raise ConfigError(f"mix crossfade_ms={self.crossfade_ms} must be within [0, 100]")


def random_mix(signal: np.ndarray, rng: np.random.Generator, settings: MixSettings) -> np.ndarray:
    """Cut into k equal chunks, shuffle them (never the identity), rejoin with equal-power crossfades.

    Each chunk is read `fade` samples past its end (wrapping around), so the overlap-add output keeps the
    input's length and no join has a click.
    """
    n = signal.shape[0]
    k = int(rng.integers(settings.chunks[0], settings.chunks[1] + 1))
    length = n // k
    fade = min(int(settings.crossfade_ms * C.SAMPLE_RATE / 1000), length // 2)
    order = rng.permutation(k)
    if np.array_equal(order, np.arange(k)):
        order = np.roll(order, 1)
    source = (order[:, None] * length + np.arange(length + fade)[None, :]) % n  # k x (length+fade)
    envelope = np.ones(length + fade, dtype=np.float32)
    if fade:
        ramp = np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)
        envelope[:fade], envelope[length:] = np.sin(ramp), np.cos(ramp)
    weights = np.broadcast_to(envelope, source.shape).copy()
    weights[0, :fade] = 1.0  # nothing before the first chunk to fade from
    target = np.arange(k)[:, None] * length + np.arange(length + fade)[None, :]
    mixed = np.bincount(target.ravel(), weights=(signal[source] * weights).ravel(), minlength=n + fade)[:n]
    mixed[k * length :] = signal[k * length :]  # the few samples left over by n // k stay where they were
    return mixed.astype(np.float32)


class WaveformAugment:
    """The per-view waveform augmentation a DataLoader worker runs (picklable: it holds only settings)."""

    def __init__(self, effects: EffectSettings | None = None, mix: MixSettings | None = None) -> None:
        self.effects = effects
        self.mix = mix

    def __call__(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.mix is not None and rng.random() < 0.5:
            signal = random_mix(signal, rng, self.mix)
        if self.effects is not None:
            signal = random_effects(signal, rng, self.effects)
        return signal


@dataclass(frozen=True)
class SpecSettings:
    """Batched log-mel augmentation; every probability is per sample."""

    time_mask: float = 0.2  # the widest mask as a fraction of the frames
    freq_mask: float = 0.2  # … of the mel bands
    mask_probability: float = 0.5
    crop_scale: Span = (0.5, 1.0)  # fraction of the time axis a random resized crop keeps
    crop_probability: float = 0.5
    brightness: float = 0.3  # additive shift in log10 units
    contrast: float = 0.3  # multiplicative spread around the sample mean, 1 ± contrast
    jitter_probability: float = 0.8
    flip_probability: float = 0.5

    def __post_init__(self) -> None:
        for name in ("time_mask", "freq_mask", "mask_probability", "crop_probability", "jitter_probability",
                     "flip_probability", "contrast"):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"spec augmentation {name}={getattr(self, name)} must be within [0, 1]")
        if not 0.0 <= self.brightness <= 2.0:
            raise ConfigError(f"spec augmentation brightness={self.brightness} must be within [0, 2]")
        _check_span("crop_scale", self.crop_scale, 0.0, 1.0, open_low=True)


class SpecAugment(nn.Module):
    """Log-mel `[B, 1, F, T]` → augmented log-mel of the same shape, each sample its own random draw."""

    def __init__(self, settings: SpecSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or SpecSettings()

    def _rand(self, mel: torch.Tensor, *shape: int) -> torch.Tensor:
        return torch.rand(mel.shape[0], *shape, device=mel.device, dtype=mel.dtype)

    def resized_crop(self, mel: torch.Tensor) -> torch.Tensor:
        """Keep a random time span and stretch it back to the full length (a tempo change and a shift)."""
        low, high = self.settings.crop_scale
        apply = self._rand(mel) < self.settings.crop_probability
        scale = torch.where(apply, low + (high - low) * self._rand(mel), torch.ones_like(apply, dtype=mel.dtype))
        shift = (1.0 - scale) * (2.0 * self._rand(mel) - 1.0)
        theta = torch.zeros(mel.shape[0], 2, 3, device=mel.device, dtype=mel.dtype)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1] = scale, shift, 1.0
        grid = F.affine_grid(theta, list(mel.shape), align_corners=False)
        cropped = F.grid_sample(mel, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return torch.where(apply.view(-1, 1, 1, 1), cropped, mel)  # untouched samples stay bit-exact

    def jitter(self, mel: torch.Tensor) -> torch.Tensor:
        """Brightness (overall level) and contrast (dynamic range) of the log-mel."""
        s = self.settings
        apply = self._rand(mel, 1, 1, 1) < s.jitter_probability
        mean = mel.mean(dim=(1, 2, 3), keepdim=True)
        contrast = 1.0 + s.contrast * (2.0 * self._rand(mel, 1, 1, 1) - 1.0)
        brightness = s.brightness * (2.0 * self._rand(mel, 1, 1, 1) - 1.0)
        jittered = ((mel - mean) * contrast + mean + brightness).clamp_min(0.0)  # log10(1 + x) >= 0
        return torch.where(apply, jittered, mel)

    def _mask(self, mel: torch.Tensor, axis: int, fraction: float) -> torch.Tensor:
        """One band per sample along `axis` (2 = mel bands, 3 = frames), up to `fraction` of it wide."""
        size = mel.shape[axis]
        apply = self._rand(mel) < self.settings.mask_probability
        width = (self._rand(mel) * fraction * size).long() * apply
        start = (self._rand(mel) * (size - width + 1)).long()
        position = torch.arange(size, device=mel.device)[None, :]
        hit = (position >= start[:, None]) & (position < (start + width)[:, None])  # B x size
        shape = [mel.shape[0], 1, 1, 1]
        shape[axis] = size
        return hit.view(shape)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        s = self.settings
        mel = self.jitter(self.resized_crop(mel))
        flip = (self._rand(mel) < s.flip_probability).view(-1, 1, 1, 1)
        mel = torch.where(flip, mel.flip(-1), mel)
        masked = self._mask(mel, 2, s.freq_mask) | self._mask(mel, 3, s.time_mask)
        fill = mel.mean(dim=(1, 2, 3), keepdim=True)  # the sample's mean: a mask should not read as silence
        return torch.where(masked, fill, mel)


def parse_augment(text: str) -> tuple[str, ...]:
    """`effects,mix,spec` / `all` / `none` → the chosen families (a bad name is a one-line ConfigError)."""
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    if text == "all":
        return AUGMENTATIONS
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"--augment {text}: unknown {', '.join(unknown)}; choose from effects, mix, spec, all")
    return names
