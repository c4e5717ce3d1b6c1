"""Broken ONNX models through `siamrec add-track`: one line each, and no store ever bound to them.

The models are built here with onnx's helper API: each passes or nearly passes the metadata check and
breaks at some later point (input type or length, a fixed batch, an output that does not match the
metadata, NaN output, nonsense metadata values).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from siamrec import constants as C
from siamrec.testing import chord, drums, write_audio
from tests.cli import assert_one_error_line, run_siamrec
from tests.stores import dump_store

DIM = 16


def build_model(
    path: Path,
    *,
    input_type: int = TensorProto.FLOAT,
    input_shape: tuple[str | int, int | str] = ("batch", C.WINDOW_SAMPLES),
    reshape_to: tuple[int, int, int] = (-1, DIM, C.WINDOW_SAMPLES // DIM),
    output_shape: tuple[str | int, str | int] = ("batch", DIM),
    nan_output: bool = False,
    hide_output_size: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """waveform → Reshape → mean over the last axis (→ [batch, DIM]), with one thing broken on request."""
    x = helper.make_tensor_value_info(C.ONNX_INPUT, input_type, list(input_shape))
    y = helper.make_tensor_value_info(C.ONNX_OUTPUT, TensorProto.FLOAT, list(output_shape))
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], list(reshape_to))
    constants = [shape, helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])]
    nodes = [
        helper.make_node("Reshape", [C.ONNX_INPUT, "shape"], ["r"]),
        helper.make_node("ReduceMean", ["r"], ["m"], axes=[2], keepdims=0),
        helper.make_node("Cast", ["m"], ["f"], to=TensorProto.FLOAT),
    ]
    if hide_output_size:  # reshape to [-1, k] with k computed from the data: no static shape to check
        width = reshape_to[1]
        nodes += [
            helper.make_node("ReduceMax", ["f"], ["peak"], keepdims=0),
            helper.make_node("Mul", ["peak", "zero"], ["nothing"]),
            helper.make_node("Cast", ["nothing"], ["nothing_int"], to=TensorProto.INT64),
            helper.make_node("Add", ["nothing_int", "width"], ["k"]),
            helper.make_node("Concat", ["minus_one", "k_1d"], ["out_shape"], axis=0),
            helper.make_node("Unsqueeze", ["k", "axis0"], ["k_1d"]),
            helper.make_node("Reshape", ["f", "out_shape"], ["f_hidden"]),
        ]
        nodes = nodes[:-3] + [nodes[-2], nodes[-3], nodes[-1]]  # Unsqueeze before Concat (topological order)
        constants += [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("width", TensorProto.INT64, [], [width]),
            helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
        ]
        nodes.append(helper.make_node("Identity", ["f_hidden"], [C.ONNX_OUTPUT]))
    elif nan_output:  # sqrt(-|x| - 1) is NaN for every input
        nodes += [
            helper.make_node("Abs", ["f"], ["a"]),
            helper.make_node("Neg", ["a"], ["n"]),
            helper.make_node("Sub", ["n", "one"], ["s"]),
            helper.make_node("Sqrt", ["s"], [C.ONNX_OUTPUT]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["f"], [C.ONNX_OUTPUT]))
    graph = helper.make_graph(nodes, "broken", [x], [y], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        C.META_NAME: "broken",
        C.META_DIM: str(DIM),
        C.META_SAMPLE_RATE: str(C.SAMPLE_RATE),
        C.META_WINDOW: str(C.WINDOW_SAMPLES),
        **(metadata or {}),
    }
    helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


BROKEN: dict[str, tuple[dict[str, object], str]] = {
    "wrong-input-length": ({"input_shape": ("batch", 24_000)}, "takes input of shape"),
    "wrong-input-type": ({"input_type": TensorProto.DOUBLE}, "takes tensor(double) input"),
    "fixed-batch": ({"input_shape": (1, C.WINDOW_SAMPLES)}, "fixed batch of 1"),
    "hidden-fixed-batch": ({"reshape_to": (1, DIM, C.WINDOW_SAMPLES // DIM)}, "fails on a test window"),
    "declared-output-size": ({"output_shape": ("batch", 8), "reshape_to": (-1, 8, 6000)}, "outputs shape"),
    "actual-output-size": (
        {"output_shape": ("batch", "d"), "reshape_to": (-1, 8, 6000), "hide_output_size": True},
        "returns float32 [2, 8]",
    ),
    "nan-output": ({"nan_output": True}, "returns NaN or infinite values"),
    "dim-minus-one": ({"metadata": {C.META_DIM: "-1"}}, "siamrec.dim='-1' is not a positive whole number"),
    "dim-not-a-number": ({"metadata": {C.META_DIM: "sixteen"}}, "siamrec.dim='sixteen'"),
    "sample-rate-zero": ({"metadata": {C.META_SAMPLE_RATE: "0"}}, "siamrec.sample_rate='0'"),
    "window-huge": ({"metadata": {C.META_WINDOW: "480000"}}, "expects 480000 samples"),
    "empty-name": ({"metadata": {C.META_NAME: " "}}, "is not a usable name"),
}


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    return write_audio(tmp_path / "good.wav", chord(4.0, 220.0))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_model_on_a_fresh_home_binds_nothing(
    case: str,
    home: Path,
    tmp_path: Path,
    good_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Path,
) -> None:
    kwargs, fragment = BROKEN[case]
    monkeypatch.setenv("SIAMREC_MODEL", str(build_model(tmp_path / f"{case}.onnx", **kwargs)))  # type: ignore[arg-type]
    assert_one_error_line(run_siamrec("add-track", str(good_file)), fragment, alone=True)
    assert dump_store() == {}  # no collection was created for the broken model
    if case == "nan-output":  # the case: the good model is still welcome afterwards
        monkeypatch.setenv("SIAMREC_MODEL", str(tiny_model))
        assert run_siamrec("add-track", str(good_file)).returncode == 0
        assert len(dump_store()["tracks"]) == 1


def test_broken_model_leaves_a_filled_store_alone(
    home: Path,
    tmp_path: Path,
    good_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run_siamrec("add-track", str(good_file)).returncode == 0
    before = dump_store()
    kwargs, fragment = BROKEN["nan-output"]
    monkeypatch.setenv("SIAMREC_MODEL", str(build_model(tmp_path / "nan.onnx", **kwargs)))  # type: ignore[arg-type]
    other = write_audio(tmp_path / "other.wav", drums(4.0))
    assert_one_error_line(run_siamrec("add-track", str(other)), fragment, alone=True)
    assert dump_store() == before


def test_the_model_is_checked_before_the_store_is_opened_for_writing(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A folder of files with a broken model: the model fails first, nothing is decoded or stored."""
    folder = tmp_path / "music"
    for i in range(3):
        write_audio(folder / f"{i}.wav", chord(3.0, 200.0 + 50 * i))
    monkeypatch.setenv("SIAMREC_MODEL", str(build_model(tmp_path / "fixed.onnx", input_shape=(1, C.WINDOW_SAMPLES))))
    assert_one_error_line(run_siamrec("add-track", str(folder)), "fixed batch of 1", alone=True)
    assert dump_store() == {}


def test_a_working_built_model_is_accepted(
    home: Path,
    tmp_path: Path,
    good_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The builder itself makes usable models: the failures above come from what each case breaks."""
    monkeypatch.setenv("SIAMREC_MODEL", str(build_model(tmp_path / "fine.onnx")))
    result = run_siamrec("add-track", str(good_file))
    assert result.returncode == 0, result.stderr
    ((vectors, _),) = dump_store()["tracks"].values()
    assert np.isclose(np.linalg.norm(vectors["broken"]), 1.0, atol=1e-4)


def test_a_re_add_of_unchanged_files_never_runs_the_model(
    home: Path, tmp_path: Path, good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's test run waits until a file needs embedding: a NaN model under the stored model's name and
    size re-adds an unchanged file (so it never ran), then fails on a new file with the store untouched."""
    assert run_siamrec("add-track", str(good_file)).returncode == 0  # the tiny model: 64-d
    before = dump_store()
    impostor = build_model(
        tmp_path / "impostor.onnx",
        reshape_to=(-1, 64, C.WINDOW_SAMPLES // 64),
        output_shape=("batch", 64),
        nan_output=True,
        metadata={C.META_NAME: "tiny", C.META_DIM: "64"},
    )
    monkeypatch.setenv("SIAMREC_MODEL", str(impostor))
    again = run_siamrec("add-track", "--json", str(good_file))
    assert again.returncode == 0 and '"unchanged": 1' in again.stdout
    other = write_audio(tmp_path / "other.wav", drums(4.0))
    assert_one_error_line(run_siamrec("add-track", str(other)), "returns NaN or infinite values", alone=True)
    assert dump_store() == before
