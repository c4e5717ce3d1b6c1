"""Rewrite an exported model's STFT front end as two half-size DFT products (the same mel power, nearly twice as fast).

torch exports `MelSpectrogram` as ONNX `STFT` → |·| → ² → `MatMul` by the mel filters. onnxruntime's CPU `STFT`
kernel is about half of the whole network's time (a 128-window batch, one thread, profiled), where a product by a
DFT basis runs at the speed of its matrix kernels. With hop = n_fft / 2 each frame is two consecutive blocks of
`hop` samples, so frames are a reshape and a concatenation, not a gather. Splitting each frame into its even and
odd samples halves the product: with E the DFT of the even samples and T that of the odd ones (the twiddle factors
folded into T's basis), bin k is E + T and bin n_fft/2 − k is conj(E − T) (the FFT's butterfly), so one product
by the stacked mel filters gives the mel power from |E + T|² and |E − T|² (each formed as a sum before squaring:
expanding them as |E|² + |T|² ± 2·Re(E·conj T) cancels catastrophically in the quiet high bins). The rewritten
graph gives the same embedding to float rounding; `export_encoder`'s parity check against torch still decides.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper

PREFIX = "power_mel/"


def _int_attr(node: onnx.NodeProto, name: str) -> int | None:
    found = [a for a in node.attribute if a.name == name]
    return helper.get_attribute_value(found[0]) if found else None


def _ints_attr(node: onnx.NodeProto, name: str) -> list[int] | None:
    found = [a for a in node.attribute if a.name == name]
    return list(helper.get_attribute_value(found[0])) if found else None


class _Graph:
    """Who makes and who reads each value, and the constant tensors, for pattern matching."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}

    def only_consumer(self, value: str, op_type: str) -> onnx.NodeProto | None:
        readers = self.consumers.get(value, [])
        outputs = {out.name for out in self.graph.output}
        if len(readers) != 1 or readers[0].op_type != op_type or value in outputs:
            return None
        return readers[0]

    def length(self, value: str) -> int | None:
        """The static last dimension of a 2-d value, from the graph's shape annotations."""
        for info in self.graph.value_info:
            if info.name == value:
                dims = info.type.tensor_type.shape.dim
                return dims[-1].dim_value if len(dims) == 2 and dims[-1].dim_value > 0 else None
        return None


def _last_axis(g: _Graph, node: onnx.NodeProto) -> bool:
    """Whether `node`'s axes input is the constant [-1] (the trailing axis, as torch's export writes it)."""
    axes = g.constants.get(node.input[1]) if len(node.input) > 1 else None
    return axes is not None and axes.tolist() == [-1]


def _stft_chain(g: _Graph) -> tuple[list[onnx.NodeProto], str, str] | None:
    """The nodes signal → mel power as torch exports them, the signal's name and the mel power's name."""
    if any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for node in g.graph.node
           for attr in node.attribute):  # fmt: skip
        return None  # a subgraph may read the constants this would remove: not a graph torch made for siamrec
    stfts = [node for node in g.graph.node if node.op_type == "STFT"]
    if len(stfts) != 1 or _int_attr(stfts[0], "onesided") != 1 or len(stfts[0].input) != 4:
        return None
    stft = stfts[0]
    unsqueeze = g.producer.get(stft.input[0])
    if unsqueeze is None or unsqueeze.op_type != "Unsqueeze" or g.only_consumer(stft.input[0], "STFT") is None:
        return None
    if not _last_axis(g, unsqueeze):  # [B, L] → [B, L, 1]: a real signal
        return None
    chain = [unsqueeze, stft]
    value = stft.output[0]
    for op_type, check in (
        ("Transpose", lambda n: _ints_attr(n, "perm") == [0, 2, 1, 3]),
        ("ReduceL2", lambda n: _int_attr(n, "keepdims") == 0 and _last_axis(g, n)),  # |real, imaginary|
        ("Pow", lambda n: float(np.asarray(g.constants.get(n.input[1], np.nan))) == 2.0),
        ("Transpose", lambda n: _ints_attr(n, "perm") == [0, 2, 1]),
        ("MatMul", lambda n: n.input[1] in g.constants),
    ):
        node = g.only_consumer(value, op_type)
        if node is None or not check(node):
            return None
        chain.append(node)
        value = node.output[0]
    return chain, unsqueeze.input[0], value


def _basis(positions: np.ndarray, window: np.ndarray, n_fft: int, bins: int) -> np.ndarray:
    """[len(positions), 2·bins]: real then imaginary parts of the windowed DFT at those sample positions."""
    angle = 2 * np.pi * positions[:, None] * np.arange(bins)[None, :] / n_fft
    return np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], axis=1)


def _stacked_filters(filters: np.ndarray, n_fft: int) -> np.ndarray:
    """The mel filters of bins k (from E + T) then of bins n_fft/2 − k (from E − T), k ≤ n_fft/4, each twice
    (real and imaginary parts' squares)."""
    bins = n_fft // 4 + 1
    plus = filters[:bins]
    minus = np.zeros_like(plus)
    minus[: bins - 1] = filters[n_fft // 2 - np.arange(bins - 1)]  # bin n_fft/4 is its own mirror: counted once
    return np.concatenate([plus, plus, minus, minus]).astype(np.float32)


def rewrite_power_mel(model: onnx.ModelProto) -> bool:
    """Replace the STFT front end in place; False (model untouched) where the graph is not the one expected."""
    g = _Graph(model.graph)
    found = _stft_chain(g)
    if found is None:
        return False
    chain, signal, mel = found
    stft, matmul = chain[1], chain[-1]
    hop, window, n_fft = (g.constants.get(name) for name in stft.input[1:])
    filters = g.constants[matmul.input[1]]
    length = g.length(signal)
    if hop is None or window is None or n_fft is None or length is None:
        return False
    hop, n_fft = int(hop), int(n_fft)
    if n_fft % 4 or hop * 2 != n_fft or window.shape != (n_fft,) or filters.shape[0] != n_fft // 2 + 1:
        return False
    frames = (length - n_fft) // hop + 1
    window = window.astype(np.float64)
    half = np.arange(n_fft // 2)
    bins = n_fft // 4 + 1
    constants = {
        "starts": np.array([0], np.int64),
        "ends": np.array([(frames + 1) * hop], np.int64),
        "axis1": np.array([1], np.int64),
        "pairs": np.array([0, frames + 1, hop // 2, 2], np.int64),
        "split": np.array([1, 1], np.int64),
        "last": np.array([-1], np.int64),
        "zero": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "frames": np.array([frames], np.int64),
        "blocks": np.array([frames + 1], np.int64),
        "even": _basis(2 * half, window[0::2], n_fft, bins).astype(np.float32),
        "odd": _basis(2 * half + 1, window[1::2], n_fft, bins).astype(np.float32),
        "filters": _stacked_filters(filters, n_fft),
    }

    def n(op: str, inputs: list[str], outputs: list[str], **attrs: int) -> onnx.NodeProto:
        names = [PREFIX + x if x in constants or x.startswith("_") else x for x in inputs]
        outs = [PREFIX + x if x.startswith("_") else x for x in outputs]
        return helper.make_node(op, names, outs, name=PREFIX + outs[0].removeprefix(PREFIX), **attrs)

    nodes = [
        n("Slice", [signal, "starts", "ends", "axis1"], ["_blocks"]),  # [B, frames + 1 blocks of hop samples]
        n("Reshape", ["_blocks", "pairs"], ["_pairs"]),  # [B, blocks, hop/2, 2]: (even, odd) sample pairs
        n("Split", ["_pairs", "split"], ["_even4", "_odd4"], axis=3),
    ]
    for part in ("even", "odd"):
        nodes += [
            n("Squeeze", [f"_{part}4", "last"], [f"_{part}3"]),
            n("Slice", [f"_{part}3", "zero", "frames", "one"], [f"_{part}_first"]),
            n("Slice", [f"_{part}3", "one", "blocks", "one"], [f"_{part}_second"]),
            n("Concat", [f"_{part}_first", f"_{part}_second"], [f"_{part}_frames"], axis=2),  # frame = 2 blocks
            n("MatMul", [f"_{part}_frames", part], [f"_{part}_dft"]),
        ]
    nodes += [
        n("Add", ["_even_dft", "_odd_dft"], ["_low"]),  # bins 0 .. n_fft/4
        n("Sub", ["_even_dft", "_odd_dft"], ["_high"]),  # bins n_fft/2 .. n_fft/4 (conjugated)
        n("Concat", ["_low", "_high"], ["_spectrum"], axis=2),
        n("Mul", ["_spectrum", "_spectrum"], ["_features"]),
        n("MatMul", ["_features", "filters"], [mel]),
    ]
    _splice(model.graph, chain, nodes, mel)
    model.graph.initializer.extend(numpy_helper.from_array(value, PREFIX + key) for key, value in constants.items())
    return True


def _splice(graph: onnx.GraphProto, chain: list[onnx.NodeProto], nodes: list[onnx.NodeProto], mel: str) -> None:
    """Put `nodes` where `chain` began (its nodes removed), then drop the constants and shapes nothing reads now."""
    gone = {out for node in chain for out in node.output}
    old = [onnx.NodeProto.FromString(node.SerializeToString()) for node in graph.node]
    start = next(i for i, node in enumerate(old) if set(node.output) & gone)  # the chain's first node
    kept = [node for node in old if not set(node.output) & gone]
    graph.ClearField("node")
    graph.node.extend(kept[:start] + nodes + kept[start:])
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    for init in [init for init in graph.initializer if init.name not in used]:
        graph.initializer.remove(init)
    for info in [info for info in graph.value_info if info.name in gone - {mel}]:
        graph.value_info.remove(info)
