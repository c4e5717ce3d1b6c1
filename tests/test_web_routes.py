"""`siamrec serve`'s page files, track audio and library map over plain HTTP (no browser needed): the page loads
without the API key and nothing else does; audio streams by URI with Range, only from the file the store names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from siamrec.audio import identify
from siamrec.service import web_routes
from siamrec.service.web_routes import project_2d
from siamrec.store import PlaylistRecord, Store, TrackRecord
from siamrec.testing import chord, drums, write_audio
from siamrec.uris import local_track_uri
from tests.cli import answer, home_env
from tests.service import PROBLEM, service_config, serving
from tests.web_stores import API_KEY, keyed_fixture, service_fixture, store_fixture  # noqa: F401


def test_the_page_loads_without_the_key_and_nothing_else_does(keyed: str, library_files: dict[str, Path]) -> None:
    with httpx.Client(base_url=keyed) as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
            assert anonymous.get(f"/static/{name}").headers["content-type"].startswith(kind)
        audio = f"/tracks/{local_track_uri(identify(library_files['chord_a.wav']))}/audio"
        for path in ("/static/../app.py", "/static/index.html", "/map", "/info", audio):
            assert anonymous.get(path).status_code == 401, path
        keyed_headers = {"X-API-Key": API_KEY}
        assert anonymous.get(audio, headers=keyed_headers).status_code == 200
        missing = anonymous.get("/static/web_routes.py", headers=keyed_headers)
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    source = Path(__file__).parents[1] / "siamrec" / "service" / "static" / "app.js"
    assert "innerHTML" not in source.read_text() and "insertAdjacentHTML" not in source.read_text()


def test_audio_streams_by_uri_with_ranges(service: str, store: dict[str, Any], library_files: dict[str, Path]) -> None:
    for name, kind in (("chord_a.wav", "audio/wav"), ("chord_c.flac", "audio/flac"), ("bright_e.mp3", "audio/mpeg")):
        uri, data = store["uri_of"][name], library_files[name].read_bytes()
        whole = httpx.get(f"{service}/tracks/{uri}/audio")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == kind and whole.headers["accept-ranges"] == "bytes"
        part = httpx.get(f"{service}/tracks/{uri}/audio", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        assert "content-disposition" not in whole.headers  # the file's name stays on the server
    unknown = httpx.get(f"{service}/tracks/local:track:nothing/audio")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM


def test_audio_refuses_moved_swapped_and_symlinked_files(tmp_path: Path, tiny_model: Path) -> None:
    home, music = tmp_path / "home", tmp_path / "music"
    files = {
        "swapped.wav": write_audio(music / "swapped.wav", chord(3.0, 200.0)),
        "gone.wav": write_audio(music / "gone.wav", chord(3.0, 300.0)),
        "linked.wav": write_audio(music / "folder" / "linked.wav", drums(3.0, 100.0)),
        "kept.flac": write_audio(music / "kept.flac", drums(3.0, 140.0)),
        "fifo.wav": write_audio(music / "fifo.wav", drums(3.0, 160.0)),
        # inside the service's own folders only its uploads and audio cache are served
        "stray.wav": write_audio(home / "stray.wav", chord(3.0, 410.0)),
        "cached.wav": write_audio(home / "cache" / "audio" / "k" / "audio.wav", chord(3.0, 520.0)),
    }
    uris = {name: local_track_uri(identify(path)) for name, path in files.items()}
    answer("add-track", *(str(p) for p in files.values()), env=home_env(home, tiny_model))
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's secret\n" * 100)
    files["swapped.wav"].unlink()
    files["swapped.wav"].symlink_to(secret)  # the file became a link to something else
    files["gone.wav"].unlink()
    files["fifo.wav"].unlink()
    os.mkfifo(files["fifo.wav"])  # opening a FIFO for reading would wait for a writer forever
    shutil.move(music / "folder", tmp_path / "elsewhere")
    (music / "folder").symlink_to(tmp_path / "elsewhere")  # a folder on the way became a link
    with serving(service_config(home, tiny_model)) as base:
        for name in ("swapped.wav", "gone.wav", "linked.wav", "stray.wav", "fifo.wav"):
            refused = httpx.get(f"{base}/tracks/{uris[name]}/audio", headers={"Range": "bytes=0-99"})
            assert refused.status_code == 404, name
            assert refused.headers["content-type"] == PROBLEM
            assert str(tmp_path) not in refused.text and "secret" not in refused.text
            assert "no longer where it was added from" in refused.json()["detail"]
        for name in ("kept.flac", "cached.wav"):
            assert httpx.get(f"{base}/tracks/{uris[name]}/audio").content == files[name].read_bytes(), name


def test_the_map_is_a_pca_of_the_stored_vectors(service: str, store: dict[str, Any]) -> None:
    data = httpx.get(f"{service}/map").json()
    assert data["tracks"] == len(data["points"]) == len(store["uri_of"])
    assert [(p["name"], p["tracks"]) for p in data["playlists"]][0] == ("Chords", 2)  # the largest first: colour 0
    colour_of = {p["track_uri"]: p["playlist"] for p in data["points"]}
    names = [p["name"] for p in data["playlists"]]
    assert names[colour_of[store["uri_of"]["chord_a.wav"]]] == "Chords"
    assert names[colour_of[store["uri_of"]["drums_120.wav"]]] == "Beats"
    assert colour_of[store["uri_of"]["drums_90.flac"]] is None
    assert len({(round(p["x"], 6), round(p["y"], 6)) for p in data["points"]}) == len(data["points"])


def test_the_projection_keeps_a_plane_as_it_is() -> None:
    """Points that lie in a 2-D plane of a 64-D space keep every distance between them (PCA by SVD, no sklearn)."""
    rng = np.random.default_rng(3)
    plane = np.linalg.qr(rng.normal(size=(64, 2)))[0].T  # two orthonormal directions
    flat = rng.normal(size=(40, 2)) * [5.0, 1.0]
    coords = project_2d((flat @ plane + rng.normal(size=64)).astype(np.float32))

    def distances(points: np.ndarray) -> np.ndarray:
        return np.linalg.norm(points[:, None] - points[None], axis=-1)

    np.testing.assert_allclose(distances(coords), distances(flat), atol=1e-4)
    assert coords[:, 0].var() > coords[:, 1].var()  # the widest direction first
    assert project_2d(np.zeros((0, 64))).shape == (0, 2) and project_2d(np.ones((1, 64))).shape == (1, 2)


def test_the_leading_axes_are_the_svds_when_they_stand_out() -> None:
    """The randomized subspace iteration finds the SVD's two leading right singular vectors (up to sign) when
    they stand out of the rest, as in real track vectors (their top singular values fall 1 → 0.86 → 0.80)."""
    rng = np.random.default_rng(4)
    basis = np.linalg.qr(rng.normal(size=(300, 300)))[0]
    matrix = (rng.normal(size=(2000, 300)) * np.r_[10.0, 7.0, 5.0, np.full(297, 1.0)]) @ basis.T
    _, _, exact = np.linalg.svd(matrix - matrix.mean(axis=0), full_matrices=False)
    found = web_routes.top_axes(matrix - matrix.mean(axis=0), 2)
    np.testing.assert_allclose(np.abs(np.sum(found * exact[:2], axis=1)), 1.0, atol=1e-3)


def test_a_large_library_maps_a_bounded_random_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAP_MAX_TRACKS the map reads and projects a random sample, and says how many tracks there are."""
    store = Store.memory()
    store.bind_model("hand", 8)
    vectors = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)
    uris = [f"local:track:{i}" for i in range(40)]
    store.upsert_tracks([TrackRecord(uri, title=uri) for uri in uris], vectors)
    for p in range(20):  # playlist p holds tracks 2p and 2p + 1
        store.save_playlist(PlaylistRecord(f"local:playlist:{p}", f"P{p}", track_uris=uris[2 * p : 2 * p + 2]))
    monkeypatch.setattr(web_routes, "MAP_MAX_TRACKS", 12)
    drawn = web_routes._library_map(store)
    assert drawn.tracks == 40 and len(drawn.points) == 12 and len({p.track_uri for p in drawn.points}) == 12
    shown = {int(p.track_uri.rsplit(":", 1)[1]) // 2 for p in drawn.points}
    assert sorted(int(p.playlist_uri.rsplit(":", 1)[1]) for p in drawn.playlists) == sorted(shown)  # only theirs
    for point in drawn.points:
        assert point.playlist is not None
        assert drawn.playlists[point.playlist].name == f"P{int(point.track_uri.rsplit(':', 1)[1]) // 2}"
    monkeypatch.setattr(web_routes, "MAP_MAX_PLAYLISTS", 3)
    legend = web_routes._library_map(store).playlists
    assert len(legend) == 3
    monkeypatch.setattr(web_routes, "MAP_MAX_TRACKS", 40)
    assert len(web_routes._library_map(store).points) == 40
    store.close()
