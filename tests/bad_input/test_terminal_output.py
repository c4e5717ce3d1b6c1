"""Text from outside never drives the operator's terminal: control characters are shown, not obeyed.

A playlist named ESC ] 0;pwned BEL ESC [2J sets the window title and clears the screen when printed raw. The
store here is filled from three outside doors (an M3U's #PLAYLIST line, a track's title and artist, a
client's `PUT /playlists` over HTTP), then every command that shows it runs in a real process: neither
stdout nor stderr may hold a control byte other than a newline, and the hostile text is visible, escaped.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from siamrec.audio import identify
from siamrec.uris import local_track_uri
from tests.cli import home_env, run_siamrec
from tests.service import service_config, serving
from tests.stores import dump_store

# What a terminal obeys: C0 (but the newline), DEL, C1 (U+009B is a one-character CSI), bidi overrides.
OBEYED = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
TITLE_SET = "\x1b]0;pwned\x07"  # OSC 0: the window title
CLEAR = "\x1b[2J"
M3U_NAME = f"{TITLE_SET}{CLEAR}mix \x9b31m\u202eevil"  # what one line of an M3U can carry
API_NAME = f"api{TITLE_SET}\x08\x08\r{CLEAR}\x07"  # JSON carries any character
TITLE = f"song{CLEAR}\x07\x7f"
ARTIST = "band\x1b]0;artist\x07\x9b2J\r"
WIDE = {"COLUMNS": "250"}  # every name whole in its table cell


def assert_nothing_obeyed(result: subprocess.CompletedProcess[str]) -> None:
    for stream in (result.stdout, result.stderr):
        found = OBEYED.search(stream)
        assert found is None, f"{found and found.group()!r} reached the terminal: {stream!r}"


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]
) -> dict[str, Any]:
    """A store whose playlist names, titles and artists hold terminal escapes, filled through outside doors."""
    root = tmp_path_factory.mktemp("hostile")
    env = home_env(root / "home", tiny_model, **WIDE)
    files = sorted(library_files.values())
    m3u = root / "mix.m3u"
    m3u.write_text(f"#EXTM3U\n#PLAYLIST:{M3U_NAME}\n" + "".join(f"{f}\n" for f in files[:4]), encoding="utf-8")
    assert run_siamrec("playlist", "import", str(m3u), env=env).returncode == 0
    tagged = run_siamrec("add-track", str(files[4]), "--title", TITLE, "--artist", ARTIST, env=env)
    assert tagged.returncode == 0, tagged.stderr
    tagged_uri = local_track_uri(identify(files[4]))
    config = service_config(root / "home", tiny_model)
    with serving(config) as base, httpx.Client(base_url=base, timeout=30) as client:
        body = {"name": API_NAME, "track_uris": [tagged_uri, local_track_uri(identify(files[5]))]}
        assert client.put("/playlists/spotify:playlist:evil", json=body).status_code == 201
    return {"env": env, "home": root / "home", "tagged": tagged_uri}


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("playlist", "show", M3U_NAME), ["\\x1b]0;pwned\\x07\\x1b[2Jmix"]),
        (("playlist", "show", "spotify:playlist:evil"), ["song\\x1b[2J\\x07\\x7f", "band\\x1b]0;artist\\x07"]),
        (("recommend", "--playlist", M3U_NAME, "--include-warm"), ["song\\x1b[2J\\x07\\x7f", "\\x9b31m"]),
        (("recommend", "--playlist", "spotify:playlist:evil", "--include-warm"), ["api\\x1b]0;pwned"]),
        (("recommend", "--track", "{tagged}"), ["\\x1b]0;pwned\\x07\\x1b[2Jmix \\x9b31m"]),  # not its own
        (("info",), []),
    ],
)
def test_stored_text_is_shown_escaped(hostile: dict[str, Any], args: tuple[str, ...], shown: list[str]) -> None:
    before = dump_store(hostile["home"])
    result = run_siamrec(*(arg.format(**hostile) for arg in args), env=hostile["env"])
    assert result.returncode == 0, result.stderr
    assert_nothing_obeyed(result)
    for text in shown:
        assert text in result.stdout, result.stdout
    assert dump_store(hostile["home"]) == before


def test_playlist_list_escapes_names_and_json_keeps_them_exact(hostile: dict[str, Any]) -> None:
    """The table shows each name escaped; --json, a document for programs, has every character as a JSON escape."""
    before = dump_store(hostile["home"])
    table = run_siamrec("playlist", "list", env=hostile["env"])
    assert table.returncode == 0, table.stderr
    assert_nothing_obeyed(table)
    assert "\\x1b]0;pwned\\x07\\x1b[2Jmix \\x9b31m\\u202eevil" in table.stdout
    assert "api\\x1b]0;pwned\\x07\\x08\\x08\\r\\x1b[2J\\x07" in table.stdout
    document = run_siamrec("playlist", "list", "--json", env=hostile["env"])
    assert document.returncode == 0 and document.stdout.isascii()
    assert_nothing_obeyed(document)
    assert {p["name"] for p in json.loads(document.stdout)} == {M3U_NAME, API_NAME}
    assert dump_store(hostile["home"]) == before


def test_failure_and_error_lines_escape_outside_text(
    tmp_path: Path, home: Path, library_files: dict[str, Path]
) -> None:
    """A missing entry of an M3U, a file that is not audio, a name nobody stored: one escaped line each."""
    missing = f"/nonexistent/{TITLE_SET}{CLEAR}.mp3"
    m3u = tmp_path / "list.m3u"
    m3u.write_text(f"#EXTM3U\n{missing}\n{library_files['chord_a.wav']}\n", encoding="utf-8")
    imported = run_siamrec("playlist", "import", str(m3u))
    assert imported.returncode == 1
    assert_nothing_obeyed(imported)
    assert "/nonexistent/\\x1b]0;pwned" in imported.stderr
    before = dump_store(home)

    junk = tmp_path / f"junk{CLEAR}\x9b.mp3"
    junk.write_bytes(b"not audio at all" * 64)
    skipped = run_siamrec("add-track", str(junk))
    assert skipped.returncode == 1
    assert_nothing_obeyed(skipped)
    lines = [line for line in skipped.stderr.splitlines() if line.startswith("skipped:")]
    assert len(lines) == 1 and "junk\\x1b[2J\\x9b.mp3" in lines[0], skipped.stderr

    unknown = run_siamrec("playlist", "show", f"no such{TITLE_SET}")
    assert unknown.returncode == 1
    assert_nothing_obeyed(unknown)
    assert dump_store(home) == before
