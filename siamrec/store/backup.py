"""Backups of the embedded store: one file, written under the store's lock, restored all at once or not at all.

A backup is the store's content, not its engine files: a gzip of JSON lines (a header naming each collection's
vectors and point count, one line per point with its payload and its vectors as base64 float32, then an end
line with the counts), so it is exact, compact (memory-map holes are not copied) and checked line by line.
It is taken where no write can interleave: by `siamrec store backup` holding the store's lock, or by a running
`siamrec serve` in its one store thread (`POST /store/backup`). A restore reads the whole file first, builds
the store beside the current one (`store.restoring`), checks every count, and only then swaps the two folders
in one rename; the store it replaces is kept as `store.replaced-<time>`.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import gzip
import json
import os
import shutil
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from siamrec.config import Settings
from siamrec.errors import ConfigError, NotFoundError, StoreError
from siamrec.store.backend import EVERYTHING, Backend, Hit, Where
from siamrec.store.disk import check_room, disk_error
from siamrec.store.location import embedded_path
from siamrec.store.migrate import COPIED, copy_collections

FORMAT = 1
SUFFIX = ".siamrec-backup.gz"
RESTORING = "store.restoring"
POINT_OVERHEAD = 600  # bytes a point's id, keys and compressed payload take in the file, roughly
RENAME_EXCHANGE = 2  # renameat2 flag: swap two paths in one step (Linux 3.15+)
AT_FDCWD = -100


@dataclass
class BackupReport:
    path: str
    collections: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    created_at: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "points": self.collections, "bytes": self.bytes, "created_at": self.created_at}


@dataclass
class RestoreReport:
    source: str
    store: str
    collections: dict[str, int] = field(default_factory=dict)
    replaced: str | None = None  # where the store that was there before now is (None: there was none)

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "store": self.store, "points": self.collections, "replaced": self.replaced}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def default_backup_path(settings: Settings) -> Path:
    return settings.home / "backups" / f"store-{_stamp()}{SUFFIX}"


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def write_backup(source: Backend, path: Path) -> BackupReport:
    """Write every collection siamrec keeps in `source` to `path` (via a `.partial` file renamed when complete).

    The caller makes sure nothing writes meanwhile (the store's lock, or the service's one store thread).
    """
    collections = {name: vectors for name in COPIED if (vectors := source.vectors(name)) is not None}
    counts = {name: source.count(name) for name in collections}
    report = BackupReport(str(path), created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    needed = sum(n * (sum(collections[c].values()) * 4 * 4 // 3 + POINT_OVERHEAD) for c, n in counts.items())
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_room(path.parent, needed, "the backup")
        written = {name: 0 for name in collections}
        with open(partial, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as packed:
                header = {
                    "siamrec_backup": FORMAT,
                    "created_at": report.created_at,
                    "collections": {c: {"vectors": collections[c], "points": counts[c]} for c in collections},
                }
                packed.write(json.dumps(header).encode() + b"\n")
                for name, vectors in collections.items():
                    for hit in source.scroll(name, vectors=list(vectors)):
                        encoded = {k: _b64(v) for k, v in hit.vectors.items()}
                        line = {"c": name, "id": hit.id, "p": hit.payload, "v": encoded}
                        packed.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
                        written[name] += 1
                packed.write(json.dumps({"end": written}).encode() + b"\n")
            raw.flush()
            os.fsync(raw.fileno())
        if written != counts:  # cannot happen while nothing writes: refuse to call it a backup if it did
            raise StoreError(f"the store changed while it was being backed up ({written} of {counts}): run it again")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise disk_error(path.parent, exc) or StoreError(f"cannot write the backup {path}: {exc.strerror}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    report.collections = counts
    report.bytes = path.stat().st_size
    return report


class BackupFile:
    """A backup read back: the Backend calls `copy_collections` needs (vectors, scroll, count), checked as read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        header = next(self._lines(), None)
        if not isinstance(header, dict) or header.get("siamrec_backup") != FORMAT:
            raise self._bad("it does not start with a siamrec backup header")
        collections = header.get("collections")
        if not isinstance(collections, dict) or not all(self._valid_entry(v) for v in collections.values()):
            raise self._bad("its header does not list collections")
        self._collections: dict[str, dict[str, Any]] = collections
        self.created_at = str(header.get("created_at", ""))

    @staticmethod
    def _valid_entry(entry: object) -> bool:
        if not isinstance(entry, dict) or type(entry.get("points")) is not int or entry["points"] < 0:
            return False
        vectors = entry.get("vectors")
        return isinstance(vectors, dict) and all(type(d) is int and d > 0 for d in vectors.values())

    def _bad(self, why: str) -> StoreError:
        return StoreError(f"{self.path} is not a complete siamrec backup ({why}): nothing was changed")

    def _lines(self) -> Iterator[Any]:
        try:
            with gzip.open(self.path, "rb") as handle:
                for line in handle:
                    yield json.loads(line)
        except FileNotFoundError:
            raise ConfigError(f"no backup at {self.path}") from None
        except IsADirectoryError:
            raise ConfigError(f"{self.path} is a folder; name a backup file") from None
        except (OSError, EOFError, zlib.error, ValueError) as exc:  # not gzip, cut short, not JSON
            raise self._bad(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    @property
    def counts(self) -> dict[str, int]:
        return {name: int(entry["points"]) for name, entry in self._collections.items()}

    def needed_bytes(self) -> int:
        """About what the restored store takes on disk (vectors in memory maps and the log, payloads)."""
        entries = self._collections.values()
        return sum(e["points"] * (sum(e["vectors"].values()) * 4 * 3 + 3 * POINT_OVERHEAD) for e in entries)

    def verify(self) -> None:
        """Read the whole file: every line well formed, the counts as the header and end line say."""
        seen = {name: 0 for name in self._collections}
        end = None
        for kind, value in self._points_and_end():
            if kind == "point":
                seen[value] += 1
            else:
                end = value
        if end is None:
            raise self._bad("it ends before its last line")
        if end != seen or seen != self.counts:
            raise self._bad(f"it holds {seen} points where it promises {self.counts}")

    def _points_and_end(self) -> Iterator[tuple[str, Any]]:
        lines = self._lines()
        next(lines, None)
        for line in lines:
            if isinstance(line, dict) and set(line) == {"end"}:
                yield ("end", line["end"])
                continue
            self._point(line)
            yield ("point", line["c"])

    def _point(self, line: Any) -> Hit:
        if not (isinstance(line, dict) and line.get("c") in self._collections and isinstance(line.get("id"), str)):
            raise self._bad("a line is not a point of a listed collection")
        payload, encoded = line.get("p"), line.get("v")
        dims = self._collections[line["c"]]["vectors"]
        if not isinstance(payload, dict) or not isinstance(encoded, dict) or not set(encoded) <= set(dims):
            raise self._bad(f"point {line['id']} is not well formed")
        vectors = {}
        for name, text in encoded.items():
            try:
                vector = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4").astype(np.float32)
            except (ValueError, TypeError) as exc:
                raise self._bad(f"point {line['id']}: vector {name} is not base64") from exc
            if vector.shape != (dims[name],) or not np.isfinite(vector).all():
                raise self._bad(f"point {line['id']}: vector {name} is not {dims[name]} finite numbers")
            vectors[name] = vector
        return Hit(line["id"], payload, vectors)

    # ---- the Backend calls copy_collections makes ----------------------------------------------------

    def vectors(self, collection: str) -> dict[str, int] | None:
        entry = self._collections.get(collection)
        return None if entry is None else dict(entry["vectors"])

    def count(self, collection: str, where: Where = EVERYTHING) -> int:
        return int(self._collections[collection]["points"])

    def scroll(
        self, collection: str, where: Where = EVERYTHING, vectors: Sequence[str] = (), with_payload: bool = True,
        start: str | None = None,
    ) -> Iterator[Hit]:  # fmt: skip
        if start is not None:
            raise ValueError("a backup is read whole, in the order it was written")
        lines = self._lines()
        next(lines, None)
        for line in lines:
            if isinstance(line, dict) and line.get("c") == collection:
                yield self._point(line)


def backup(settings: Settings, path: Path | None) -> BackupReport:
    """Back up the embedded store under its lock (refused while another process, e.g. `serve`, holds it)."""
    from siamrec.store.edge import EdgeBackend, holds_data

    if settings.qdrant_url:
        raise ConfigError("store backup copies the embedded store; a Qdrant server keeps its own snapshots")
    root = embedded_path(settings)
    if not holds_data(root):
        raise NotFoundError(f"no store at {root} to back up")
    target = path or default_backup_path(settings)
    edge = EdgeBackend(root)
    try:
        return write_backup(edge, target)
    finally:
        edge.close()


def restore(settings: Settings, source: Path, force: bool = False) -> RestoreReport:
    """Replace the embedded store by the backup at `source`, all at once: the current store is kept aside."""
    from siamrec.store.disk import take_lock
    from siamrec.store.edge import EdgeBackend, holds_data

    if settings.qdrant_url:
        raise ConfigError("store restore writes the embedded store; a Qdrant server restores its own snapshots")
    backup_file = BackupFile(source)
    backup_file.verify()  # the whole file, before anything is touched
    root = embedded_path(settings)
    report = RestoreReport(str(source), str(root), backup_file.counts)
    building = root.with_name(RESTORING)
    lock = take_lock(root)  # no other process may use the store while it is replaced
    try:
        had_data = holds_data(root)
        if had_data and not force:
            raise StoreError(
                f"the store at {root} holds data: pass --force to replace it (it is kept as store.replaced-<time>)"
            )
        check_room(root.parent, backup_file.needed_bytes(), "the restored store")
        shutil.rmtree(building, ignore_errors=True)  # what an interrupted restore left
        edge = EdgeBackend(building)
        try:
            copy_collections(backup_file, edge, what="restore")  # type: ignore[arg-type]
            edge.optimize()
        finally:
            edge.close()
        _exchange(building, root)
        if had_data:
            aside = root.with_name(f"store.replaced-{_stamp()}")
            os.replace(building, aside)
            report.replaced = str(aside)
        else:
            shutil.rmtree(building, ignore_errors=True)
    except OSError as exc:
        raise disk_error(root, exc) or StoreError(f"cannot restore into {root}: {exc.strerror}") from exc
    finally:
        os.close(lock)
    return report


def _exchange(new: Path, current: Path) -> None:
    """Swap two folders in one step (renameat2 RENAME_EXCHANGE), so the store is always whole; where the system
    cannot, move the current one aside and the new one in (the store is missing for that instant only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        result = renameat2(AT_FDCWD, os.fsencode(new), AT_FDCWD, os.fsencode(current), RENAME_EXCHANGE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(current))
    aside = new.with_name(new.name + ".old")
    os.replace(current, aside)
    os.replace(new, current)
    os.replace(aside, new)


SERVICE_ROUTE = "/store/backup"
API_KEY_ENV = "SIAMREC_API_KEY"  # the key `siamrec serve` asks for (siamrec.service.config)
FETCH_TIMEOUT_S = 600.0


def fetch_backup(service: str, path: Path) -> BackupReport:
    """Ask a running `siamrec serve` for a backup (`POST /store/backup`) and keep it at `path` once the whole
    file has been checked: a cut-off download never passes for a backup."""
    import httpx

    from siamrec.redact import one_line

    url = service.rstrip("/") + SERVICE_ROUTE
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--service {service!r}: give the service's address, e.g. http://127.0.0.1:8750")
    key = os.environ.get(API_KEY_ENV) or ""
    headers = {"X-API-Key": key} if key else {}
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with httpx.stream("POST", url, headers=headers, timeout=httpx.Timeout(FETCH_TIMEOUT_S, connect=10.0)) as got:
            if got.status_code != 200:
                got.read()
                raise StoreError(f"{url} answered {got.status_code}: {one_line(_problem_detail(got), key)}")
            with open(partial, "wb") as handle:
                for chunk in got.iter_bytes():
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        checked = BackupFile(partial)
        checked.verify()
        os.replace(partial, path)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"cannot get a backup from {url}: {one_line(exc, key)}") from exc
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise disk_error(path.parent, exc) or StoreError(f"cannot write the backup {path}: {exc.strerror}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport(str(path), checked.counts, path.stat().st_size, checked.created_at)


def _problem_detail(response: Any) -> str:
    """A problem document's detail (or title), else the start of the body."""
    try:
        problem = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(problem, dict):
        return str(problem.get("detail") or problem.get("title") or "")
    return ""
