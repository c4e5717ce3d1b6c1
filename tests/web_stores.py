"""The stores the web page's tests serve (tests/test_web_page.py in a browser, tests/test_web_routes.py over HTTP).

Imported by both modules as fixtures: each module builds its own (a store is held by one service at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siamrec.audio import identify
from siamrec.uris import local_playlist_uri, local_track_uri
from tests.cli import answer, home_env
from tests.service import service_config, serving
from tests.stores import fill_chords_and_beats

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
API_KEY = "page-key-123"


@pytest.fixture(scope="module", name="store")
def store_fixture(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]
) -> dict[str, Any]:
    """A home filled through the CLI: every library file, 'Chords', 'Beats' and a playlist with a hostile name."""
    home = tmp_path_factory.mktemp("web") / "home"
    files = library_files
    env = fill_chords_and_beats(home, tiny_model, files)
    answer("playlist", "create", HOSTILE_NAME, str(files["noise.ogg"]), env=env)
    return {
        "home": home,
        "chords": local_playlist_uri("Chords"),
        "hostile": local_playlist_uri(HOSTILE_NAME),
        "uri_of": {name: local_track_uri(identify(path)) for name, path in files.items()},
    }


@pytest.fixture(scope="module", name="service")
def service_fixture(store: dict[str, Any], tiny_model: Path) -> Iterator[str]:
    with serving(service_config(store["home"], tiny_model)) as base:
        yield base


@pytest.fixture(scope="module", name="keyed")
def keyed_fixture(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]
) -> Iterator[str]:
    """A second, smaller store served with an API key (a store is held by one service at a time)."""
    home = tmp_path_factory.mktemp("keyed") / "home"
    names = ("chord_a.wav", "chord_c.flac", "drums_120.wav")
    answer("add-track", *(str(library_files[n]) for n in names), env=home_env(home, tiny_model))
    answer("playlist", "create", "Chords", str(library_files["chord_a.wav"]), env=home_env(home, tiny_model))
    with serving(service_config(home, tiny_model, api_key=API_KEY)) as base:
        yield base
