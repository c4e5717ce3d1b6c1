"""Where the store keeps its adapted metric: one point per model in a small `siamrec_meta` collection.

The map travels with the store (embedded folder or Qdrant server alike), so every process that opens the store
ranks the same way. Arrays are stored as base64 of their float64 bytes: exact, and one payload string instead of
a D×D list of numbers for the engine to convert.
"""

from __future__ import annotations

import base64
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


def to_payload(model: str, adaptation: Adaptation) -> dict[str, Any]:
    w = adaptation.whitening
    return {
        "kind": "adaptation",
        "model": model,
        **adaptation.summary(),
        "mean": _encode(w.mean),
        "transform": _encode(w.transform),
        "playlist_uris": list(adaptation.playlist_uris),
    }


def from_payload(payload: dict[str, Any]) -> Adaptation:
    if payload.get("version") not in READABLE_VERSIONS:
        raise StoreError(f"the stored adaptation has version {payload.get('version')}, not {ADAPT_VERSION}: re-run "
                         "`siamrec adapt`")  # fmt: skip
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


def load(backend: Backend, model: str) -> Adaptation | None:
    if backend.vectors(META_COLLECTION) is None:
        return None
    hits = backend.retrieve(META_COLLECTION, [adaptation_id(model)])
    return from_payload(hits[0].payload) if hits else None


def save(backend: Backend, model: str, adaptation: Adaptation | None) -> None:
    """Store (or, with None, remove) the model's adaptation."""
    if backend.vectors(META_COLLECTION) is None:
        if adaptation is None:
            return
        backend.create(META_COLLECTION, META_VECTOR, ())
    if adaptation is None:
        backend.delete(META_COLLECTION, [adaptation_id(model)])
    else:
        backend.upsert(META_COLLECTION, [Point(adaptation_id(model), {}, to_payload(model, adaptation))])
