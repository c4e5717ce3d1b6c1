"""The fetch cache: fetched audio by track URI, one folder per track holding the audio and its manifest row,
moved into place by one rename (a killed fetch leaves nothing half-done, nothing is downloaded twice).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from siamrec.audio import file_sha1
from siamrec.connectors.manifest import MANIFEST_COLUMNS, MANIFEST_NAME, ManifestRow, read_manifest
from siamrec.errors import ConnectorError
from siamrec.logs import get_logger

log = get_logger(__name__)

ROW_NAME = "row.json"


# ---- the fetch cache ------------------------------------------------------------------------------------


def cache_key(uri: str) -> str:
    """A readable, filesystem-safe, collision-free folder name for a track URI."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", uri)[:80]
    return f"{readable}-{hashlib.sha1(uri.encode()).hexdigest()[:8]}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AudioCache:
    """Fetched audio by track URI: `<root>/<key>/audio.opus` + `row.json`, listed in `<root>/manifest.tsv`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"
        self.manifest = root / MANIFEST_NAME
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._listed = set(read_manifest(self.manifest)[0]) if self.manifest.is_file() else set()
        self._remove_stale_work()

    def _remove_stale_work(self) -> None:
        """Work folders of processes that died mid-download (named `<key>.<pid>.<thread>`)."""
        for work in self.tmp.iterdir():
            parts = work.name.rsplit(".", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            if pid is None or not _alive(pid):
                shutil.rmtree(work, ignore_errors=True)

    def work_dir(self, uri: str) -> Path:
        work = self.tmp / f"{cache_key(uri)}.{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return work

    def row(self, uri: str) -> ManifestRow | None:
        """The cached row (and audio) for `uri`, or None; a row missing from manifest.tsv is appended."""
        try:
            row = ManifestRow(**json.loads((self.root / cache_key(uri) / ROW_NAME).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        if not (self.root / row.path).is_file():
            return None
        if uri not in self._listed:  # killed between the rename and the manifest append
            self._append(row)
        return row

    def path(self, uri: str) -> Path | None:
        row = self.row(uri)
        return self.root / row.path if row else None

    def put_download(
        self, work: Path, audio: Path, track_uri: str, *, duration_ms: int | None, source_url: str, extractor: str,
        video_id: str,
    ) -> Path:  # fmt: skip
        """Cache a finished download with its manifest row (path, sha1 and time filled in here)."""
        row = ManifestRow(
            track_uri=track_uri,
            path=f"{cache_key(track_uri)}/audio{audio.suffix}",
            duration_ms=duration_ms,
            source_url=source_url,
            extractor=extractor,
            video_id=video_id,
            audio_sha1=file_sha1(audio),
            fetched_at=now_iso(),
        )
        return self.put(work, audio, row)

    def put(self, work: Path, audio: Path, row: ManifestRow) -> Path:
        """Move a finished download into the cache in one rename, then list it in the manifest."""
        final = self.root / cache_key(row.track_uri)
        audio.rename(work / f"audio{audio.suffix}")
        (work / ROW_NAME).write_text(json.dumps(asdict(row)), encoding="utf-8")
        try:
            work.rename(final)
        except OSError:  # another process cached it meanwhile: keep theirs
            shutil.rmtree(work, ignore_errors=True)
        cached = self.row(row.track_uri)
        if cached is None:
            raise ConnectorError(f"{row.track_uri}: could not store the download in {final}")
        return self.root / cached.path

    def _append(self, row: ManifestRow) -> None:
        with self._lock:
            new = not self.manifest.is_file() or self.manifest.stat().st_size == 0
            with open(self.manifest, "a", encoding="utf-8") as handle:
                if new:
                    handle.write("\t".join(MANIFEST_COLUMNS) + "\n")
                elif not _ends_with_newline(self.manifest):
                    handle.write("\n")  # a line torn by a kill stays one bad line, not two
                handle.write(row.tsv_line())
                handle.flush()
                os.fsync(handle.fileno())
            self._listed.add(row.track_uri)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
