"""Re-adds do only what changed: unchanged files are not decoded, touched, moved or copied ones neither decoded
nor re-embedded, changed ones re-embedded, vanished ones reported (and removed with prune)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from threadpoolctl import threadpool_info

import siamrec.audio_items
from siamrec.embed import TrackEncoder
from siamrec.library import add_paths
from siamrec.store import Store
from siamrec.store.edge import EdgeBackend


@pytest.fixture
def folder(tmp_path: Path, library_files: dict[str, Path]) -> Path:
    target = tmp_path / "music"
    target.mkdir()
    for name in ("chord_a.wav", "noise.ogg", "chord_c.flac"):
        shutil.copy(library_files[name], target / name)
    return target


@pytest.fixture
def encoder(tiny_model: Path) -> TrackEncoder:
    return TrackEncoder(tiny_model)


def test_readding_an_unchanged_folder_embeds_nothing(memory_store: Store, encoder: TrackEncoder, folder: Path) -> None:
    first = add_paths(memory_store, encoder, [folder])
    assert first.embedded == 3 and len(first.added) == 3 and not first.failed
    again = add_paths(memory_store, encoder, [folder])
    assert again.embedded == 0 and len(again.unchanged) == 3 and again.added == again.updated == []
    assert memory_store.count_tracks() == 3


def test_an_mtime_the_engine_rounds_still_counts_as_unchanged(
    tmp_path: Path, encoder: TrackEncoder, folder: Path
) -> None:
    """Qdrant Edge hands 1796235428.8075023 back as ...8075025 (one unit in the last place): such a file is
    still unchanged (this made a re-add report `updated` in about 1 run of 5)."""
    for path in folder.iterdir():
        os.utime(path, ns=(1_796_235_428_807_502_300, 1_796_235_428_807_502_300))
    assert os.stat(folder / "noise.ogg").st_mtime == 1796235428.8075023
    store = Store(EdgeBackend(tmp_path / "store"))
    try:
        assert len(add_paths(store, encoder, [folder]).added) == 3
        again = add_paths(store, encoder, [folder])
        assert len(again.unchanged) == 3 and again.updated == [] and again.embedded == 0
    finally:
        store.close()


def test_a_touched_file_is_not_decoded_and_keeps_its_vector(
    memory_store: Store, encoder: TrackEncoder, folder: Path, decoded: list[Path]
) -> None:
    add_paths(memory_store, encoder, [folder])
    path = folder / "noise.ogg"
    before = {t.record.track_uri: t.vector for t in memory_store.iter_tracks()}
    os.utime(path, (1_000_000, 1_000_000))
    decoded.clear()
    again = add_paths(memory_store, encoder, [folder])
    assert again.embedded == 0 and len(again.unchanged) == 2 and len(again.updated) == 1
    assert decoded == []  # its bytes are the stored track's: hashed, not decoded
    record = memory_store.tracks_at([str(path.resolve())])[str(path.resolve())]
    assert record.mtime == 1_000_000  # stored, so the next re-add skips it unread
    np.testing.assert_allclose(memory_store.get_tracks(again.updated, with_vectors=True)[record.track_uri].vector,
                               before[record.track_uri], atol=1e-6)  # fmt: skip
    assert add_paths(memory_store, encoder, [folder]).unchanged.__len__() == 3


def test_a_moved_folder_is_re_added_without_decoding(
    memory_store: Store, encoder: TrackEncoder, folder: Path, decoded: list[Path]
) -> None:
    """The same bytes at new paths: the same tracks (their URIs come from the audio), no decoding, no
    embedding; their stored paths follow the files, so the next re-add skips them unread."""
    first = add_paths(memory_store, encoder, [folder])
    stored = {t.record.track_uri: t for t in memory_store.iter_tracks()}
    moved = folder.with_name("moved")
    folder.rename(moved)
    decoded.clear()
    again = add_paths(memory_store, encoder, [moved])
    assert (again.embedded, again.added, again.failed, decoded) == (0, [], [], [])
    assert sorted(again.updated) == sorted(first.added) and memory_store.count_tracks() == 3
    for track in memory_store.iter_tracks():
        before = stored[track.record.track_uri]
        assert Path(track.record.path or "").parent == moved.resolve()
        assert (track.record.audio_id, track.record.duration_s) == (before.record.audio_id, before.record.duration_s)
        np.testing.assert_allclose(track.vector, before.vector, atol=1e-6)
    assert len(add_paths(memory_store, encoder, [moved]).unchanged) == 3


def test_a_copy_of_a_stored_file_is_not_decoded_a_new_file_is(
    memory_store: Store, encoder: TrackEncoder, folder: Path, library_files: dict[str, Path], decoded: list[Path]
) -> None:
    add_paths(memory_store, encoder, [folder])
    elsewhere = folder.parent / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(folder / "chord_a.wav", elsewhere / "copy.wav")
    shutil.copy(library_files["bright_a.ogg"], elsewhere / "new.ogg")
    decoded.clear()
    report = add_paths(memory_store, encoder, [elsewhere])
    assert decoded == [elsewhere / "new.ogg"] and report.embedded == 1 and len(report.added) == 1


def test_a_modified_file_is_embedded_again(memory_store: Store, encoder: TrackEncoder, folder: Path) -> None:
    add_paths(memory_store, encoder, [folder])
    path = folder / "chord_a.wav"
    audio, rate = sf.read(path)
    sf.write(path, np.roll(audio, rate // 3, axis=0) * 0.5, rate)
    again = add_paths(memory_store, encoder, [folder])
    assert again.embedded == 1 and len(again.unchanged) == 2


def test_a_deleted_file_is_reported_and_pruned_on_request(
    memory_store: Store, encoder: TrackEncoder, folder: Path
) -> None:
    first = add_paths(memory_store, encoder, [folder])
    gone = folder / "chord_c.flac"
    uri = first.uri_by_path[str(gone)]
    gone.unlink()
    report = add_paths(memory_store, encoder, [folder])
    assert report.vanished == [str(gone.resolve())] and report.removed == []
    assert memory_store.count_tracks() == 3  # reported only
    pruned = add_paths(memory_store, encoder, [folder], prune=True)
    assert pruned.removed == [uri] and memory_store.count_tracks() == 2 and pruned.embedded == 0


def test_a_retagged_file_updates_its_point_without_embedding(
    memory_store: Store, encoder: TrackEncoder, folder: Path
) -> None:
    from mutagen.flac import FLAC

    first = add_paths(memory_store, encoder, [folder])
    path = folder / "chord_c.flac"
    uri = first.uri_by_path[str(path)]
    tags = FLAC(str(path))
    tags["title"] = "Renamed By A Tagger"
    tags.save()
    again = add_paths(memory_store, encoder, [folder])
    assert again.embedded == 0 and again.updated == [uri] and len(again.unchanged) == 2
    assert memory_store.count_tracks() == 3
    assert memory_store.get_tracks([uri])[uri].record.title == "Renamed By A Tagger"


def test_adding_runs_blas_on_one_thread_and_gives_the_threads_back(
    memory_store: Store, encoder: TrackEncoder, folder: Path
) -> None:
    """BLAS threads spin after each product and take the core the decoders need: one while adding, as before
    after."""
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas  # numpy's own BLAS is there to limit
    before = [pool["num_threads"] for pool in blas]
    seen: list[int] = []

    def progress(done: int) -> None:
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")

    assert len(add_paths(memory_store, encoder, [folder], on_progress=progress).added) == 3
    assert seen and set(seen) == {1}
    assert [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"] == before


def test_a_huge_file_is_decoded_before_it_is_hashed(
    memory_store: Store, encoder: TrackEncoder, folder: Path, decoded: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the size cap a file is not read whole to look its bytes up: decoding checks its length first (a
    12-hour limit), and the stored audio identity still spares the model."""
    add_paths(memory_store, encoder, [folder])
    monkeypatch.setattr(siamrec.audio_items, "MAX_HASHED_FIRST_BYTES", 16)
    copy = folder.parent / "copy"
    shutil.copytree(folder, copy)
    decoded.clear()
    report = add_paths(memory_store, encoder, [copy])
    assert sorted(decoded) == sorted(copy.iterdir()) and report.embedded == 0 and len(report.updated) == 3
    assert all(t.record.audio_sha1 for t in memory_store.iter_tracks())
