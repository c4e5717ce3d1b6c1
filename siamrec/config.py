"""The one settings object: flag, then environment, then defaults that follow the platform's conventions.

`resolve_settings` runs once per command (the CLI's global options, or `siamrec serve`'s, which the service
keeps): every part of siamrec reads where the store is, which Qdrant, which model and which device from the
`Settings` it returns, never from the environment again. Data (the embedded store, tokens) go to the
platform's user data folder and downloads to its cache folder (platformdirs: ~/.local/share/siamrec and
~/.cache/siamrec on Linux). SIAMREC_HOME (or --home) puts both under one folder instead, and a ~/.siamrec made
by an earlier siamrec keeps being used as that folder. No --model and no SIAMREC_MODEL: the shipped model.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from siamrec.errors import ConfigError, ModelError

LEGACY_HOME = Path("~/.siamrec")
APP_NAME = "siamrec"
DEFAULT_MODEL = Path(__file__).parent / "assets" / "default.onnx"  # shipped in the wheel (package data)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration for one command."""

    home: Path
    qdrant_url: str | None
    qdrant_api_key: str | None
    model_path: Path | None  # the model given (--model / SIAMREC_MODEL); None: the shipped default
    device: str
    cache_dir: Path

    @property
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    @property
    def model_file(self) -> Path:
        """The model file to load: the one given, else the shipped default (ModelError when missing)."""
        return resolve_model_path(self.model_path)


def resolve_model_path(model_path: Path | None) -> Path:
    """The configured model, else the shipped default; a clear error when neither exists."""
    if model_path is not None:
        if not model_path.is_file():
            raise ModelError(f"model {model_path} not found")
        return model_path
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL
    raise ModelError(
        "no model configured and no default model shipped: pass --model FILE.onnx or set SIAMREC_MODEL "
        "(train one with `siamrec train` and `siamrec export`)"
    )


def default_folders() -> tuple[Path, Path]:
    """(data folder, cache folder) when neither --home nor SIAMREC_HOME is given."""
    legacy = LEGACY_HOME.expanduser()
    if legacy.is_dir():
        return legacy, legacy / "cache"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)), Path(platformdirs.user_cache_dir(APP_NAME))


def resolve_settings(
    home: str | None = None,
    qdrant_url: str | None = None,
    qdrant_api_key: str | None = None,
    model: str | None = None,
    device: str = "auto",
) -> Settings:
    """Flags win over SIAMREC_* environment variables, which win over the defaults."""
    chosen = home or os.environ.get("SIAMREC_HOME")
    if chosen:
        home_path = Path(chosen).expanduser()
        cache_dir = home_path / "cache"
    else:
        home_path, cache_dir = default_folders()
    check_home(home_path)
    model_value = model or os.environ.get("SIAMREC_MODEL")
    url = qdrant_url or os.environ.get("SIAMREC_QDRANT_URL") or None
    key = qdrant_api_key or os.environ.get("SIAMREC_QDRANT_API_KEY") or None
    return Settings(
        home=home_path,
        qdrant_url=None if url is None else check_qdrant_url(url),
        qdrant_api_key=None if key is None else check_api_key(key),
        model_path=Path(model_value).expanduser() if model_value else None,
        device=device,
        cache_dir=cache_dir,
    )


def check_home(home: Path) -> None:
    """The data folder, or the folder it will be made in, must be a folder: a file at or above it fails in one
    line here, not as a traceback from whichever command first writes there."""
    for path in (home, *home.parents):
        try:
            mode = path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):  # not there yet, or a file above it: look further up
            continue
        except OSError as exc:  # EACCES: a folder we may not look into
            raise ConfigError(f"the data folder {home} (--home / SIAMREC_HOME) cannot be used: {exc.strerror}") from exc
        if stat.S_ISDIR(mode):
            return
        what = "is a file" if path == home else f"is below {path}, which is a file"
        raise ConfigError(f"the data folder {home} (--home / SIAMREC_HOME) {what}, not a folder")


QDRANT_SCHEMES = ("http", "https")
_HOST = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$")


def check_qdrant_url(url: str) -> str:
    """A Qdrant server URL with scheme, host and port checked, so a typo fails in one line, not a traceback."""
    if not url.isascii() or not url.isprintable():
        raise ConfigError(f"--qdrant-url {url!r}: use plain ASCII (percent-encode anything else)")
    try:
        parsed = urlsplit(url.strip())
    except ValueError as exc:  # an unclosed IPv6 bracket (`http://[::1`)
        raise ConfigError(f"--qdrant-url {url!r}: not a valid URL ({exc})") from None
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
    if parsed.username is not None or parsed.password is not None:
        raise ConfigError("--qdrant-url: put no credentials in the URL; pass the key with --qdrant-api-key")
    return url.strip()


def check_api_key(key: str) -> str:
    """A Qdrant API key travels in an HTTP header: printable ASCII only (never echoed back in the message)."""
    if not key.isascii() or not key.isprintable() or key != key.strip():
        raise ConfigError(
            "--qdrant-api-key (or SIAMREC_QDRANT_API_KEY) holds characters an HTTP header cannot carry: "
            "use the key exactly as Qdrant printed it (ASCII, no spaces around it)"
        )
    return key
