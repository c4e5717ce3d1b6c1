"""The page `siamrec serve` shows at `/`, in a real browser.

Headless Chromium from the OS packages (`apt-get install chromium`), driven by Playwright's Python API, against
the real service on 127.0.0.1 (uvicorn in a thread, the tiny ONNX model, real audio). The module skips in one
line when Playwright or the browser is missing (tests/test_web_routes.py checks the routes without one).
With SIAMREC_SCREENSHOTS=FOLDER set the tests save the page at desktop (1280x800) and phone (390x844) widths
there: `SIAMREC_SCREENSHOTS=docs .venv/bin/pytest -q tests/test_web_page.py`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from siamrec.audio import identify
from siamrec.testing import chord, drums, write_audio
from siamrec.uris import local_track_uri
from tests.web_stores import API_KEY, HOSTILE_NAME, keyed_fixture, service_fixture, store_fixture  # noqa: F401

CHROMIUM = os.environ.get("SIAMREC_CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="no browser: playwright is missing (pip install playwright)"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 20_000  # the longest any one step may take before the test fails (a bound, not a measured sleep)


# ---- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except sync_api.Error as exc:
            pytest.skip(f"no browser: {CHROMIUM} does not start ({str(exc).splitlines()[0]})")
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A desktop-sized page that records every dialog (none may open) and the page's uncaught errors."""
    context = browser.new_context(viewport=DESKTOP)
    opened = context.new_page()
    opened.dialogs, opened.errors = [], []
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


def _open(page: Any, base: str) -> None:
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready=true]")


def _screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("SIAMREC_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"web-page-{name}.png"))  # what the screen shows


def _row_uris(page: Any, list_id: str) -> list[str]:
    return page.eval_on_selector_all(f"#{list_id} li.row", "rows => rows.map(r => r.dataset.uri)")


def _wait_playing(page: Any, uri: str) -> None:
    """The shared <audio> element plays `uri` and its currentTime advances (progress, as a listener hears it)."""
    page.wait_for_function(
        "uri => { const p = document.getElementById('player');"
        " return p.dataset.trackUri === uri && !p.paused && p.currentTime > 0.3; }",
        arg=uri,
    )


def _recommended(base: str, playlist: str, k: int = 50) -> list[str]:
    answer = httpx.get(f"{base}/playlists/{playlist}/recommendations", params={"k": k})
    assert answer.status_code == 200, answer.text
    return [r["track_uri"] for r in answer.json()["results"]]


def _suiting(page: Any) -> list[str]:
    return page.eval_on_selector_all("#suiting li.row .title", "titles => titles.map(t => t.textContent)")


def _suiting_names(base: str, track: str) -> list[str]:
    answer = httpx.get(f"{base}/tracks/{track}/playlists", params={"k": 5})
    assert answer.status_code == 200, answer.text
    return [p["name"] for p in answer.json()["results"]]


# ---- the page in the browser ------------------------------------------------------------------------------


def test_recommendations_play_and_answers_change_them(page: Any, service: str, store: dict[str, Any]) -> None:
    chords = store["chords"]
    _open(page, service)
    for _ in range(40):  # reach the playlist by keyboard: Tab until it has focus, then Enter
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.uri") == chords:
            break
    else:
        pytest.fail("Tab never reached the playlist's button")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "uri => document.getElementById('recommendations').dataset.playlist === uri"
        " && document.getElementById('tracks').dataset.playlist === uri",
        arg=chords,
    )
    assert page.locator(f"button.playlist[data-uri='{chords}']").get_attribute("aria-pressed") == "true"
    shown = _row_uris(page, "recommendations")
    assert shown == _recommended(service, chords, k=10)
    first = page.locator("#recommendations li.row").first
    api_first = httpx.get(f"{service}/playlists/{chords}/recommendations", params={"k": 1}).json()["results"][0]
    seed = api_first["because_of"][0]
    assert (seed["title"] or seed["track_uri"]) in first.locator(".seeds").text_content()

    first.locator("button.play").click()
    _wait_playing(page, shown[0])

    rejected, accepted = shown[0], shown[1]
    first.locator("button.reject").click()
    page.wait_for_function(
        "uri => !document.querySelector(`#recommendations li[data-uri='${uri}']`)"
        " && document.querySelectorAll('#recommendations li.row').length > 0",
        arg=rejected,
    )
    assert rejected not in _recommended(service, chords)
    assert rejected not in _row_uris(page, "recommendations")

    page.locator(f"#recommendations li[data-uri='{accepted}'] button.accept").click()
    page.wait_for_selector(f"#tracks li[data-uri='{accepted}']")
    playlist = httpx.get(f"{service}/playlists/{chords}").json()
    assert accepted in playlist["track_uris"]
    count = page.locator(f"button.playlist[data-uri='{chords}'] .count").text_content()
    assert count == f"{len(playlist['track_uris'])} tracks"  # the list shows the kept track joined it
    assert accepted not in _recommended(service, chords)
    record = httpx.get(f"{service}/playlists/{chords}/feedback").json()
    assert (record["accepted"], record["rejected"]) == ([accepted], [rejected])
    assert page.locator("#status").text_content().startswith("Kept")
    assert page.locator("#feedback-counts").text_content() == "Your answers: 1 kept, 1 rejected."
    assert not page.errors and not page.dialogs
    _screenshot(page, "desktop")

    page.get_by_role("button", name="Forget the answers").click()
    page.wait_for_selector("#feedback", state="hidden")
    assert rejected in _recommended(service, chords)  # may come back
    assert accepted in httpx.get(f"{service}/playlists/{chords}").json()["track_uris"]  # kept stays


def test_an_upload_shows_the_playlists_that_suit_it(page: Any, service: str, tmp_path: Path) -> None:
    new = write_audio(tmp_path / "new chord.wav", chord(4.0, 246.9))
    _open(page, service)
    page.set_input_files("#upload-input", str(new))
    page.wait_for_selector("#suiting li.row")
    uri = local_track_uri(identify(new))
    assert page.locator("#upload-result").get_attribute("data-track-uri") == uri
    assert _suiting(page) == _suiting_names(service, uri) and len(_suiting(page)) == 3
    page.locator("#upload-result button.play").click()  # the upload plays from the uploads folder
    _wait_playing(page, uri)
    streamed = httpx.get(f"{service}/tracks/{uri}/audio")
    assert streamed.status_code == 200 and streamed.content == new.read_bytes()
    httpx.delete(f"{service}/tracks/{uri}").raise_for_status()

    dropped = write_audio(tmp_path / "dropped.wav", drums(3.0, 75.0))  # the drop box takes a file too
    transfer = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
            return transfer;
        }""",
        [base64.b64encode(dropped.read_bytes()).decode(), dropped.name],
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    dropped_uri = local_track_uri(identify(dropped))
    page.wait_for_function("uri => document.getElementById('upload-result').dataset.trackUri === uri", arg=dropped_uri)
    assert _suiting(page) == _suiting_names(service, dropped_uri)
    assert httpx.get(f"{service}/tracks/{dropped_uri}").status_code == 200
    httpx.delete(f"{service}/tracks/{dropped_uri}").raise_for_status()
    assert not page.errors and not page.dialogs


def test_a_hostile_playlist_name_shows_as_text(page: Any, service: str, store: dict[str, Any]) -> None:
    _open(page, service)
    button = page.locator(f"button.playlist[data-uri='{store['hostile']}']")
    assert button.locator(".name").text_content() == HOSTILE_NAME
    button.click()
    page.wait_for_function("name => document.getElementById('playlist-heading').textContent === name", arg=HOSTILE_NAME)
    legend = page.eval_on_selector_all("#map-legend li", "items => items.map(i => i.textContent)")
    assert HOSTILE_NAME in legend
    assert page.locator("img").count() == 0
    assert page.dialogs == [] and page.errors == []


def test_playlists_are_found_by_name_and_listed_a_page_at_a_time(page: Any, service: str) -> None:
    """The search box asks the service for names with a word starting with each word typed (any order and
    case); "More playlists" follows the service's next page (100 at a time) until there is none."""
    crates = [f"crate:playlist:{i:03d}" for i in range(120)]
    for i, uri in enumerate(crates):
        httpx.put(f"{service}/playlists/{uri}", json={"name": f"Crate {i:03d}", "track_uris": []}).raise_for_status()
    shown = "() => [...document.querySelectorAll('#playlists button.playlist')].map(b => b.dataset.uri)"
    listed = (  # the list holds n playlists, the first of them `first`
        "([n, first]) => { const b = document.querySelectorAll('#playlists button.playlist');"
        " return b.length === n && b[0].dataset.uri === first; }"
    )
    try:
        _open(page, service)
        page.locator("#playlist-name").fill("CRATE")
        page.wait_for_function(listed, arg=[100, crates[0]])
        assert page.locator("#playlists-more").is_visible()
        page.locator("#playlists-more").click()
        page.wait_for_function(listed, arg=[120, crates[0]])
        assert page.evaluate(shown) == crates and page.locator("#playlists-more").is_hidden()
        page.locator("#playlist-name").fill("crate 11")
        page.wait_for_function(listed, arg=[10, crates[110]])
        assert page.evaluate(shown) == crates[110:]
        page.locator("#playlist-name").fill("119 CRA")  # words in any order, each starting one of the name's
        page.wait_for_function(listed, arg=[1, crates[119]])
        page.locator("#playlist-name").fill("no such crate")
        page.wait_for_function("() => document.getElementById('playlists').textContent.includes('starting so')")
        page.locator("#playlist-name").fill("")
        page.wait_for_function("() => document.querySelectorAll('#playlists button.playlist').length === 100")
        assert page.evaluate(shown)[0] != crates[0]  # the store's own playlists come first by name again
        assert page.locator("#playlists-more").is_visible()  # 120 crates and the store's own: over one page
        assert not page.errors and not page.dialogs
    finally:
        for uri in crates:
            httpx.delete(f"{service}/playlists/{uri}")


def test_the_map_plays_what_is_clicked_and_the_store_is_described(
    page: Any, service: str, store: dict[str, Any]
) -> None:
    _open(page, service)
    data = httpx.get(f"{service}/map").json()
    assert page.locator("#map circle").count() == data["tracks"] >= 7
    legend = page.eval_on_selector_all("#map-legend li", "items => items.map(i => i.textContent)")
    assert legend == [p["name"] for p in data["playlists"]]
    drum = store["uri_of"]["drums_120.wav"]
    point = page.locator(f"#map circle[data-uri='{drum}']")
    point.hover()
    assert page.locator("#map-hover").text_content().endswith("(Beats)")
    point.click()
    _wait_playing(page, drum)
    page.locator("#map-card").scroll_into_view_if_needed()
    _screenshot(page, "map")
    info = httpx.get(f"{service}/info").json()
    terms, values = page.locator("#info dt").all_text_contents(), page.locator("#info dd").all_text_contents()
    shown = dict(zip(terms, values, strict=True))
    assert shown["Tracks"] == f"{info['tracks']} ({info['cold_tracks']} cold)"
    assert shown["Playlists"] == str(info["playlists"]) and shown["Model"].startswith(info["model"])


def test_a_phone_reads_the_page_without_sideways_scrolling(browser: Any, service: str) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone = context.new_page()
    try:
        _open(phone, service)
        phone.locator("button.playlist").first.click()
        phone.wait_for_selector("#recommendations li.row")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        heights = phone.eval_on_selector_all("button", "bs => bs.filter(b => b.offsetParent).map(b => b.offsetHeight)")
        assert heights and min(heights) >= 36  # finger-sized targets
        _screenshot(phone, "phone")
    finally:
        context.close()


def test_with_an_api_key_the_page_asks_once_and_sends_it(browser: Any, keyed: str) -> None:
    assert httpx.get(f"{keyed}/playlists").status_code == 401
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(keyed + "/")
        page.get_by_label("API key").fill("not-the-key")
        page.get_by_role("button", name="Use the key").click()
        page.wait_for_function("() => document.getElementById('status').textContent.includes('refused')")
        assert page.locator("#key-form").is_visible()
        page.get_by_label("API key").fill(API_KEY)
        page.get_by_role("button", name="Use the key").click()
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("button.playlist").count() == 1
        page.reload()  # kept for the tab: not asked again
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#key-form").is_hidden()
        first = page.locator("#recommendations li.row").first
        uri = first.get_attribute("data-uri")
        first.locator("button.play").click()  # fetched with the key header
        _wait_playing(page, uri)
    finally:
        context.close()
