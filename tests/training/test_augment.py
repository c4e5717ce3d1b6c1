"""Every augmentation keeps length, dtype and finiteness, changes the signal, and does what its name says."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from siamrec import constants as C
from siamrec.errors import ConfigError
from siamrec.testing import chord, drums, noise
from siamrec.training.augment import (
    EFFECTS,
    EffectSettings,
    MixSettings,
    SpecAugment,
    SpecSettings,
    WaveformAugment,
    apply_effects,
    parse_augment,
    random_effects,
    random_mix,
)
from siamrec.training.features import LogMel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """3 s of a bright chord over a drum loop with a little noise: energy across the whole spectrum."""
    seconds = C.WINDOW_SECONDS
    return (chord(seconds, 220.0, bright=True) + drums(seconds) + noise(seconds, level=0.02)).astype(np.float32)


def _band_energy(signal: np.ndarray, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal)) ** 2
    freqs = np.fft.rfftfreq(signal.size, 1 / C.SAMPLE_RATE)
    return float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].sum())


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(signal.astype(np.float64) ** 2)))


@pytest.mark.parametrize("name", EFFECTS)
def test_each_effect_keeps_shape_and_changes_the_signal(music: np.ndarray, name: str) -> None:
    out = apply_effects(music, [name], np.random.default_rng(0), EffectSettings())
    assert out.shape == music.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert np.abs(out - music).mean() > 1e-3


def test_reverse_reverses(music: np.ndarray) -> None:
    out = apply_effects(music, ["reverse"], np.random.default_rng(0), EffectSettings())
    np.testing.assert_array_equal(out, music[::-1])


def test_lowpass_removes_high_frequencies(music: np.ndarray) -> None:
    settings = EffectSettings(lowpass_cutoff_hz=(1000.0, 1000.0))
    out = apply_effects(music, ["lowpass"], np.random.default_rng(0), settings)
    assert _band_energy(out, 4000, 8000) < 0.05 * _band_energy(music, 4000, 8000)
    assert _band_energy(out, 50, 500) > 0.5 * _band_energy(music, 50, 500)


def test_gain_scales_the_level(music: np.ndarray) -> None:
    out = apply_effects(music, ["gain"], np.random.default_rng(0), EffectSettings(gain_db=(-6.0, -6.0)))
    assert _rms(out) / _rms(music) == pytest.approx(10 ** (-6 / 20), rel=1e-3)


def test_compressor_reduces_dynamic_range() -> None:
    loud_then_quiet = np.concatenate([chord(1.5) * 3.0, chord(1.5) * 0.3]).astype(np.float32)
    settings = EffectSettings(compressor_threshold_db=(-30.0, -30.0), compressor_ratio=(8.0, 8.0))
    out = apply_effects(loud_then_quiet, ["compressor"], np.random.default_rng(0), settings)
    half = loud_then_quiet.size // 2
    before = _rms(loud_then_quiet[:half]) / _rms(loud_then_quiet[half:])
    after = _rms(out[:half]) / _rms(out[half:])
    assert after < 0.6 * before


def test_distortion_adds_harmonics() -> None:
    t = np.arange(C.WINDOW_SAMPLES) / C.SAMPLE_RATE
    sine = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = apply_effects(sine, ["distortion"], np.random.default_rng(0), EffectSettings())
    assert _band_energy(out, 1300, 1340) > 100 * _band_energy(sine, 1300, 1340)  # 3rd harmonic


def test_reverb_fills_the_silence_after_a_sound() -> None:
    burst = np.zeros(C.WINDOW_SAMPLES, dtype=np.float32)
    burst[:1600] = noise(0.1, level=0.5)
    settings = EffectSettings(reverb_room_size=(0.9, 0.9), reverb_wet_level=(0.5, 0.5))
    out = apply_effects(burst, ["reverb"], np.random.default_rng(0), settings)
    assert _rms(out[4000:8000]) > 1e-3 > _rms(burst[4000:8000])


def test_random_effects_differ_per_view(music: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    views = [random_effects(music, rng, EffectSettings(probability=0.8)) for _ in range(2)]
    assert not np.allclose(views[0], views[1])


def test_random_mix_without_fades_is_a_permutation_of_chunks(music: np.ndarray) -> None:
    out = random_mix(music, np.random.default_rng(0), MixSettings(chunks=(4, 4), crossfade_ms=0.0))
    chunks, mixed = music.reshape(4, -1), out.reshape(4, -1)
    order = [next(i for i in range(4) if np.array_equal(chunk, chunks[i])) for chunk in mixed]
    assert sorted(order) == [0, 1, 2, 3] and order != [0, 1, 2, 3]


def test_random_mix_keeps_shape_and_crossfades_the_joins(music: np.ndarray) -> None:
    out = random_mix(music, np.random.default_rng(0), MixSettings(chunks=(3, 3), crossfade_ms=10.0))
    assert out.shape == music.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert not np.allclose(out, music)
    t = np.arange(C.WINDOW_SAMPLES) / C.SAMPLE_RATE
    sine = np.sin(2 * np.pi * 50 * t).astype(np.float32)  # smooth: any hard cut would be a big jump
    mixed = random_mix(sine, np.random.default_rng(3), MixSettings(chunks=(6, 6), crossfade_ms=20.0))
    assert np.abs(np.diff(mixed)).max() < 3 * np.abs(np.diff(sine)).max()


def test_waveform_augment_pickles_for_dataloader_workers(music: np.ndarray) -> None:
    augment = pickle.loads(pickle.dumps(WaveformAugment(EffectSettings(), MixSettings())))
    out = augment(music, np.random.default_rng(0))
    assert out.shape == music.shape and out.dtype == np.float32


@pytest.fixture(scope="module")
def mel(music: np.ndarray) -> torch.Tensor:
    return LogMel()(torch.from_numpy(np.stack([music, music[::-1].copy(), music * 0.5, music])))


OFF = {"mask_probability": 0.0, "crop_probability": 0.0, "jitter_probability": 0.0, "flip_probability": 0.0}


def test_spec_augment_keeps_shape_and_changes_each_sample(mel: torch.Tensor) -> None:
    torch.manual_seed(0)
    out = SpecAugment(SpecSettings(**{**OFF, "crop_probability": 1.0, "jitter_probability": 1.0}))(mel)
    assert out.shape == mel.shape and out.dtype == mel.dtype and torch.isfinite(out).all()
    assert ((out - mel).abs().mean(dim=(1, 2, 3)) > 1e-3).all()


def test_time_flip_flips_time(mel: torch.Tensor) -> None:
    out = SpecAugment(SpecSettings(**{**OFF, "flip_probability": 1.0}))(mel)
    torch.testing.assert_close(out, mel.flip(-1))


def test_masks_fill_bands_with_the_sample_mean(mel: torch.Tensor) -> None:
    torch.manual_seed(0)
    out = SpecAugment(SpecSettings(**{**OFF, "mask_probability": 1.0}, time_mask=0.5, freq_mask=0.5))(mel)
    changed = (out != mel).float().mean()
    assert 0.0 < changed < 0.9
    fill = mel.mean(dim=(1, 2, 3), keepdim=True).expand_as(mel)
    torch.testing.assert_close(out[out != mel], fill[out != mel])


def test_resized_crop_stretches_time_only() -> None:
    """Bands × a time ramp: a time-only crop changes every frame's level but no frame's band profile."""
    torch.manual_seed(0)
    profile = torch.linspace(1.0, 2.0, C.N_MELS)[:, None]
    ramp = torch.linspace(1.0, 3.0, C.MEL_FRAMES)[None, :]
    mel = (profile * ramp).expand(3, 1, -1, -1).contiguous()
    out = SpecAugment(SpecSettings(**{**OFF, "crop_probability": 1.0}, crop_scale=(0.5, 0.5)))(mel)
    assert ((out - mel).abs().amax(dim=(1, 2, 3)) > 0.1).all()
    torch.testing.assert_close(out / out[:, :, :1, :], mel / mel[:, :, :1, :])


def test_brightness_and_contrast_shift_the_level(mel: torch.Tensor) -> None:
    torch.manual_seed(0)
    out = SpecAugment(SpecSettings(**{**OFF, "jitter_probability": 1.0}, brightness=1.0, contrast=0.0))(mel)
    shift = (out - mel).flatten(1)
    assert (shift.std(dim=1) < 0.05).all()  # one offset per sample (up to the clamp at 0)
    assert shift.mean(dim=1).abs().max() > 0.05


@pytest.mark.parametrize(
    "make",
    [
        lambda: EffectSettings(compressor_ratio=(1.0, 4.0)),  # ratio 1 compresses nothing
        lambda: EffectSettings(lowpass_cutoff_hz=(100.0, 9000.0)),  # above Nyquist
        lambda: EffectSettings(phaser_depth=(-10.0, 9.0)),  # the reference code's range
        lambda: EffectSettings(gain_db=(6.0, -6.0)),  # reversed
        lambda: EffectSettings(probability=1.5),
        lambda: MixSettings(chunks=(1, 4)),
        lambda: MixSettings(crossfade_ms=-1.0),
        lambda: SpecSettings(time_mask=1.5),
        lambda: SpecSettings(crop_scale=(0.0, 1.0)),
        lambda: parse_augment("effects,hue"),
    ],
)
def test_bad_parameters_raise(make) -> None:  # noqa: ANN001 (a lambda)
    with pytest.raises(ConfigError):
        make()


def test_parse_augment() -> None:
    assert parse_augment("all") == ("effects", "mix", "spec")
    assert parse_augment("spec, effects") == ("spec", "effects")
    assert parse_augment("none") == ()
