"""Baselines: shapes, per-track independence from batch-mates, musicnn's input contract, clean refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siamrec.audio import track_windows
from siamrec.bench.baselines import (
    MFCC_FEATURES,
    MUSICNN_FRAMES,
    MUSICNN_MELS,
    MusicnnEncoder,
    mfcc_statistics,
    mfcc_vectors,
    musicnn_input,
    musicnn_vectors,
    random_vectors,
    zscore,
)
from siamrec.bench.methods import MUSICNN_ONNX
from siamrec.errors import ModelError

MUSICNN = MUSICNN_ONNX  # shipped with the package (ISC licence)


@pytest.fixture(scope="module")
def windows(library_files: dict[str, Path]) -> list[np.ndarray]:
    return [track_windows(path)[0] for _, path in sorted(library_files.items())]


def test_random_vectors_are_unit_and_reproducible() -> None:
    vectors = random_vectors(50, 16, seed=3)
    assert vectors.shape == (50, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(vectors, random_vectors(50, 16, seed=3))
    assert not np.array_equal(vectors, random_vectors(50, 16, seed=4))


def test_mfcc_statistics_do_not_depend_on_batch_mates(windows: list[np.ndarray]) -> None:
    together = mfcc_statistics(windows)
    assert together.shape == (len(windows), 2 * MFCC_FEATURES) and np.isfinite(together).all()
    alone = mfcc_statistics(windows[2:3])
    np.testing.assert_allclose(alone[0], together[2], rtol=1e-4, atol=1e-4)


def test_mfcc_vectors_are_z_scored_and_tell_timbres_apart(windows: list[np.ndarray]) -> None:
    vectors = mfcc_vectors(windows)
    varying = vectors.std(axis=0) > 0
    np.testing.assert_allclose(vectors.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(vectors.std(axis=0)[varying], 1.0, atol=1e-4)
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    assert (distances[~np.eye(len(vectors), dtype=bool)] > 0.1).all()  # seven different sounds, seven vectors


def test_zscore_keeps_constant_features_finite() -> None:
    features = np.array([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(zscore(features), [[-1.0, 0.0], [1.0, 0.0]])


def test_musicnn_input_follows_the_contract(windows: list[np.ndarray]) -> None:
    import librosa

    batch = np.concatenate(windows)[:3]
    mel = musicnn_input(batch)
    assert mel.shape == (3, MUSICNN_FRAMES, MUSICNN_MELS) and mel.dtype == np.float32
    reference = librosa.feature.melspectrogram(y=batch[1], sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    np.testing.assert_allclose(mel[1], np.log10(10000 * reference + 1)[:187], rtol=1e-4, atol=1e-5)


def test_musicnn_refuses_other_models(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        MusicnnEncoder(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx")
    with pytest.raises(ModelError, match="cannot load"):
        MusicnnEncoder(garbage)
    with pytest.raises(ModelError, match="not musicnn"):
        MusicnnEncoder(tiny_model)


def test_musicnn_vectors_average_the_windows(windows: list[np.ndarray]) -> None:
    vectors = musicnn_vectors(windows[:3], MUSICNN)
    assert vectors.shape == (3, 200) and np.isfinite(vectors).all()
    encoder = MusicnnEncoder(MUSICNN)
    np.testing.assert_allclose(vectors[1], encoder.window_embeddings(windows[1]).mean(axis=0), rtol=1e-4, atol=1e-5)


def test_the_magnatagatune_musicnn_is_its_own_baseline(windows: list[np.ndarray]) -> None:
    """`--baseline musicnn-mtt`: the same contract, its own weights (other vectors, its own cache key)."""
    from siamrec.bench.methods import MUSICNN_MTT_ONNX, audio_methods

    msd, mtt = audio_methods(("musicnn", "musicnn-mtt"), None, [], "cpu")
    assert (msd.name, mtt.name) == ("musicnn", "musicnn-mtt") and msd.key != mtt.key and mtt.standardise
    vectors = mtt.embed(windows[:2])
    np.testing.assert_allclose(vectors, musicnn_vectors(windows[:2], MUSICNN_MTT_ONNX), rtol=1e-5, atol=1e-6)
    assert vectors.shape == (2, 200) and not np.allclose(vectors, msd.embed(windows[:2]), atol=1e-2)
