"""Moving an old embedded store (qdrant-client's local mode) into Qdrant Edge, keeping the old one as a backup.

The copy is written to `<home>/store.partial` and renamed to `<home>/store` only once every point of every
collection is there, so an interrupted migration leaves the old store as it was and simply runs again.
The old folder (`<home>/qdrant`) is never written to: it stays as the backup until the user deletes it.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from siamrec import constants as C
from siamrec.config import Settings
from siamrec.errors import StoreError
from siamrec.store.adaptation import META_COLLECTION
from siamrec.store.backend import Backend, Point
from siamrec.store.layout import EXACT
from siamrec.store.location import embedded_path
from siamrec.store.records import (
    PLAYLIST_INDEXES,
    PLAYLIST_KEYWORD_FIELDS,
    TRACK_KEYWORD_FIELDS,
    playlist_from_payload,
    playlist_payload,
)

log = logging.getLogger(__name__)
COPY_BATCH = 1000


@dataclass
class MigrationReport:
    source: str
    target: str
    points: dict[str, int] = field(default_factory=dict)
    migrated: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.target,
            "migrated": self.migrated,
            "points": self.points,
            "note": self.note,
        }


def old_store_path(settings: Settings) -> Path | None:
    """The local-mode store under SIAMREC_HOME, when there is one with collections in it."""
    path = settings.qdrant_path
    return path if (path / "collection").is_dir() and any((path / "collection").iterdir()) else None


# Every collection siamrec keeps: tracks, playlists and the adapted metric (siamrec.store.adaptation).
COPIED = (C.TRACKS_COLLECTION, C.PLAYLISTS_COLLECTION, META_COLLECTION)


def copy_collections(
    source: Backend, target: Backend, report: MigrationReport | None = None, what: str = "migration"
) -> dict[str, int]:
    """Every collection, point, vector and payload from `source` into `target`, checked by count; returns the
    points copied per collection."""

    keys = {C.TRACKS_COLLECTION: TRACK_KEYWORD_FIELDS, C.PLAYLISTS_COLLECTION: PLAYLIST_KEYWORD_FIELDS}
    copied_points: dict[str, int] = {}
    for collection in COPIED:
        keyword_fields = keys.get(collection, ())
        vectors = source.vectors(collection)
        if vectors is None:
            continue
        indexes = PLAYLIST_INDEXES if collection == C.PLAYLISTS_COLLECTION else None
        target.create(collection, vectors, keyword_fields, indexes)
        batch: list[Point] = []
        copied = 0
        for hit in source.scroll(collection, vectors=list(vectors)):
            payload = hit.payload
            if collection == C.PLAYLISTS_COLLECTION:  # add the name fields older stores lack
                payload = {**payload, **playlist_payload(playlist_from_payload(payload))}
            batch.append(Point(hit.id, hit.vectors, payload))
            if len(batch) >= COPY_BATCH:
                target.upsert(collection, batch)
                copied += len(batch)
                batch = []
        if batch:
            target.upsert(collection, batch)
            copied += len(batch)
        expected = source.count(collection)
        if target.count(collection) != expected or copied != expected:
            raise StoreError(f"{what} of '{collection}' copied {copied} of {expected} points: the old store is kept")
        copied_points[collection] = copied
        if report is not None:
            report.points[collection] = copied
    return copied_points


def migrate(settings: Settings) -> MigrationReport:
    """Copy the old local-mode store into the embedded Qdrant Edge store (the old one is kept as it is)."""
    from siamrec.store.client import ClientBackend
    from siamrec.store.edge import EdgeBackend, holds_data

    target = embedded_path(settings)
    old = old_store_path(settings)
    report = MigrationReport(str(old or settings.qdrant_path), str(target))
    if old is None:
        report.note = f"no old local-mode store at {report.source}"
        return report
    if holds_data(target):
        report.note = f"{target} already holds a store (move it away to migrate {old} again)"
        return report
    partial = target.with_name(target.name + ".partial")
    source = ClientBackend.local(str(old))
    try:
        shutil.rmtree(partial, ignore_errors=True)  # an interrupted earlier attempt
        edge = EdgeBackend(partial, EXACT)
        try:
            copy_collections(source, edge, report)
            edge.optimize()
        finally:
            edge.close()
    finally:
        source.close()
    if holds_data(target):  # a store appeared meanwhile: keep it, and the copy beside it
        raise StoreError(f"{target} now holds a store: the migrated copy is left in {partial}")
    shutil.rmtree(target, ignore_errors=True)  # only an empty, lock-only folder can be here
    os.replace(partial, target)
    report.migrated = True
    return report


def migrate_if_needed(settings: Settings) -> None:
    """Run on every open of the embedded store: an old local-mode store with no new store beside it moves over."""
    from siamrec.store.edge import holds_data

    if old_store_path(settings) is None or holds_data(embedded_path(settings)):
        return
    report = migrate(settings)
    log.warning(
        "migrated the store at %s to %s (%s points); the old folder is kept as a backup: delete it when done",
        report.source,
        report.target,
        sum(report.points.values()),
    )
