"""Inference without torch: the tiny test model through onnxruntime, batched across tracks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from siamrec.audio import track_windows
from siamrec.embed import TrackEncoder, session_options


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


def test_sessions_do_not_spin_and_take_the_thread_count(tiny_model: Path) -> None:
    """Spinning workers would steal the core add-track's decoding threads run on (benchmarks/embed_throughput.py)."""
    options = session_options(1)
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    encoder = TrackEncoder(tiny_model, threads=1)
    assert encoder.session.get_session_options().intra_op_num_threads == 1
