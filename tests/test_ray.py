"""The Ray path (`add-track --ray`) on a local Ray cluster: the same vectors and records as one process.

Skipped when the `ray` extra is not installed (it is not part of the default test install)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from siamrec.audio_items import AudioItem  # noqa: E402
from siamrec.config import resolve_settings  # noqa: E402
from siamrec.embed import TrackEncoder  # noqa: E402
from siamrec.library import add_paths  # noqa: E402
from siamrec.ray_embed import add_audio_on_ray, connect  # noqa: E402
from siamrec.store import Store  # noqa: E402
from siamrec.testing import noise, write_audio  # noqa: E402
from tests.cli import run_siamrec  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[None]:
    connect("local", cpus=2)
    yield
    ray.shutdown()


@pytest.fixture
def folder(tmp_path: Path, library_files: dict[str, Path]) -> Path:
    target = tmp_path / "music"
    target.mkdir()
    for name, path in library_files.items():
        shutil.copy(path, target / name)
    (target / "broken.flac").write_bytes(b"fLaC but nothing else")
    return target


def test_ray_gives_the_vectors_of_the_one_process_path(local_cluster: None, folder: Path, tiny_model: Path) -> None:
    encoder = TrackEncoder(tiny_model)
    alone, on_ray = Store.memory(), Store.memory()
    expected = add_paths(alone, encoder, [folder])
    files = sorted(p for p in folder.iterdir())
    report = add_audio_on_ray(on_ray, encoder, [AudioItem(p) for p in files], actors=2)
    assert sorted(report.added) == sorted(expected.added) and report.embedded == expected.embedded == len(files) - 1
    assert [path for path, _ in report.failed] == [str(folder / "broken.flac")]
    one = {t.record.track_uri: t for t in alone.iter_tracks()}
    other = {t.record.track_uri: t for t in on_ray.iter_tracks()}
    assert set(one) == set(other)
    for uri, track in one.items():
        assert np.abs(track.vector - other[uri].vector).max() <= 1e-5
        assert (track.record.path, track.record.audio_id, track.record.title) == (
            other[uri].record.path, other[uri].record.audio_id, other[uri].record.title)  # fmt: skip
    again = add_audio_on_ray(on_ray, encoder, [AudioItem(p) for p in files], actors=2)
    assert again.embedded == 0 and len(again.unchanged) == len(files) - 1  # the driver skips unchanged files


def test_ray_gets_only_files_whose_bytes_the_store_does_not_hold(
    local_cluster: None, folder: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """A folder added, then a copy of it (one file new) added on Ray: the driver writes the copies from the stored
    tracks, and Ray decodes and embeds only the new file."""
    encoder = TrackEncoder(tiny_model)
    store = Store.memory()
    first = add_paths(store, encoder, [folder])
    before = {t.record.track_uri: t.vector for t in store.iter_tracks()}
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    write_audio(copy / "new.wav", noise(4.0, seed=5))
    files = sorted(p for p in copy.iterdir())
    report = add_audio_on_ray(store, encoder, [AudioItem(p) for p in files], actors=2)
    assert report.embedded == 1 and len(report.added) == 1 and sorted(report.updated) == sorted(first.added)
    assert [path for path, _ in report.failed] == [str(copy / "broken.flac")]
    for uri in first.added:
        stored = store.get_tracks([uri], with_vectors=True)[uri]
        assert Path(stored.record.path or "").parent == copy.resolve()
        np.testing.assert_allclose(stored.vector, before[uri], atol=1e-6)


def test_cli_add_track_on_a_local_ray_cluster(folder: Path, tiny_model: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SIAMREC_HOME": str(tmp_path / "home"), "SIAMREC_MODEL": str(tiny_model)}
    run = run_siamrec("add-track", str(folder), "--ray", "local", "--ray-actors", "2", "--json", env=env, timeout=300)
    assert run.returncode == 1  # the broken file
    report = json.loads(run.stdout)
    assert (report["added"], report["tracks_in_store"], len(report["failed"])) == (7, 7, 1)
    assert report["failed"][0]["path"].endswith("broken.flac")
    chatter = [line for line in run.stderr.splitlines() if "embedding on Ray" not in line]
    assert chatter == [], run.stderr  # no Ray log lines, C++ or Python: the progress bar only


def _dump(home: Path) -> dict[str, tuple[np.ndarray, str, list[str]]]:
    with Store.open(resolve_settings(home=str(home))) as store:
        store.bind_stored_model()
        return {t.record.track_uri: (t.vector, t.record.title, t.record.playlists) for t in store.iter_tracks()}


def test_cli_sync_playlists_on_a_local_ray_cluster(folder: Path, tiny_model: Path, tmp_path: Path) -> None:
    """`sync-playlists --ray` stores what the one-process sync stores: same tracks, membership and vectors."""
    playlist = tmp_path / "mix.m3u"
    playlist.write_text("\n".join(str(p) for p in sorted(folder.iterdir())) + "\n")
    dumps = []
    for name, extra in (("plain", []), ("ray", ["--ray", "local", "--ray-actors", "2"])):
        env = {**os.environ, "SIAMREC_HOME": str(tmp_path / name), "SIAMREC_MODEL": str(tiny_model)}
        run = run_siamrec("sync-playlists", "--m3u", str(playlist), *extra, "--json", env=env, timeout=300)
        assert run.returncode == 1, run.stderr  # the broken file
        report = json.loads(run.stdout)
        assert (report["playlists_written"], report["embedded"], len(report["failed"])) == (1, 7, 1)
        dumps.append(_dump(tmp_path / name))
    plain, on_ray = dumps
    assert set(plain) == set(on_ray) and len(plain) == 7
    for uri, (vector, title, playlists) in plain.items():
        assert np.abs(vector - on_ray[uri][0]).max() <= 1e-5
        assert (title, playlists) == on_ray[uri][1:]
