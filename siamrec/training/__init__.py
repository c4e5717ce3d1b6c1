"""The training stack (the `train` extra: torch, torchaudio, pedalboard, onnx): SimSiam on audio crops, the
networks, augmentation, distillation and the ONNX export. Nothing outside this folder imports torch; only the
`train` and `export` commands load it.
"""
