"""Where things live: flag, then environment, then defaults (embedded Qdrant under SIAMREC_HOME)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("~/.siamrec")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration for one command."""

    home: Path
    qdrant_url: str | None
    qdrant_api_key: str | None
    model_path: Path | None
    device: str

    @property
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


def resolve_settings(
    home: str | None = None,
    qdrant_url: str | None = None,
    qdrant_api_key: str | None = None,
    model: str | None = None,
    device: str = "auto",
) -> Settings:
    """Flags win over SIAMREC_* environment variables, which win over the defaults."""
    home_path = Path(home or os.environ.get("SIAMREC_HOME") or DEFAULT_HOME).expanduser()
    model_value = model or os.environ.get("SIAMREC_MODEL")
    return Settings(
        home=home_path,
        qdrant_url=qdrant_url or os.environ.get("SIAMREC_QDRANT_URL") or None,
        qdrant_api_key=qdrant_api_key or os.environ.get("SIAMREC_QDRANT_API_KEY") or None,
        model_path=Path(model_value).expanduser() if model_value else None,
        device=device,
    )
