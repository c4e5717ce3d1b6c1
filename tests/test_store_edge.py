"""The embedded Qdrant Edge backend: one process at a time, every acknowledged write survives SIGKILL,
a damaged store is named in one line and left as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siamrec.errors import StoreError
from siamrec.store import Store, TrackRecord
from siamrec.store.edge import EdgeBackend

WRITER = """
import sys
import numpy as np
from pathlib import Path
from siamrec.store import Store, TrackRecord
from siamrec.store.edge import EdgeBackend

store = Store(EdgeBackend(Path(sys.argv[1])))
store.bind_model("m", 16)
rng = np.random.default_rng(0)
batch = 2000
for start in range(0, 10_000_000, batch):
    vectors = rng.standard_normal((batch, 16)).astype(np.float32)
    store.upsert_tracks([TrackRecord(f"t:{start + i}", title=str(start + i)) for i in range(batch)], vectors)
    print(start + batch, flush=True)  # acknowledged: every point up to here is stored
"""


def filled(path: Path, n: int = 20) -> Store:
    store = Store(EdgeBackend(path))
    store.bind_model("m", 4)
    vectors = np.random.default_rng(1).standard_normal((n, 4)).astype(np.float32)
    store.upsert_tracks([TrackRecord(f"t:{i}") for i in range(n)], vectors)
    return store


def test_sigkill_during_a_large_upsert_keeps_every_acknowledged_point(tmp_path: Path) -> None:
    path = tmp_path / "store"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    acknowledged = 0
    for line in writer.stdout:
        acknowledged = int(line)
        if acknowledged >= 20_000:
            break
    os.kill(writer.pid, signal.SIGKILL)  # mid-way through the next batch
    writer.wait()
    with Store(EdgeBackend(path)) as store:
        store.bind_stored_model()
        assert store.count_tracks() >= acknowledged
        uris = [f"t:{i}" for i in range(acknowledged)]
        assert len(store.get_tracks(uris)) == acknowledged


def test_a_second_opener_is_refused_in_one_line(tmp_path: Path) -> None:
    with filled(tmp_path / "store"):
        with pytest.raises(StoreError, match="in use by another siamrec process") as info:
            EdgeBackend(tmp_path / "store")
        assert "\n" not in str(info.value)
    with Store(EdgeBackend(tmp_path / "store")) as again:  # released on close
        again.bind_stored_model()
        assert again.count_tracks() == 20


def test_a_lock_path_that_is_a_folder_is_named(tmp_path: Path) -> None:
    filled(tmp_path / "store").close()
    (tmp_path / "store" / "store.lock").unlink()
    (tmp_path / "store" / "store.lock").mkdir()
    with pytest.raises(StoreError, match="store.lock should be a file"):
        EdgeBackend(tmp_path / "store")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "meta"])
def test_a_damaged_store_says_what_to_do_and_is_left_as_it_was(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "store"
    filled(root, 200).close()
    if damage == "meta":
        (root / "collections.json").write_text("{not json")
        (root / "tracks" / "edge_config.json").write_text("{not json")  # nothing left to rebuild it from
    else:
        files = sorted((p for p in (root / "tracks").rglob("*") if p.is_file() and p.stat().st_size > 64),
                       key=lambda p: p.stat().st_size, reverse=True)  # fmt: skip
        for target in files:
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 3] if damage == "truncate" else os.urandom(len(data)))
    before = _files(root)
    with pytest.raises(StoreError, match="damaged") as info:
        store = Store(EdgeBackend(root))
        try:
            store.bind_stored_model()
            store.count_tracks()
            list(store.iter_tracks())
        finally:
            store.backend.close()
    assert "\n" not in str(info.value) and "rebuild" in str(info.value)
    assert {k: v for k, v in _files(root).items() if k != "store.lock"} == {
        k: v for k, v in before.items() if k != "store.lock"
    }
