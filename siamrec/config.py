"""Where things live: flag, then environment, then defaults (embedded Qdrant under SIAMREC_HOME)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from siamrec.errors import ConfigError

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



QDRANT_SCHEMES = ("http", "https")
_HOST = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$")


def check_qdrant_url(url: str) -> str:
    """A Qdrant server URL with scheme, host and port checked, so a typo fails in one line, not a traceback."""
    parsed = urlsplit(url.strip())
    if parsed.scheme.lower() not in QDRANT_SCHEMES:
        raise ConfigError(f"--qdrant-url {url!r}: use http:// or https:// (e.g. http://localhost:6333)")
    if not parsed.hostname or not _HOST.match(parsed.hostname):
        raise ConfigError(f"--qdrant-url {url!r}: the host name is missing or not valid")
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError(f"--qdrant-url {url!r}: the port must be a number from 1 to 65535")
    return url.strip()
