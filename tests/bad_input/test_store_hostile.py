"""The store against broken disks and bad settings: damaged metadata, full and read-only disks, homes below a
file, servers that are not Qdrant, model names that are not names; and backup/restore, from the CLI and from a
running service. Every case goes through the real CLI and ends with a full store dump identical to the one
before (or a correct rebuild)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest

from siamrec.store.edge import META
from tests.cli import assert_one_error_line, home_env, invoke, run_siamrec, stderr_messages
from tests.stores import dump_store

STORE_COMMANDS = (("info",), ("playlist", "list"), ("recommend", "--playlist", "mix", "-k", "2"))


@pytest.fixture(scope="module")
def filled_home(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]) -> Path:
    """A store made once by the real CLI (6 tracks, a playlist of 3); each test works on a copy."""
    home = tmp_path_factory.mktemp("filled") / "home"
    env = home_env(home, tiny_model)
    files = sorted(str(p) for p in library_files.values())
    assert run_siamrec("add-track", *files[:6], env=env).returncode == 0
    assert run_siamrec("playlist", "create", "mix", *files[:3], env=env).returncode == 0
    return home


@pytest.fixture
def store(home: Path, filled_home: Path) -> Path:
    """A copy of the filled store at SIAMREC_HOME; returns the store folder."""
    shutil.copytree(filled_home, home)
    return home / "store"


@pytest.fixture
def new_track(library_files: dict[str, Path]) -> str:
    return str(sorted(library_files.values())[6])


def engine_files(root: Path) -> dict[str, bytes]:
    """Every file of a store folder but its lock, byte for byte."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "store.lock"}  # fmt: skip


# ---- collections.json missing, empty or damaged ------------------------------------------------------------

DAMAGED_META = {
    "missing": None,
    "empty object": "{}",
    "empty list": "[]",
    "null": "null",
    "wrong type": '{"tracks": 3, "playlists": "x"}',
    "wrong dims": '{"tracks": {"tiny": "64"}, "playlists": {"tiny": 64}}',
    "truncated": '{"playlists": {"tiny": 64, "tiny+adap',
    "a collection left out": '{"tracks": {"tiny": 64, "tiny+adapted": 64}}',
}


@pytest.mark.parametrize("case", sorted(DAMAGED_META))
def test_damaged_metadata_is_rebuilt_from_the_shards_and_nothing_is_lost(
    store: Path, case: str, new_track: str
) -> None:
    before, original = dump_store(store.parent), (store / META).read_text()
    content = DAMAGED_META[case]
    if content is None:
        (store / META).unlink()
    else:
        (store / META).write_text(content)
    info = run_siamrec("--json", "info")
    assert info.returncode == 0 and "Traceback" not in info.stderr, info.stderr
    assert json.loads(info.stdout)["tracks"] == len(before["tracks"]) and json.loads(info.stdout)["playlists"] == 1
    assert json.loads((store / META).read_text()) == json.loads(original)  # rebuilt, as it was
    assert dump_store(store.parent) == before
    if case in ("missing", "empty object"):  # the case: the next add-track deleted every shard
        (store / META).write_text(content or "{}")
        assert run_siamrec("add-track", new_track).returncode == 0
        after = dump_store(store.parent)
        assert {uri: after["tracks"][uri] for uri in before["tracks"]} == before["tracks"]
        assert len(after["tracks"]) == len(before["tracks"]) + 1 and after["playlists"] == before["playlists"]


@pytest.mark.parametrize("command", [("info",), ("add-track", "NEW"), ("playlist", "list")])
def test_metadata_that_cannot_be_rebuilt_is_refused_in_one_line(
    store: Path, command: tuple[str, ...], new_track: str
) -> None:
    (store / META).write_text("[]")
    (store / "tracks" / "edge_config.json").write_text('{"vectors": 7}')
    files = engine_files(store)
    result = run_siamrec(*(new_track if arg == "NEW" else arg for arg in command))
    assert_one_error_line(result, "store restore", alone=True)
    assert engine_files(store) == files


# ---- backup and restore ------------------------------------------------------------------------------------


def test_backup_then_restore_gives_the_same_store(
    store: Path, tmp_path: Path, new_track: str
) -> None:
    before = dump_store(store.parent)
    backup = tmp_path / "saved.gz"
    made = run_siamrec("--json", "store", "backup", str(backup))
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["points"] == {"tracks": len(before["tracks"]), "playlists": 1}
    assert run_siamrec("add-track", new_track).returncode == 0  # change it, then damage it
    (store / META).write_text("[]")
    (store / "tracks" / "edge_config.json").write_text("")
    changed = engine_files(store)
    assert_one_error_line(run_siamrec("store", "restore", str(backup)), "--force", alone=True)
    assert engine_files(store) == changed  # refused: nothing touched
    restored = run_siamrec("--json", "store", "restore", str(backup), "--force")
    assert restored.returncode == 0, restored.stderr
    kept = Path(json.loads(restored.stdout)["replaced"])
    assert engine_files(kept) == changed  # the replaced store is kept aside, as it was
    assert dump_store(store.parent) == before


@pytest.mark.parametrize("damage", ["truncated", "not gzip", "a point too many", "missing"])
def test_a_bad_backup_is_refused_in_one_line_and_the_store_is_left_alone(
    store: Path, tmp_path: Path, damage: str
) -> None:
    backup = tmp_path / "saved.gz"
    assert run_siamrec("store", "backup", str(backup)).returncode == 0
    data = backup.read_bytes()
    if damage == "truncated":
        backup.write_bytes(data[: len(data) // 2])
    elif damage == "not gzip":
        backup.write_text("<html>not a backup</html>")
    elif damage == "a point too many":
        import gzip

        lines = gzip.decompress(data).splitlines(keepends=True)
        backup.write_bytes(gzip.compress(b"".join([*lines[:2], lines[1], *lines[2:]])))
    else:
        backup.unlink()
    before = dump_store(store.parent)
    files = engine_files(store)  # after the dump: opening the store lets the engine rewrite its config
    assert_one_error_line(run_siamrec("store", "restore", str(backup), "--force"), "backup", alone=True)
    assert engine_files(store) == files and dump_store(store.parent) == before
    assert not (store.parent / "store.restoring").exists() or not any((store.parent / "store.restoring").iterdir())


def test_a_running_service_makes_the_backup(
    store: Path, tmp_path: Path, tiny_model: Path
) -> None:
    from tests.service import service_config, serving

    before = dump_store(store.parent)
    backup = tmp_path / "from-service.gz"
    with serving(service_config(store.parent, tiny_model)) as url:
        assert_one_error_line(run_siamrec("store", "backup", str(backup)), "--service", alone=True)
        made = run_siamrec("--json", "store", "backup", str(backup), "--service", url)
        assert made.returncode == 0, made.stderr
    assert not list((store.parent / "backups").glob("*"))  # the service's temporary copy is gone
    other = tmp_path / "other"
    restored = run_siamrec("store", "restore", str(backup), env={**os.environ, "SIAMREC_HOME": str(other)})
    assert restored.returncode == 0, restored.stderr
    assert dump_store(other) == before


# ---- full disk -----------------------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_before_anything_is_written(
    store: Path,
    new_track: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = dump_store(store.parent)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=10 << 20))  # 10 MiB left
    done = invoke("add-track", new_track)
    errors = [line for line in stderr_messages(done.stderr) if not line.startswith("embedding ")]  # in-process progress
    assert done.returncode == 1 and len(errors) == 1 and errors[0].startswith("siamrec: error:"), done.stderr
    assert "not enough free space" in done.stderr and "nothing was written" in done.stderr
    monkeypatch.undo()
    assert dump_store(store.parent) == before


@contextlib.contextmanager
def tmpfs(where: Path, size: str, readonly: bool = False) -> Iterator[Path]:
    """A small tmpfs at `where` (root only; skipped where mounting is not permitted)."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip() or 'not permitted'}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def copy_sparse(source: Path, target: Path) -> None:
    """Copy a store keeping its memory-map files sparse (their holes would not fit a small disk)."""
    subprocess.run(["cp", "-a", "--sparse=always", str(source), str(target)], check=True)


def test_a_disk_that_fills_during_add_track_is_one_line_and_keeps_the_store(
    store: Path, tmp_path: Path, new_track: str
) -> None:
    before, original = dump_store(store.parent), engine_files(store)
    with tmpfs(tmp_path / "small", "40m") as disk:
        copy_sparse(store.parent, disk / "home")
        (disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(disk).free - (2 << 20)))  # 2 MiB left
        result = run_siamrec("add-track", new_track, "--home", str(disk / "home"))
        line = assert_one_error_line(result, "", alone=True)
        assert "free" in line and "Bus error" not in result.stderr
        shutil.copytree(disk / "home", tmp_path / "after")
    assert dump_store(tmp_path / "after") == before
    assert engine_files(tmp_path / "after" / "store").keys() >= original.keys()


# ---- homes that cannot be used -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [*STORE_COMMANDS, ("add-track", "NEW"), ("store", "backup")])
def test_a_home_below_a_file_is_one_line(
    tmp_path: Path, command: tuple[str, ...], new_track: str
) -> None:
    (tmp_path / "file").write_text("not a folder")
    args = [new_track if arg == "NEW" else arg for arg in command]
    assert_one_error_line(run_siamrec(*args, "--home", str(tmp_path / "file" / "x")), "which is a file", alone=True)
    assert (tmp_path / "file").read_text() == "not a folder"


def test_a_read_only_home_is_one_line_for_every_command(
    store: Path, tmp_path: Path, new_track: str
) -> None:
    before = dump_store(store.parent)
    with tmpfs(tmp_path / "ro", "64m") as disk:
        copy_sparse(store.parent, disk / "home")
        assert subprocess.run(["mount", "-o", "remount,ro", str(disk)]).returncode == 0
        word_search = ("playlist", "list", "--words", "mi")  # would build the names' word index
        for command in [*STORE_COMMANDS, word_search, ("add-track", new_track), ("store", "backup")]:
            assert_one_error_line(run_siamrec(*command, "--home", str(disk / "home")), "read-only", alone=True)
        assert_one_error_line(run_siamrec("add-track", new_track, "--home", str(disk / "new")), "read-only", alone=True)
        shutil.copytree(disk / "home", tmp_path / "after")
    assert dump_store(tmp_path / "after") == before


def test_info_on_a_new_home_creates_nothing(tmp_path: Path) -> None:
    result = run_siamrec("--json", "info", "--home", str(tmp_path / "new" / "home"))
    assert result.returncode == 0 and json.loads(result.stdout)["tracks"] == 0, result.stderr
    assert not (tmp_path / "new").exists()


# ---- --qdrant-url at something that is not Qdrant -----------------------------------------------------------

NOT_QDRANT = {
    "html": ("text/html", b"<html><body>Welcome to nginx!</body></html>"),
    "empty object": ("application/json", b"{}"),
    "truncated json": ("application/json", b'{"result": {"collections": [{"na'),
    "null result": ("application/json", b'{"result": null, "status": "ok", "time": 0}'),
}


@contextlib.contextmanager
def answering(content_type: str, body: bytes) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every request with `body`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("answer", sorted(NOT_QDRANT))
def test_a_server_that_is_not_qdrant_is_one_line_for_every_command(
    home: Path, answer: str, new_track: str
) -> None:
    with answering(*NOT_QDRANT[answer]) as url:
        for command in [*STORE_COMMANDS, ("add-track", new_track)]:  # in this process, for speed
            done = invoke(*command, "--qdrant-url", url)
            assert_one_error_line(done, "Qdrant server")
    assert not home.exists()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (("--qdrant-url", "http://[::1"), "not a valid URL"),
        (("--qdrant-url", "http://127.0.0.1:6333", "--qdrant-api-key", "clé-secrète"), "ASCII"),
        (("--qdrant-url", "http://user:pw@127.0.0.1:6333"), "no credentials"),
    ],
)
def test_bad_qdrant_settings_are_one_line_for_every_command(
    home: Path, options: tuple[str, ...], fragment: str
) -> None:
    for command in STORE_COMMANDS:
        done = invoke(*command, *options)
        line = assert_one_error_line(done, fragment)
        assert "secrète" not in line and "pw@" not in line


# ---- model names that are not names ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "evil+adapted", "", "x" * 300, "a b", "tiny\n"])
def test_a_model_name_that_is_not_a_plain_identifier_is_refused_before_any_store(
    home: Path, tmp_path: Path, tiny_model: Path, name: str, new_track: str
) -> None:
    model = onnx.load(str(tiny_model))
    for prop in model.metadata_props:
        if prop.key == "siamrec.name":
            prop.value = name
    onnx.save(model, str(tmp_path / "renamed.onnx"))
    result = run_siamrec("add-track", new_track, "--model", str(tmp_path / "renamed.onnx"))
    assert_one_error_line(result, "is not a usable name", alone=True)
    assert dump_store(home) == {} and not (home / "store" / "tracks").exists()
    if name == "../../x":  # the case left a store even the right model could not open
        assert run_siamrec("add-track", new_track).returncode == 0
        assert os.path.isdir(home / "store" / "tracks") and len(dump_store(home)["tracks"]) == 1
