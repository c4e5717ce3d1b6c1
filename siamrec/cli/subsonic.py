"""Options every command that talks to a Subsonic server shares, and the one way the password is asked for."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from siamrec.errors import ConfigError

if TYPE_CHECKING:
    from siamrec.connectors.subsonic.client import SubsonicClient

F = TypeVar("F", bound=Callable[..., Any])


# --subsonic URL and --subsonic-user NAME (or SIAMREC_SUBSONIC_URL / SIAMREC_SUBSONIC_USER, for cron)
SERVER_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, str]], ...] = (
    (
        ("--subsonic", "subsonic_url"),
        {"envvar": "SIAMREC_SUBSONIC_URL", "help": "Subsonic API server URL (Navidrome, Gonic, Airsonic, Supysonic, "
         "Jellyfin…)."},
    ),
    (
        ("--subsonic-user",),
        {"envvar": "SIAMREC_SUBSONIC_USER", "help": "Subsonic user (password: SIAMREC_SUBSONIC_PASSWORD, else a "
         "prompt)."},
    ),
)


def server_options(func: F) -> F:
    """The server options on a command (publish, recommend)."""
    for declarations, attributes in reversed(SERVER_OPTIONS):
        func = click.option(*declarations, **attributes)(func)  # type: ignore[arg-type]
    return func


def server_option_list() -> list[click.Option]:
    """The same options as objects, for a registered source (sync-playlists' Subsonic source)."""
    return [click.Option(list(declarations), **attributes) for declarations, attributes in SERVER_OPTIONS]


def connect(url: str | None, user: str | None) -> SubsonicClient:
    """A checked session: the address answers like a Subsonic server and accepts the user's password."""
    from siamrec.connectors.subsonic.client import PASSWORD_ENV, SubsonicClient, password_from_env_or_prompt

    if not url or not user:
        raise ConfigError("a Subsonic server needs both --subsonic URL and --subsonic-user NAME")

    def prompt(text: str) -> str:
        if not sys.stdin.isatty():
            raise ConfigError(f"no Subsonic password: set {PASSWORD_ENV} (or run in a terminal to be asked)")
        return str(click.prompt(text, hide_input=True))

    client = SubsonicClient(url, user, password_from_env_or_prompt(prompt))
    client.ping()
    return client


__all__ = ["SERVER_OPTIONS", "connect", "server_option_list", "server_options"]
