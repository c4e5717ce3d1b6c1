"""Playlist sources register themselves: the entry-point group `siamrec.sources`, as beets and pytest plugins do.

Each entry point names a `RegisteredSource`: the click options it adds to `siamrec sync-playlists`, and how it
builds its PlaylistSource(s) from the values of those options (all the command's values are passed, so a
source may check them against its own). A package adds a source with no change to siamrec:

    [project.entry-points."siamrec.sources"]
    demo = "demo_source:source"

This module is light on purpose (click, no connector): `sync-playlists --help` reads every source's options
from it, and a source imports its heavy client only when it builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import click

from siamrec.errors import ConfigError

if TYPE_CHECKING:
    from siamrec.config import Settings
    from siamrec.connectors.base import PlaylistSource

GROUP = "siamrec.sources"


@dataclass
class Built:
    """What one source adds to a sync: its playlist sources, the SyncOptions fields it sets (a source that
    streams its own audio sets `fetcher`, `learn`…), and what to close when the sync ends."""

    sources: list[PlaylistSource] = field(default_factory=list)
    sync_options: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] | None = None


@dataclass(frozen=True)
class RegisteredSource:
    """A playlist source as `sync-playlists` sees it.

    `build(values, settings)` returns the sources its options ask for (none when they are not given), as a list
    or as a Built; it runs before the store is opened, so it may log in or ask for a password. `named_by` are
    the options that name its playlists, for the message of a sync that names none. Sources are read (and
    listed in --help) by `order`, then name: siamrec's own take 10 to 40, so another package's come after.
    """

    name: str
    options: Sequence[click.Option]
    build: Callable[[Mapping[str, Any], Settings], Sequence[PlaylistSource] | Built]
    named_by: tuple[str, ...] = ()
    order: int = 100

    def built(self, values: Mapping[str, Any], settings: Settings) -> Built:
        result = self.build(values, settings)
        return result if isinstance(result, Built) else Built(list(result))


def registered_sources() -> list[RegisteredSource]:
    """Every installed source, by order and name."""
    sources = []
    for point in entry_points(group=GROUP):
        try:
            source = point.load()
        except Exception as exc:  # another package's bug: one line that names it, not a traceback
            raise ConfigError(f"the playlist source {point.name!r} ({point.value}) cannot be loaded: {exc}") from exc
        if not isinstance(source, RegisteredSource):
            raise ConfigError(f"the playlist source {point.name!r} ({point.value}) is not a RegisteredSource")
        sources.append(source)
    return sorted(sources, key=lambda source: (source.order, source.name))


def source_options(sources: Iterable[RegisteredSource]) -> list[click.Option]:
    """The options of all sources, each once (two sources declaring one name is a packaging error)."""
    options: dict[str, click.Option] = {}
    for source in sources:
        for option in source.options:
            if option.name in options:
                raise ConfigError(f"two playlist sources declare the option {option.opts[0]} (one is {source.name!r})")
            options[str(option.name)] = option
    return list(options.values())


def build_all(sources: Iterable[RegisteredSource], values: Mapping[str, Any], settings: Settings) -> list[Built]:
    """Build every source from the command's values; a sync that names no playlist at all is a ConfigError.
    What was built is closed again when a later source refuses its options."""
    sources = list(sources)
    built: list[Built] = []
    try:
        for source in sources:
            built.append(source.built(values, settings))
    except BaseException:
        close_all(built)
        raise
    if not any(b.sources for b in built):
        close_all(built)
        named = [flag for source in sources for flag in source.named_by]
        listed = f"{', '.join(named[:-1])} or {named[-1]}" if len(named) > 1 else "".join(named)
        raise ConfigError(f"name a playlist source: {listed}")
    return built


def close_all(built: Iterable[Built]) -> None:
    for part in built:
        if part.close is not None:
            part.close()
