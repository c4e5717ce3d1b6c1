"""Reference embeddings a siamrec model must beat, computed from the same windows the model sees.

- `random`: one fixed random unit vector per track; its metrics are chance.
- `mfcc`: hand-crafted timbre/harmony statistics (20 MFCC, 7 spectral-contrast bands, 12 chroma bins; their
  means and standard deviations over all frames of a track's windows), z-scored over the tracks so that no
  feature dominates the cosine.
- `musicnn`: the penultimate layer of musicnn's MSD model (supervised on tags), run from an ONNX file given by
  the user (contract in the repository's baselines notes), averaged over a track's windows.

Every feature is computed per window on batches of windows, never per sample, and nothing depends on a
window's batch-mates (no top_db clamp over the batch, no tuning estimated over the batch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from siamrec import constants as C
from siamrec.errors import ModelError
from siamrec.vectors import l2_normalise

# Hand-crafted features: librosa's usual 2048-point frames (chroma needs the frequency resolution).
MFCC_N = 20
MFCC_N_FFT = 2048
MFCC_HOP = 512
MFCC_N_MELS = 128
CONTRAST_FMIN = 100.0  # 6 octave bands from 100 Hz stay under the 8 kHz Nyquist limit
CONTRAST_BANDS = 6
CHROMA_BINS = 12
MFCC_FEATURES = MFCC_N + CONTRAST_BANDS + 1 + CHROMA_BINS  # per frame; a track gets means and stds: 78
FEATURE_BATCH = 32  # windows per librosa call (~25 MB of spectrogram)

# musicnn's input contract (computed outside its graph, as the musicnn package does).
MUSICNN_FRAMES = 187
MUSICNN_MELS = 96
MUSICNN_LOG_SCALE = 10_000.0
MUSICNN_OUTPUT = "model/penultimate:0"
MUSICNN_DIM = 200
MUSICNN_BATCH = 8  # windows per run: musicnn's activations take ~75 MB per window


def _track_offsets(windows_per_track: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.array([len(w) for w in windows_per_track], dtype=np.int64)
    if (counts == 0).any():
        raise ValueError("every track needs at least one window")
    return counts, np.concatenate([[0], np.cumsum(counts)[:-1]])


def _batches(windows: np.ndarray, size: int) -> list[np.ndarray]:
    return [windows[start : start + size] for start in range(0, len(windows), size)]


def _frame_features(windows: np.ndarray) -> np.ndarray:
    """`[W, 48000]` windows → `[W, MFCC_FEATURES, frames]` per-frame MFCC, spectral contrast and chroma."""
    import librosa

    magnitude = np.abs(librosa.stft(windows, n_fft=MFCC_N_FFT, hop_length=MFCC_HOP))
    power = magnitude**2
    mel = librosa.feature.melspectrogram(S=power, sr=C.SAMPLE_RATE, n_mels=MFCC_N_MELS, fmax=C.F_MAX)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=MFCC_N)
    contrast = librosa.feature.spectral_contrast(
        S=magnitude, sr=C.SAMPLE_RATE, n_fft=MFCC_N_FFT, fmin=CONTRAST_FMIN, n_bands=CONTRAST_BANDS
    )
    chroma = librosa.feature.chroma_stft(S=power, sr=C.SAMPLE_RATE, n_fft=MFCC_N_FFT, tuning=0.0, n_chroma=CHROMA_BINS)
    return np.concatenate([mfcc, contrast, chroma], axis=-2).astype(np.float64)


def mfcc_statistics(windows_per_track: list[np.ndarray]) -> np.ndarray:
    """Raw per-track feature means and stds `[T, 2 * MFCC_FEATURES]` over all frames of the track's windows.

    Not z-scored: the statistics of one track do not depend on the others, so they can be cached per track.
    """
    counts, offsets = _track_offsets(windows_per_track)
    windows = np.concatenate(windows_per_track).astype(np.float32)
    sums, squares, frames = [], [], 0
    for batch in _batches(windows, FEATURE_BATCH):
        features = _frame_features(batch)  # W x F x frames
        sums.append(features.sum(axis=-1))
        squares.append((features**2).sum(axis=-1))
        frames = features.shape[-1]
    per_track_frames = (counts * frames)[:, None]
    mean = np.add.reduceat(np.concatenate(sums), offsets, axis=0) / per_track_frames
    mean_square = np.add.reduceat(np.concatenate(squares), offsets, axis=0) / per_track_frames
    std = np.sqrt(np.maximum(mean_square - mean**2, 0.0))
    return np.concatenate([mean, std], axis=1).astype(np.float32)


def zscore(features: np.ndarray) -> np.ndarray:
    """Standardise each feature over the tracks (constant features become 0)."""
    features = np.asarray(features, dtype=np.float64)
    spread = features.std(axis=0)
    return ((features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)).astype(np.float32)


def mfcc_vectors(windows_per_track: list[np.ndarray]) -> np.ndarray:
    """MFCC, spectral-contrast and chroma statistics per track, z-scored over these tracks `[T, 78]`."""
    return zscore(mfcc_statistics(windows_per_track))


def musicnn_input(windows: np.ndarray) -> np.ndarray:
    """`[W, 48000]` windows → musicnn's `[W, 187, 96]` log-mel input, exactly as the musicnn package computes it."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(windows, dtype=np.float32),
        sr=C.SAMPLE_RATE,
        hop_length=C.HOP_LENGTH,
        n_fft=C.N_FFT,
        n_mels=MUSICNN_MELS,
    )  # W x 96 x frames
    log_mel = np.log10(MUSICNN_LOG_SCALE * np.swapaxes(mel, 1, 2) + 1.0)
    return np.ascontiguousarray(log_mel[:, :MUSICNN_FRAMES], dtype=np.float32)


class MusicnnEncoder:
    """An onnxruntime session on musicnn_msd.onnx, checked against the input contract."""

    def __init__(self, onnx_path: str | Path, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise ModelError(f"musicnn model {path} not found")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # its is_training initializer-as-input warning is harmless
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ModelError(f"cannot load musicnn model {path}: {str(exc).splitlines()[0]}") from exc
        inputs = self.session.get_inputs()
        outputs = {o.name for o in self.session.get_outputs()}
        if (
            len(inputs) != 1
            or list(inputs[0].shape[1:]) != [MUSICNN_FRAMES, MUSICNN_MELS]
            or (MUSICNN_OUTPUT not in outputs)
        ):
            raise ModelError(f"{path} is not musicnn's MSD model (input [batch, 187, 96], output {MUSICNN_OUTPUT})")
        self.input_name = inputs[0].name

    def window_embeddings(self, windows: np.ndarray) -> np.ndarray:
        """`[W, 48000]` → `[W, 200]` penultimate-layer embeddings, in batches."""
        outputs = [
            self.session.run([MUSICNN_OUTPUT], {self.input_name: musicnn_input(batch)})[0]
            for batch in _batches(windows, MUSICNN_BATCH)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0, MUSICNN_DIM), np.float32)

    def track_vectors(self, windows_per_track: list[np.ndarray]) -> np.ndarray:
        """Mean window embedding per track `[T, 200]` (not normalised: bench z-scores over the tracks)."""
        counts, offsets = _track_offsets(windows_per_track)
        embeddings = self.window_embeddings(np.concatenate(windows_per_track)).astype(np.float64)
        return (np.add.reduceat(embeddings, offsets, axis=0) / counts[:, None]).astype(np.float32)


def musicnn_vectors(windows_per_track: list[np.ndarray], onnx_path: str | Path) -> np.ndarray:
    """musicnn's penultimate embedding averaged over each track's windows `[T, 200]`."""
    return MusicnnEncoder(onnx_path).track_vectors(windows_per_track)


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n random unit vectors `[n, dim]`: the chance baseline, reproducible by seed."""
    vectors = np.random.default_rng(seed).standard_normal((n, dim))
    return l2_normalise(vectors)
