"""Audio manifests: a TSV (with a header) or JSON lines mapping track URIs to files.

The dev corpus's tracks.tsv is one; so is the fetch cache's manifest.tsv. Paths are relative to the
manifest's folder; other columns are ignored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from siamrec.connectors.base import Problem
from siamrec.connectors.files import MANIFEST_BYTES, FileRefused, read_bounded
from siamrec.errors import ConnectorError
from siamrec.logs import get_logger
from siamrec.names import quoted

log = get_logger(__name__)

MANIFEST_NAME = "manifest.tsv"


@dataclass(frozen=True)
class ManifestRow:
    """Where one track's audio came from; `path` is relative to the manifest's folder."""

    track_uri: str
    path: str
    duration_ms: int | None = None
    source_url: str = ""
    extractor: str = ""
    video_id: str = ""
    audio_sha1: str = ""
    fetched_at: str = ""

    def tsv_line(self) -> str:
        values = ["" if value is None else str(value) for value in asdict(self).values()]
        return "\t".join(value.replace("\t", " ").replace("\n", " ") for value in values) + "\n"


MANIFEST_COLUMNS = tuple(f.name for f in fields(ManifestRow))


# ---- reading manifests -------------------------------------------------------------------------------


def read_manifest(path: Path) -> tuple[dict[str, Path], list[Problem]]:
    """track URI → audio file (not checked for existence) from a TSV or JSON-lines manifest; bad lines reported."""
    try:
        text = read_bounded(path, MANIFEST_BYTES).decode("utf-8-sig")
    except (FileRefused, UnicodeDecodeError) as exc:
        raise ConnectorError(f"cannot read audio manifest {quoted(path)}: {exc}") from None
    rows = _jsonl_rows(text) if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else _tsv_rows(text, path)
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    for line_number, row in rows:
        uri, location = _field(row, "track_uri"), _field(row, "path")
        if not uri or not location:
            problems.append(Problem(f"{path}:{line_number}", "no track_uri or path; line skipped"))
            continue
        files[uri] = Path(location) if Path(location).is_absolute() else path.parent / location
    return files, problems


def _field(row: dict[str, Any], key: str) -> str:
    """A manifest field as text; a number, list or object where a string belongs counts as missing."""
    value = row.get(key)
    return value.strip() if isinstance(value, str) else ""


def _tsv_rows(text: str, path: Path) -> list[tuple[int, dict[str, str]]]:
    lines = text.splitlines()
    header = lines[0].split("\t") if lines else []
    if "track_uri" not in header or "path" not in header:
        raise ConnectorError(f"audio manifest {path}: the first line must name the columns, with track_uri and path")
    rows = enumerate(lines[1:], 2)
    return [(n, dict(zip(header, line.split("\t"), strict=False))) for n, line in rows if line.strip()]


def _jsonl_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            value = {}  # a torn or foreign line: reported as a row without track_uri/path
        if value is not None:
            rows.append((n, value if isinstance(value, dict) else {}))
    return rows
