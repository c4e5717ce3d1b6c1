"""Give an already exported siamrec model the fast mel front end (siamrec/training/export/power_mel.py).

`siamrec export` does this for every new file; this script rewrites one exported before (the shipped
`default.onnx` was rewritten this way, keeping its name and metadata), then checks the two files' window
embeddings against each other on the export's synthetic parity windows and on the audio files given:

    python scripts/rewrite_front_end.py siamrec/assets/default.onnx -o /tmp/default.onnx \
        ~/data/siamrec-dev/audio/wesnoth/*.ogg

It refuses (exit 1, the output left unwritten) when the graph is not the expected one or the embeddings differ
by more than the export's parity tolerance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from siamrec.audio import track_windows
from siamrec.embed import TrackEncoder
from siamrec.errors import SiamrecError
from siamrec.training.export.onnx_export import PARITY_TOLERANCE, synthetic_parity_windows
from siamrec.training.export.power_mel import rewrite_power_mel


def rewrite(model_path: Path, output: Path, audio: list[Path]) -> int:
    model = onnx.load(str(model_path))
    if not rewrite_power_mel(model):
        print(f"rewrite_front_end: {model_path}: no STFT front end of the expected shape", file=sys.stderr)
        return 1
    partial = output.with_suffix(".partial.onnx")
    onnx.save(model, str(partial))
    try:
        windows = [synthetic_parity_windows()] + [track_windows(path)[0] for path in audio]
        probe = np.concatenate(windows).astype(np.float32)
        before = TrackEncoder(model_path, device="cpu").embed_windows(probe)
        after = TrackEncoder(partial, device="cpu").embed_windows(probe)
    except BaseException:
        partial.unlink()
        raise
    diff = float(np.abs(before - after).max())
    print(f"{len(probe)} windows, max |before - after| = {diff:.3g} (tolerance {PARITY_TOLERANCE:g})")
    if not diff <= PARITY_TOLERANCE:
        partial.unlink()
        print(f"rewrite_front_end: {model_path}: the rewritten embeddings differ by {diff:.3g}", file=sys.stderr)
        return 1
    partial.replace(output)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("audio", type=Path, nargs="*", help="files whose windows are compared too")
    args = parser.parse_intermixed_args()
    try:
        return rewrite(args.model, args.output, args.audio)
    except (OSError, SiamrecError, onnx.checker.ValidationError, DecodeError) as exc:
        print(f"rewrite_front_end: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
