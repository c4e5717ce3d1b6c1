"""The stores the web page's tests serve (tests/test_web_page.py in a browser, tests/test_web_routes.py over HTTP).

Imported by both modules as fixtures: each module builds its own (a store is held by one service at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_service import serving, siamrec

from siamrec.audio import identify
from siamrec.service.config import ServiceConfig
from siamrec.uris import local_playlist_uri, local_track_uri

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
API_KEY = "page-key-123"


@pytest.fixture(scope="module", name="store")
def store_fixture(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]
) -> dict[str, Any]:
    """A home filled through the CLI: every library file, 'Chords', 'Beats' and a playlist with a hostile name."""
    home = tmp_path_factory.mktemp("web") / "home"
    files = library_files
    siamrec(home, tiny_model, "add-track", *(str(p) for p in files.values()))
    siamrec(home, tiny_model, "playlist", "create", "Chords", str(files["chord_a.wav"]), str(files["chord_c.flac"]))
    siamrec(home, tiny_model, "playlist", "create", "Beats", str(files["drums_120.wav"]))
    siamrec(home, tiny_model, "playlist", "create", HOSTILE_NAME, str(files["noise.ogg"]))
    return {
        "home": home,
        "chords": local_playlist_uri("Chords"),
        "hostile": local_playlist_uri(HOSTILE_NAME),
        "uri_of": {name: local_track_uri(identify(path)) for name, path in files.items()},
    }


@pytest.fixture(scope="module", name="service")
def service_fixture(store: dict[str, Any], tiny_model: Path) -> Iterator[str]:
    with serving(ServiceConfig(home=str(store["home"]), model=str(tiny_model))) as base:
        yield base


@pytest.fixture(scope="module", name="keyed")
def keyed_fixture(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]
) -> Iterator[str]:
    """A second, smaller store served with an API key (a store is held by one service at a time)."""
    home = tmp_path_factory.mktemp("keyed") / "home"
    names = ("chord_a.wav", "chord_c.flac", "drums_120.wav")
    siamrec(home, tiny_model, "add-track", *(str(library_files[n]) for n in names))
    siamrec(home, tiny_model, "playlist", "create", "Chords", str(library_files["chord_a.wav"]))
    with serving(ServiceConfig(home=str(home), model=str(tiny_model), api_key=API_KEY)) as base:
        yield base
