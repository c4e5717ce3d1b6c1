"""Convert a model of the `musicnn` package (Pons & Serra, ISC licence; its weights ship inside the PyPI wheel) to
ONNX with the contract of siamrec's musicnn baseline: input `model/mel:0` `[batch, 187, 96]` (log-mel, as
siamrec.bench.baselines computes it), outputs `model/penultimate:0` `[batch, 200]` and `model/tags:0`.

TensorFlow is needed only here, never by siamrec, so it lives in its own environment:

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras~=2.21.0 tf2onnx onnxruntime && \
        /tmp/tfenv/bin/pip install --no-deps musicnn==0.1.0
    TF_USE_LEGACY_KERAS=1 /tmp/tfenv/bin/python scripts/convert_musicnn.py MTT_musicnn \
        siamrec/assets/baselines/musicnn_mtt.onnx

The script checks the ONNX outputs against TensorFlow's on random input and prints the largest difference
(MSD_musicnn converted this way matches the shipped musicnn_msd.onnx to 1.3e-6; MTT_musicnn to 3.4e-6).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from musicnn import configuration, models

FRAMES = 187  # 3 s at 16 kHz, hop 256: musicnn's training input
OUTPUTS = ["model/penultimate:0", "model/tags:0"]


def convert(name: str, out: str) -> float:
    """Write `name`'s ONNX to `out`; the largest difference between ONNX and TensorFlow outputs."""
    tf.compat.v1.disable_eager_execution()
    labels = configuration.MTT_LABELS if "MTT" in name else configuration.MSD_LABELS
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        mel = tf.compat.v1.placeholder(tf.float32, [None, FRAMES, configuration.N_MELS], name="mel")
        logits, *_, penultimate = models.define_model(mel, tf.constant(False), name, len(labels))
        tf.identity(penultimate, name="penultimate")
        tf.nn.sigmoid(logits, name="tags")
    session = tf.compat.v1.Session()
    tf.compat.v1.train.Saver().restore(session, os.path.join(os.path.dirname(models.__file__), name) + "/")
    batch = np.random.default_rng(0).random((4, FRAMES, configuration.N_MELS)).astype(np.float32)
    expected = session.run(OUTPUTS, {mel: batch})
    frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
        session, session.graph.as_graph_def(), [name.split(":")[0] for name in OUTPUTS]
    )
    tf2onnx.convert.from_graph_def(frozen, input_names=["model/mel:0"], output_names=OUTPUTS, opset=13, output_path=out)
    got = ort.InferenceSession(out).run(OUTPUTS, {"model/mel:0": batch})
    return max(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: convert_musicnn.py MODEL_NAME OUT.onnx   (MODEL_NAME: MTT_musicnn, MSD_musicnn)")
    print(f"largest difference to TensorFlow: {convert(sys.argv[1], sys.argv[2]):.2e}")
