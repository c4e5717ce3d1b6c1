"""A metric shipped in the model (`siamrec project`): fitted on a store's playlists, read back by the encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from siamrec import constants as C
from siamrec.adapt import fit_store
from siamrec.config import resolve_settings
from siamrec.embed import TrackEncoder
from siamrec.errors import ModelError
from siamrec.projection import Projection
from siamrec.store import PlaylistRecord, Store, TrackRecord
from siamrec.testing import chord, drums, noise
from tests.cli import assert_one_error_line, invoke

PLAYLISTS = 4


def fill_for(store: Store, name: str, dim: int) -> None:
    """Four playlists of six tracks that differ on a few dims and vary a lot on one nuisance dim."""
    rng = np.random.default_rng(0)
    store.bind_model(name, dim)
    for p in range(PLAYLISTS):
        uris = [f"t:{p}:{t}" for t in range(6)]
        vectors = rng.normal(0, 0.05, (6, dim))
        vectors[:, 1 + p] += 1.0
        vectors[:, 0] += rng.normal(0, 2.0, 6)
        store.upsert_tracks([TrackRecord(uri, title=uri) for uri in uris], list(vectors.astype(np.float32)))
        store.save_playlist(PlaylistRecord(f"pl:{p}", f"P{p}", track_uris=uris))


def windows_of_three_tracks() -> list[np.ndarray]:
    signals = [chord(6.0), drums(6.0), noise(6.0)]
    return [np.stack([s[i * C.WINDOW_SAMPLES // 2 : i * C.WINDOW_SAMPLES // 2 + C.WINDOW_SAMPLES] for i in range(2)])
            .astype(np.float32) for s in signals]  # fmt: skip


def test_project_writes_the_stores_whitening_into_the_model(home: Path, tiny_model: Path, tmp_path: Path) -> None:
    plain = TrackEncoder(tiny_model, device="cpu")
    with Store.open(resolve_settings(home=str(home))) as store:
        fill_for(store, plain.info.name, plain.dim)
        whitening = fit_store(store).whitening
    out = tmp_path / "projected.onnx"
    result = invoke("project", str(tiny_model), "-o", str(out), "--fitted-on", "four playlists", "--json", check=True)
    report = json.loads(result.stdout)
    assert report["playlists"] == PLAYLISTS and report["pooled_dim"] == plain.dim
    projected = TrackEncoder(out, device="cpu")
    assert projected.info.name == "tiny-projected" == report["name"] and projected.dim == report["dim"]
    windows = windows_of_three_tracks()
    shipped = projected.track_vectors(windows)
    expected = whitening.apply(plain.track_vectors(windows))  # the adapted metric, as `adapt` would rank
    same_cosines = shipped @ shipped.T - expected @ expected.T
    assert np.abs(same_cosines).max() < 1e-4
    assert np.allclose(np.linalg.norm(shipped, axis=1), 1.0, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert "four playlists: 4 playlists, 24 tracks" in meta["siamrec.projection_fitted_on"]


def test_project_refuses_a_store_of_another_model(home: Path, tiny_model: Path, other_model: Path,
                                                  tmp_path: Path) -> None:  # fmt: skip
    with Store.open(resolve_settings(home=str(home))) as store:
        fill_for(store, "other", 96)
    out = tmp_path / "projected.onnx"
    assert_one_error_line(invoke("project", str(tiny_model), "-o", str(out)), "not of tiny")
    assert not out.exists()


def test_a_projected_model_cannot_be_projected_again(home: Path, tiny_model: Path, tmp_path: Path) -> None:
    with Store.open(resolve_settings(home=str(home))) as store:
        fill_for(store, "tiny", 64)
    once = tmp_path / "once.onnx"
    invoke("project", str(tiny_model), "-o", str(once), check=True)
    assert_one_error_line(invoke("project", str(once), "-o", str(tmp_path / "twice.onnx")), "already ships")
    assert_one_error_line(invoke("project", str(tiny_model), "-o", str(once), "--name", "tiny"), "own name")
    assert_one_error_line(invoke("project", str(tiny_model), "-o", str(once), "--name", "a/b"), "--name")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(shape=[64, 0]), "no valid shape"),
        (lambda d: d.update(mean="%%%"), "not base64"),
        (lambda d: d.update(matrix=d["mean"]), "holds 64 numbers"),
        (lambda d: d.update(format=9), "format"),
    ],
)
def test_a_damaged_projection_is_refused_in_one_line(tiny_model: Path, tmp_path: Path, change, message: str) -> None:
    projection = Projection(np.zeros(64, np.float32), np.eye(64, 8, dtype=np.float32))
    data = json.loads(projection.to_metadata())
    change(data)
    graph = onnx.load(str(tiny_model))
    graph.metadata_props.add(key=C.META_PROJECTION, value=json.dumps(data))
    for prop in graph.metadata_props:
        if prop.key == C.META_DIM:
            prop.value = "8"
    path = tmp_path / "damaged.onnx"
    onnx.save(graph, str(path))
    with pytest.raises(ModelError, match=message):
        TrackEncoder(path, device="cpu")


def test_the_projection_survives_its_metadata_form() -> None:
    rng = np.random.default_rng(1)
    projection = Projection(rng.normal(size=12).astype(np.float32), rng.normal(size=(12, 5)).astype(np.float32))
    again = Projection.from_metadata(projection.to_metadata())
    assert np.array_equal(again.mean, projection.mean) and np.array_equal(again.matrix, projection.matrix)
    pooled = rng.normal(size=(3, 12)).astype(np.float32)
    assert np.allclose(again.apply(pooled), projection.apply(pooled))
