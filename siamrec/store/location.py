"""Where a store lives: a Qdrant server by URL, or the embedded store under SIAMREC_HOME (an old one migrated
first); read-only commands ask whether one exists before they open it."""

from __future__ import annotations

from pathlib import Path

from siamrec.config import Settings
from siamrec.store.backend import Backend


def embedded_path(settings: Settings) -> Path:
    """Where the embedded (Qdrant Edge) store lives under SIAMREC_HOME."""
    return settings.home / "store"


def store_exists(settings: Settings) -> bool:
    """Whether opening the store would find data: always for a server, else an embedded store (or an old one to
    migrate) under SIAMREC_HOME. Read-only commands ask first, so they never create a store or a home."""
    if settings.qdrant_url:
        return True
    from siamrec.store.edge import holds_data
    from siamrec.store.migrate import old_store_path

    return holds_data(embedded_path(settings)) or old_store_path(settings) is not None


def open_backend(settings: Settings) -> Backend:
    """A server backend when a URL is configured, else the embedded store (migrating an old one first)."""
    if settings.qdrant_url:
        from siamrec.store.client import ClientBackend

        return ClientBackend.server(settings.qdrant_url, settings.qdrant_api_key)
    from siamrec.store.edge import EdgeBackend
    from siamrec.store.migrate import migrate_if_needed

    migrate_if_needed(settings)
    return EdgeBackend(embedded_path(settings))
