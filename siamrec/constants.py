"""The preprocessing contract every part of siamrec shares (audio, windows, mel front end, store).

Derived values are computed from the base ones, so changing a base value cannot leave a stale twin.
"""

from __future__ import annotations

# Audio: everything is decoded to mono float32 at this rate.
SAMPLE_RATE = 16_000
WINDOW_SECONDS = 3.0
WINDOW_SAMPLES = int(SAMPLE_RATE * WINDOW_SECONDS)  # 48000

# A track vector is the L2-normalised mean of up to this many windows spread evenly over the track.
WINDOWS_PER_TRACK = 8
# Shorter audio is refused; audio between this and one window is tiled up to a full window.
MIN_TRACK_SECONDS = 1.0
MIN_TRACK_SAMPLES = int(SAMPLE_RATE * MIN_TRACK_SECONDS)
# Peak amplitude under this (about -80 dBFS) counts as digital silence.
SILENCE_PEAK = 1e-4

# Log-mel front end (the musicnn settings).
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
F_MIN = 0.0
F_MAX = 8_000.0
MEL_FRAMES = WINDOW_SAMPLES // HOP_LENGTH + 1  # 188 with a centred STFT
# log10(1 + LOG_MEL_SCALE * mel): batch-independent (unlike AmplitudeToDB's top_db clamp).
LOG_MEL_SCALE = 10_000.0

# ONNX model contract: input name, output name and the metadata keys every siamrec model carries.
ONNX_INPUT = "waveform"
ONNX_OUTPUT = "embedding"
ONNX_OPSET = 18
META_NAME = "siamrec.name"
META_VERSION = "siamrec.version"
META_DIM = "siamrec.dim"
META_SAMPLE_RATE = "siamrec.sample_rate"
META_WINDOW = "siamrec.window_samples"
META_TRAINED_ON = "siamrec.trained_on"
META_BACKBONE = "siamrec.backbone"
# Optional: how window embeddings pool into the track vector (`mean` when absent; see siamrec.vectors), and for
# `mean+std` the graph's output size and the training tracks' spread statistics (JSON lists of floats).
META_POOLING = "siamrec.pooling"
META_WINDOW_DIM = "siamrec.window_dim"
META_SPREAD_MEAN = "siamrec.spread_mean"
META_SPREAD_SCALE = "siamrec.spread_scale"
# Optional for `mean+std`: the spread block's weight beside the unit mean (1 when absent), chosen at export.
META_SPREAD_WEIGHT = "siamrec.spread_weight"
# Optional: a linear map from the pooled vector to the track vector, fitted on the training playlists
# (siamrec.projection; JSON with base64 float32 arrays). With it, `siamrec.dim` is the map's output size.
META_PROJECTION = "siamrec.projection"

# Qdrant schema.
# How queries rank: plain model vectors, the playlist-adapted ones (`siamrec adapt`), or adapted when stored.
METRICS = ("auto", "plain", "adapted")
TRACKS_COLLECTION = "tracks"
PLAYLISTS_COLLECTION = "playlists"
# How a playlist queries: cosine to its centroid (the paper), or its best-matching track (Qdrant best_score).
STRATEGIES = ("mean", "best-score")
