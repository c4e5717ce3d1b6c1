"""An old embedded store (qdrant-client local mode) moves into Qdrant Edge with every point and payload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siamrec.config import resolve_settings
from siamrec.store import PlaylistRecord, Store, TrackRecord
from siamrec.store.client import ClientBackend
from siamrec.store.migrate import migrate


def everything(store: Store) -> dict[str, object]:
    store.bind_stored_model()
    tracks = {t.record.track_uri: (t.record, None if t.vector is None else t.vector.round(5).tolist())
              for t in store.iter_tracks()}  # fmt: skip
    playlists = store.get_playlists(p.playlist_uri for p in store.iter_playlists())
    return {
        "model": store.stored_model(),
        "tracks": tracks,
        "playlists": {u: (r, None if c is None else c.round(5).tolist()) for u, (r, c) in playlists.items()},
    }


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    """A SIAMREC_HOME holding a store written the old way."""
    home = tmp_path / "home"
    store = Store(ClientBackend.local(str(home / "qdrant")))
    store.bind_model("old-model", 8)
    vectors = np.random.default_rng(2).standard_normal((30, 8)).astype(np.float32)
    records = [TrackRecord(f"local:track:{i}", title=f"t{i}", artist="a", path=f"/m/{i}.wav") for i in range(30)]
    store.upsert_tracks(records, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    store.save_playlist(
        PlaylistRecord("local:playlist:road", "Road", track_uris=[f"local:track:{i}" for i in range(5)])
    )
    store.save_playlist(PlaylistRecord("spotify:playlist:x", "Later", track_uris=["spotify:track:none-yet"]))
    store.close()
    return home


def test_opening_an_old_store_migrates_it_and_keeps_a_backup(old_home: Path) -> None:
    settings = resolve_settings(home=str(old_home))
    with Store(ClientBackend.local(str(old_home / "qdrant"))) as old:
        before = everything(old)
    with Store.open(settings) as store:
        assert store.location == str(old_home / "store")
        after = everything(store)
        assert store.find_playlist("road").name == "Road"  # the name index exists on migrated playlists
    assert after == before and len(before["tracks"]) == 31  # type: ignore[arg-type]
    assert (old_home / "qdrant" / "collection").is_dir()  # the backup stays
    assert migrate(settings).migrated is False  # once only


def test_an_interrupted_migration_is_redone(old_home: Path) -> None:
    partial = old_home / "store.partial"
    partial.mkdir(parents=True)
    (partial / "collections.json").write_text("{}")  # what a killed migration may leave
    report = migrate(resolve_settings(home=str(old_home)))
    assert report.migrated and report.points == {"tracks": 31, "playlists": 2}
    assert not partial.exists()
