from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from siamrec import constants as C
from siamrec.audio import track_windows
from siamrec.config import DEFAULT_MODEL
from siamrec.embed import TrackEncoder
from siamrec.errors import ModelError
from siamrec.training.export.onnx_export import (
    META_PARTS,
    export_checkpoint,
    export_encoder,
    parity_max_diff,
    synthetic_parity_windows,
)
from siamrec.training.export.power_mel import rewrite_power_mel
from siamrec.training.export.testing import write_test_models
from siamrec.training.nets import (
    Encoder,
    ModelConfig,
    SimSiam,
    encoder_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

EXAMPLE_TRACK = Path(__file__).resolve().parents[2] / "examples" / "audio" / "aba-games" / "gr0.ogg"  # real music


def _real_windows(library_files: dict[str, Path]) -> np.ndarray:
    files = [library_files["bright_e.mp3"], library_files["drums_120.wav"], library_files["noise.ogg"]]
    files.append(EXAMPLE_TRACK)
    return np.concatenate([track_windows(f, 2)[0] for f in files])


def test_checkpoint_exports_with_parity_and_metadata(tmp_path: Path, library_files: dict[str, Path]) -> None:
    torch.manual_seed(1)
    model = SimSiam(ModelConfig(backbone="cnn", width=8))
    checkpoint = tmp_path / "run.pt"
    save_checkpoint(str(checkpoint), model, epoch=3, name="parity-test", trained_on="unit test")
    windows = _real_windows(library_files)
    report = export_checkpoint(checkpoint, tmp_path / "model.onnx", parity_windows=windows)
    assert report.max_abs_diff <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert meta[C.META_NAME] == "parity-test" and meta[C.META_TRAINED_ON] == "unit test"
    assert meta[C.META_DIM] == str(model.backbone_dim) and meta[C.META_SAMPLE_RATE] == "16000"
    assert not (tmp_path / "model.onnx.data").exists()  # one file, no external weights
    encoder = TrackEncoder(tmp_path / "model.onnx", device="cpu")
    # Dynamic batch: one window and many windows give the same per-window embeddings.
    single = encoder.embed_windows(windows[:1])
    assert np.allclose(single, encoder.embed_windows(windows)[:1], atol=1e-5)
    torch_out = encoder_from_checkpoint(load_checkpoint(str(checkpoint)))(torch.from_numpy(windows)).detach().numpy()
    assert np.abs(torch_out - encoder.embed_windows(windows)).max() <= 1e-4


def test_standardisation_is_inside_the_graph(tmp_path: Path, library_files: dict[str, Path]) -> None:
    model = SimSiam(ModelConfig(backbone="cnn", width=4)).eval()
    encoder = Encoder(model.frontend, model.backbone, model.backbone_dim)
    windows = _real_windows(library_files)
    with torch.no_grad():
        encoder.set_standardisation(encoder.backbone(encoder.frontend(torch.from_numpy(windows))))
    export_encoder(encoder, tmp_path / "std.onnx", name="std", backbone="cnn")
    out = TrackEncoder(tmp_path / "std.onnx").embed_windows(windows)
    assert np.allclose(out.mean(axis=0), 0.0, atol=1e-3)
    assert parity_max_diff(encoder, tmp_path / "std.onnx", windows) <= 1e-4


def test_multi_part_vector_exports_with_parity_and_describes_its_parts(
    tmp_path: Path, library_files: dict[str, Path]
) -> None:
    """[learned | timbre statistics], each part standardised and scaled: parity holds, metadata names the parts."""
    torch.manual_seed(2)
    model = SimSiam(ModelConfig(backbone="cnn", width=4)).eval()
    windows = _real_windows(library_files)
    encoder = Encoder(model.frontend, model.backbone, model.backbone_dim, timbre=True)
    with torch.no_grad():
        encoder.set_standardisation(encoder.raw(torch.from_numpy(windows)))
    report = export_encoder(encoder, tmp_path / "parts.onnx", name="parts", backbone="cnn", parity_windows=windows)
    assert report.max_abs_diff <= 1e-4 and report.dim == model.backbone_dim + 2 * C.N_MELS
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "parts.onnx")).metadata_props}
    assert meta[META_PARTS] == f"learned:{model.backbone_dim},timbre:{2 * C.N_MELS}"
    out = TrackEncoder(tmp_path / "parts.onnx").embed_windows(windows)
    learned, timbre = out[:, : model.backbone_dim], out[:, model.backbone_dim :]
    # Equal weight: standardised on these n windows (sample std), a part's mean squared norm is (n - 1) / n,
    # less for the learned dimensions a random ReLU network leaves constant on them.
    full = (len(windows) - 1) / len(windows)
    assert np.mean((timbre**2).sum(axis=1)) == pytest.approx(full, rel=1e-3)
    assert 0.5 * full < np.mean((learned**2).sum(axis=1)) <= full * 1.001
    # The timbre part is per-band log-mel mean and std: a louder, brighter window moves it.
    mel = model.frontend(torch.from_numpy(windows[:1]))[0, 0].detach().numpy()
    mean, std = (buffer[model.backbone_dim :].numpy() for buffer in (encoder.feature_mean, encoder.feature_std))
    expected = (np.concatenate([mel.mean(axis=1), mel.std(axis=1)]) - mean) / std * (2 * C.N_MELS) ** -0.5
    assert np.allclose(timbre[0], expected, atol=1e-3)


@pytest.mark.parametrize("name", ["../../x", "evil+adapted", "", "x" * 65])
def test_an_unusable_model_name_is_refused_before_export(tmp_path: Path, name: str) -> None:
    model = SimSiam(ModelConfig(backbone="cnn", width=4)).eval()
    encoder = Encoder(model.frontend, model.backbone, model.backbone_dim)
    with pytest.raises(ModelError, match="is not a usable name"):
        export_encoder(encoder, tmp_path / "m.onnx", name=name, backbone="cnn")
    assert list(tmp_path.iterdir()) == []


def test_parity_failure_removes_the_file(tmp_path: Path) -> None:
    model = SimSiam(ModelConfig(backbone="cnn", width=4)).eval()
    encoder = Encoder(model.frontend, model.backbone, model.backbone_dim)
    with pytest.raises(ModelError, match="parity check failed"):
        export_encoder(encoder, tmp_path / "m.onnx", name="m", backbone="cnn", tolerance=-1.0)
    assert not (tmp_path / "m.onnx").exists()


def test_the_test_models_are_what_the_exporter_makes(tmp_path: Path) -> None:
    """tests/assets holds the tiny models the torch-free tests read: the exporter must still make them."""
    assets = Path(__file__).resolve().parents[1] / "assets"
    windows = synthetic_parity_windows(3)
    for made in write_test_models(tmp_path):
        shipped = TrackEncoder(assets / made.name)
        fresh = TrackEncoder(made)
        assert (shipped.name, shipped.dim) == (fresh.name, fresh.dim)
        assert np.allclose(shipped.embed_windows(windows), fresh.embed_windows(windows), atol=1e-5), made.name


def test_foreign_or_mismatched_models_are_refused(tmp_path: Path, tiny_model: Path) -> None:
    model = onnx.load(str(tiny_model))
    for prop in model.metadata_props:
        if prop.key == C.META_SAMPLE_RATE:
            prop.value = "22050"
    onnx.save(model, str(tmp_path / "other_rate.onnx"))
    with pytest.raises(ModelError, match="22050 Hz"):
        TrackEncoder(tmp_path / "other_rate.onnx")
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ModelError, match="not a siamrec model"):
        TrackEncoder(tmp_path / "foreign.onnx")
    (tmp_path / "junk.onnx").write_text("not a model")
    with pytest.raises(ModelError, match="cannot load model"):
        TrackEncoder(tmp_path / "junk.onnx")


def test_mean_and_spread_pooling_follows_the_metadata(tmp_path: Path, library_files: dict[str, Path]) -> None:
    """`mean+std`: the graph still gives one embedding per window; the track vector is [unit mean | unit
    standardised spread] / √2 with the training tracks' spread statistics stored in the file."""
    torch.manual_seed(0)
    model = SimSiam(ModelConfig(backbone="cnn", width=4)).eval()
    encoder = Encoder(model.frontend, model.backbone, model.backbone_dim, timbre=True)
    rng = np.random.default_rng(0)
    spread = (rng.uniform(0.1, 0.5, encoder.dim), rng.uniform(0.05, 0.2, encoder.dim))
    report = export_encoder(encoder, tmp_path / "m.onnx", "m", "cnn", pooling="mean+std", spread=spread)
    assert report.dim == 2 * encoder.dim
    loaded = TrackEncoder(tmp_path / "m.onnx", device="cpu")
    assert (loaded.dim, loaded.window_dim, loaded.info.pooling) == (2 * encoder.dim, encoder.dim, "mean+std")
    per_track = [track_windows(p, 4)[0] for p in list(library_files.values())[:3]]
    vectors = loaded.track_vectors(per_track)
    for vector, windows in zip(vectors, per_track, strict=True):
        with torch.no_grad():
            embeddings = encoder(torch.from_numpy(windows)).double().numpy()
        mean, std = embeddings.mean(axis=0), embeddings.std(axis=0)
        spread_part = (std - spread[0]) / spread[1]
        expected = np.concatenate([mean / np.linalg.norm(mean), spread_part / np.linalg.norm(spread_part)])
        np.testing.assert_allclose(vector, expected / np.sqrt(2), atol=2e-4)
    with pytest.raises(ModelError, match="spread statistics"):
        export_encoder(encoder, tmp_path / "n.onnx", "n", "cnn", pooling="mean+std")
    # damaged or missing pooling metadata is refused when the model loads
    for key, value, message in [
        (C.META_SPREAD_SCALE, "[1, 2]", "must hold"),
        (C.META_SPREAD_MEAN, "not json", "not a list of numbers"),
        (C.META_POOLING, "max", "knows mean"),
        (C.META_WINDOW_DIM, "7", "half of"),
    ]:
        onnx_model = onnx.load(str(tmp_path / "m.onnx"))
        for prop in onnx_model.metadata_props:
            if prop.key == key:
                prop.value = value
        onnx.save(onnx_model, str(tmp_path / "bad.onnx"))
        with pytest.raises(ModelError, match=message):
            TrackEncoder(tmp_path / "bad.onnx", device="cpu")


def test_spread_weight_is_stored_and_read_back(tmp_path: Path, library_files: dict[str, Path]) -> None:
    """`--spread-weight w`: the track vector is [unit mean | w · unit spread] / √(1 + w²); a file without the
    key (exported before it existed) pools with weight 1, and a damaged weight is refused when it loads."""
    torch.manual_seed(0)
    model = SimSiam(ModelConfig(backbone="cnn", width=4)).eval()
    encoder = Encoder(model.frontend, model.backbone, model.backbone_dim, timbre=True)
    rng = np.random.default_rng(0)
    spread = (rng.uniform(0.1, 0.5, encoder.dim), rng.uniform(0.05, 0.2, encoder.dim))
    export_encoder(encoder, tmp_path / "w.onnx", "w", "cnn", pooling="mean+std", spread=spread, spread_weight=0.5)
    weighted = TrackEncoder(tmp_path / "w.onnx", device="cpu")
    assert weighted.info.spread_weight == 0.5
    per_track = [track_windows(p, 4)[0] for p in list(library_files.values())[:3]]
    vectors = weighted.track_vectors(per_track)
    half = encoder.dim
    for vector in vectors:
        mean_norm, spread_norm = np.linalg.norm(vector[:half]), np.linalg.norm(vector[half:])
        np.testing.assert_allclose([mean_norm, spread_norm], np.array([1.0, 0.5]) / np.sqrt(1.25), atol=1e-5)
    # without the key: weight 1, the vectors every mean+std model gave before
    onnx_model = onnx.load(str(tmp_path / "w.onnx"))
    kept = [prop for prop in onnx_model.metadata_props if prop.key != C.META_SPREAD_WEIGHT]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(kept)
    onnx.save(onnx_model, str(tmp_path / "old.onnx"))
    old = TrackEncoder(tmp_path / "old.onnx", device="cpu")
    assert old.info.spread_weight == 1.0
    unweighted = old.track_vectors(per_track)
    np.testing.assert_allclose(np.linalg.norm(unweighted[:, :half], axis=1), 1 / np.sqrt(2), atol=1e-5)
    np.testing.assert_allclose(unweighted[:, :half] * np.sqrt(2), vectors[:, :half] * np.sqrt(1.25), atol=1e-5)
    for value in ("nan", "0", "-1", "abc", "1e9"):
        onnx_model = onnx.load(str(tmp_path / "w.onnx"))
        for prop in onnx_model.metadata_props:
            if prop.key == C.META_SPREAD_WEIGHT:
                prop.value = value
        onnx.save(onnx_model, str(tmp_path / "bad.onnx"))
        with pytest.raises(ModelError, match="spread_weight"):
            TrackEncoder(tmp_path / "bad.onnx", device="cpu")
    with pytest.raises(ModelError, match="spread weight"):
        export_encoder(encoder, tmp_path / "z.onnx", "z", "cnn", pooling="mean+std", spread=spread, spread_weight=0)
    assert not (tmp_path / "z.onnx").exists()
    with pytest.raises(ModelError, match="mean\\+std pooling"):
        export_encoder(encoder, tmp_path / "m.onnx", "m", "cnn", pooling="mean", spread_weight=0.5)
    assert not (tmp_path / "m.onnx").exists()


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_the_stft_front_end_is_rewritten_to_the_same_embeddings(tmp_path: Path, library_files: dict[str, Path]) -> None:
    """power_mel.py: the half-size DFT products give what onnxruntime's STFT gives, on real and made audio."""
    assets = Path(__file__).resolve().parents[1] / "assets"
    model = onnx.load(str(assets / "tiny.onnx"))  # exported before the rewrite: torch's STFT front end
    assert "STFT" in {node.op_type for node in model.graph.node}
    assert rewrite_power_mel(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "fast.onnx"))
    assert not _op_types(tmp_path / "fast.onnx") & {"STFT", "ReduceL2"}
    windows = np.concatenate([_real_windows(library_files), synthetic_parity_windows(3)])
    quiet = windows[:2] * 1e-3  # quiet input: the high bins' power must not come from a cancelling difference
    windows = np.concatenate([windows, quiet]).astype(np.float32)
    before = TrackEncoder(assets / "tiny.onnx").embed_windows(windows)
    after = TrackEncoder(tmp_path / "fast.onnx").embed_windows(windows)
    assert np.abs(before - after).max() <= 1e-5
    again = onnx.load(str(tmp_path / "fast.onnx"))
    assert not rewrite_power_mel(again)  # nothing left to rewrite: the graph is left as it is
    assert again.SerializeToString() == onnx.load(str(tmp_path / "fast.onnx")).SerializeToString()


def test_exports_and_the_shipped_model_carry_the_fast_front_end(tmp_path: Path) -> None:
    made = write_test_models(tmp_path)[0]
    assert "STFT" not in _op_types(made) and "STFT" not in _op_types(DEFAULT_MODEL)
