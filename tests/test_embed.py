"""Inference without torch: the tiny test model through onnxruntime, batched across tracks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from siamrec.audio import track_windows
from siamrec.embed import TrackEncoder


def test_track_vectors_batch_across_tracks(tiny_model: Path, library_files: dict[str, Path]) -> None:
    encoder = TrackEncoder(tiny_model, batch_size=3)
    per_track = [track_windows(p)[0] for p in library_files.values()]
    together = encoder.track_vectors(per_track)
    one_by_one = np.concatenate([encoder.track_vectors([w]) for w in per_track])
    assert together.shape == (len(per_track), encoder.dim)
    assert np.allclose(together, one_by_one, atol=1e-5)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_inference_does_not_import_torch(tiny_model: Path, library_files: dict[str, Path]) -> None:
    code = (
        "import sys; from siamrec.embed import TrackEncoder; from siamrec.audio import track_windows; "
        "import siamrec.library, siamrec.store, siamrec.recommend, siamrec.cli; "
        f"e = TrackEncoder({str(tiny_model)!r}); "
        f"e.track_vectors([track_windows({str(library_files['noise.ogg'])!r})[0]]); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
