"""Where the store keeps its adapted metric: two points per model in a small `siamrec_meta` collection.

The map travels with the store (embedded folder or Qdrant server alike), so every process that opens the store
ranks the same way. One point holds what the map is (its summary: fitted on what, ready or not); the other its
arrays, as base64 of their float64 bytes (exact, and one payload string instead of a D×D list of numbers for the
engine to convert). They are apart because the engine reads a point's payload whole: at 1,296-d the arrays are
18 MB, 0.4 s to read, which `info`, `recommend --playlist` and every write without an adaptation never need.
The summary names its arrays by their SHA-1 and is written after them, so a save cut between the two is found
on the next read. A store written before the split keeps the arrays inside its summary point and still reads.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from siamrec.errors import StoreError
from siamrec.store.backend import Backend, Point
from siamrec.uris import point_id
from siamrec.whitening import ADAPT_VERSION, READABLE_VERSIONS, Whitening

META_COLLECTION = "siamrec_meta"
META_VECTOR = {"unit": 1}  # engines want a vector per collection; the meta points carry none
ARRAYS = ("mean", "transform")


@dataclass(frozen=True)
class Adaptation:
    """A fitted within-playlist whitening (and projection) for one model, and what it was fitted on.

    `ready` turns true once every stored vector has its adapted twin: until then queries keep the plain metric.
    `auto` asks sync and playlist commands to refit after they change playlists.
    """

    whitening: Whitening
    playlist_uris: list[str]
    fitted_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    ready: bool = False
    auto: bool = False

    def finished(self) -> Adaptation:
        return replace(self, ready=True)

    def summary(self) -> dict[str, Any]:
        """What `siamrec adapt` and `info` report (no arrays)."""
        w = self.whitening
        return {
            "version": w.version,
            "dim": w.dim,
            "playlists": w.playlists,
            "tracks": w.tracks,
            "shrinkage": round(w.shrinkage, 6),
            "projected": w.projected,
            "chosen_by": w.chosen_by,
            "fitted_at": self.fitted_at,
            "ready": self.ready,
            "auto": self.auto,
        }


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode("ascii")


def _decode(text: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").reshape(shape).copy()


def adaptation_id(model: str) -> str:
    return point_id(f"siamrec:adaptation:{model}")


def arrays_id(model: str) -> str:
    return point_id(f"siamrec:adaptation:{model}:arrays")


def arrays_payload(model: str, whitening: Whitening) -> dict[str, Any]:
    mean, transform = _encode(whitening.mean), _encode(whitening.transform)
    return {"kind": "adaptation-arrays", "model": model, "mean": mean, "transform": transform,
            "sha1": _digest(mean, transform)}  # fmt: skip


def _digest(mean: str, transform: str) -> str:
    return hashlib.sha1(f"{mean}/{transform}".encode("ascii")).hexdigest()


def to_payload(model: str, adaptation: Adaptation, arrays_sha1: str) -> dict[str, Any]:
    """The summary point's payload: what the map is, and the digest of the arrays it goes with."""
    return {
        "kind": "adaptation",
        "model": model,
        **adaptation.summary(),
        "playlist_uris": list(adaptation.playlist_uris),
        "arrays_sha1": arrays_sha1,
    }


def from_payload(payload: dict[str, Any]) -> Adaptation:
    """An adaptation from its summary payload with the arrays beside it (`mean`, `transform` keys)."""
    _check_version(payload)
    try:
        dim = int(payload["dim"])
        whitening = Whitening(
            _decode(payload["mean"], (dim,)),
            _decode(payload["transform"], (dim, dim)),
            float(payload["shrinkage"]),
            int(payload["playlists"]),
            int(payload["tracks"]),
            int(payload["version"]),
            int(payload.get("projected", 0)),
            str(payload.get("chosen_by", "given")),
        )
        return Adaptation(
            whitening,
            list(payload.get("playlist_uris") or []),
            str(payload["fitted_at"]),
            bool(payload["ready"]),
            bool(payload.get("auto", False)),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"the stored adaptation is damaged ({exc}): re-run `siamrec adapt`") from exc


def summary_of(payload: dict[str, Any]) -> dict[str, Any]:
    """What `Adaptation.summary()` says, from a summary payload, without decoding its arrays."""
    _check_version(payload)
    try:
        return {
            "version": int(payload["version"]),
            "dim": int(payload["dim"]),
            "playlists": int(payload["playlists"]),
            "tracks": int(payload["tracks"]),
            "shrinkage": round(float(payload["shrinkage"]), 6),
            "projected": int(payload.get("projected", 0)),
            "chosen_by": str(payload.get("chosen_by", "given")),
            "fitted_at": str(payload["fitted_at"]),
            "ready": bool(payload["ready"]),
            "auto": bool(payload.get("auto", False)),
        }
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"the stored adaptation is damaged ({exc}): re-run `siamrec adapt`") from exc


def _check_version(payload: dict[str, Any]) -> None:
    if payload.get("version") not in READABLE_VERSIONS:
        raise StoreError(f"the stored adaptation has version {payload.get('version')}, not {ADAPT_VERSION}: re-run "
                         "`siamrec adapt`")  # fmt: skip


def load_summary(backend: Backend, model: str) -> dict[str, Any] | None:
    """The stored adaptation's summary (ready, auto, fitted on what), its arrays left unread."""
    if backend.vectors(META_COLLECTION) is None:
        return None
    hits = backend.retrieve(META_COLLECTION, [adaptation_id(model)])
    return summary_of(hits[0].payload) if hits else None


def load(backend: Backend, model: str) -> Adaptation | None:
    """The stored adaptation with its arrays (from the summary point itself in a store written before the split)."""
    if backend.vectors(META_COLLECTION) is None:
        return None
    hits = backend.retrieve(META_COLLECTION, [adaptation_id(model)])
    if not hits:
        return None
    summary = hits[0].payload
    if all(key in summary for key in ARRAYS):
        return from_payload(summary)
    found = backend.retrieve(META_COLLECTION, [arrays_id(model)])
    arrays = found[0].payload if found else {}
    mean, transform = arrays.get("mean"), arrays.get("transform")
    if not (isinstance(mean, str) and isinstance(transform, str)) or _digest(mean, transform) != summary.get(
        "arrays_sha1"
    ):
        raise StoreError("the stored adaptation is damaged (its map is missing or is not the one its summary names, "
                         "as a save cut short leaves it): re-run `siamrec adapt`")  # fmt: skip
    return from_payload({**summary, "mean": mean, "transform": transform})


def save(backend: Backend, model: str, adaptation: Adaptation | None, arrays_sha1: str | None = None) -> str | None:
    """Store (or, with None, remove) the model's adaptation: its arrays first, then the summary that names them;
    returns the arrays' digest. `arrays_sha1`: the arrays with that digest are stored already (only the summary
    changed, e.g. it became ready)."""
    if backend.vectors(META_COLLECTION) is None:
        if adaptation is None:
            return None
        backend.create(META_COLLECTION, META_VECTOR, ())
    if adaptation is None:
        backend.delete(META_COLLECTION, [adaptation_id(model), arrays_id(model)])
        return None
    if arrays_sha1 is None:
        arrays = arrays_payload(model, adaptation.whitening)
        backend.upsert(META_COLLECTION, [Point(arrays_id(model), {}, arrays)])
        arrays_sha1 = str(arrays["sha1"])
    backend.upsert(META_COLLECTION, [Point(adaptation_id(model), {}, to_payload(model, adaptation, arrays_sha1))])
    return arrays_sha1
