"""The service's configuration: the one Settings of `siamrec serve` (store, model, device; siamrec.config) and
the options only a service has; passed to every uvicorn worker through one environment variable."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from siamrec.config import Settings
from siamrec.errors import ConfigError

CONFIG_ENV = "SIAMREC_SERVE_CONFIG"
API_KEY_ENV = "SIAMREC_API_KEY"
QDRANT_API_KEY_ENV = "SIAMREC_QDRANT_API_KEY"  # a worker's Qdrant key: a secret never goes into CONFIG_ENV
SETTINGS_PATHS = ("home", "model_path", "cache_dir")  # the Settings fields that are paths (JSON holds strings)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one service process needs: the settings resolved once by `siamrec serve` (as for every
    command) and the service's own options; the API key comes from SIAMREC_API_KEY, never a flag."""

    settings: Settings
    host: str = "127.0.0.1"
    max_upload_bytes: int = 200 * 1024 * 1024
    max_body_bytes: int = 8 * 1024 * 1024  # every body except an upload (JSON: playlists, seeds)
    max_duration_s: float = 3600.0
    embed_threads: int = 1
    queue_limit: int = 8  # uploads admitted at once (receiving, decoding, embedding); the next gets 503
    # A request body must arrive within body_timeout_s plus one second per body_min_rate bytes received: a client
    # that trickles bytes is cut off (408) instead of holding an upload slot for as long as it likes; when the
    # queue is full, an upload behind body_min_rate is cut at once to let a new one in.
    body_timeout_s: float = 30.0
    body_min_rate: int = 32_000
    header_timeout_s: float = 10.0  # a request's head (request line and headers) must arrive within this
    retry_after_s: int = 5
    allow_fetch: bool = False
    fetch_allow_networks: tuple[str, ...] = ()  # private networks an operator explicitly trusts for fetching
    fetch_deadline_s: float = 60.0  # a whole URL fetch, redirects included: a trickling server is cut off
    cors_origins: tuple[str, ...] = ()
    metric: str = "auto"  # plain, adapted (the store's `siamrec adapt` metric) or auto (adapted when stored)
    api_key: str | None = field(default=None, repr=False)

    def checked(self) -> ServiceConfig:
        """Refuse configurations that would expose the store: off-loopback without a key, bad networks."""
        if self.api_key is not None:
            _check_api_key(self.api_key)
        if self.host not in LOOPBACK_HOSTS and not self.api_key:
            raise ConfigError(
                f"binding to {self.host} exposes the store: set {API_KEY_ENV} to a secret clients must send, "
                "or bind to 127.0.0.1"
            )
        for network in self.fetch_allow_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigError(f"--fetch-allow-network {network!r}: {exc}") from exc
        if self.queue_limit < 1 or self.embed_threads < 1:
            raise ConfigError("--queue-limit and --embed-threads must be at least 1")
        if min(self.body_timeout_s, self.header_timeout_s, self.body_min_rate, self.fetch_deadline_s) <= 0:
            raise ConfigError(
                "--body-timeout-s, --fetch-deadline-s, the header timeout and the minimum body rate must be positive"
            )
        return self

    def to_environment(self) -> str:
        """JSON for CONFIG_ENV, without the keys (workers read SIAMREC_API_KEY and SIAMREC_QDRANT_API_KEY)."""
        options = {k: v for k, v in asdict(self).items() if k not in ("api_key", "settings")}
        settings = {k: v for k, v in asdict(self.settings).items() if k != "qdrant_api_key"}
        return json.dumps({**options, "settings": settings}, default=str)

    @classmethod
    def from_environment(cls) -> ServiceConfig:
        """The configuration `siamrec serve` resolved, as a worker process rebuilds it (nothing resolved again)."""
        raw: dict[str, Any] = json.loads(os.environ.get(CONFIG_ENV) or "{}")
        for key in ("fetch_allow_networks", "cors_origins"):
            raw[key] = tuple(raw.get(key, ()))
        raw["settings"] = _settings_from_json(raw.get("settings") or {})
        return cls(**raw, api_key=os.environ.get(API_KEY_ENV)).checked()


def _settings_from_json(raw: dict[str, Any]) -> Settings:
    """Settings from ServiceConfig.to_environment's JSON, the Qdrant key from this process's environment."""
    values = {k: Path(v) if k in SETTINGS_PATHS and v is not None else v for k, v in raw.items()}
    return Settings(**values, qdrant_api_key=os.environ.get(QDRANT_API_KEY_ENV) or None)


def _check_api_key(key: str) -> None:
    """A key clients can send: an HTTP header holds printable ASCII and loses spaces at its ends."""
    if not key.strip():
        raise ConfigError(f"{API_KEY_ENV} is set but blank: set it to a secret clients must send, or unset it")
    if key != key.strip() or not all(" " <= c <= "~" for c in key):
        raise ConfigError(
            f"{API_KEY_ENV} holds spaces at its ends, control or non-ASCII characters, which an HTTP header cannot "
            "carry: use printable ASCII"
        )
