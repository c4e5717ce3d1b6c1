"""`siamrec serve` through real HTTP on 127.0.0.1: uvicorn in a thread, the tiny ONNX model, real audio."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from siamrec.audio import identify
from siamrec.errors import NotAudioError
from siamrec.service.state import Service
from siamrec.testing import chord, drums, write_audio
from siamrec.uris import local_playlist_uri, local_track_uri, point_id
from tests.cli import answer, run_siamrec
from tests.servers import FileServer
from tests.service import assert_problem, service_config, serving, upload
from tests.stores import fill_chords_and_beats

# ---- one store filled by the CLI, then served ------------------------------------------------------------


@pytest.fixture(scope="module")
def filled(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]
) -> dict[str, Any]:
    """A home filled by `siamrec add-track` and `siamrec playlist create`, and the CLI's answers about it."""
    home = tmp_path_factory.mktemp("served") / "home"
    files = library_files
    env = fill_chords_and_beats(home, tiny_model, files)
    drum_uri = local_track_uri(identify(files["drums_120.wav"]))
    return {
        "home": home,
        "chords": local_playlist_uri("Chords"),
        "beats": local_playlist_uri("Beats"),
        "drum_uri": drum_uri,
        "cli_mean": answer("recommend", "--playlist", "Chords", "-k", "4", env=env),
        "cli_best": answer("recommend", "--playlist", "Chords", "-k", "4", "--strategy", "best-score", env=env),
        "cli_track": answer("recommend", "--track", drum_uri, "-k", "5", env=env),
    }


@pytest.fixture(scope="module")
def fileserver(library_files: dict[str, Path]) -> Iterator[FileServer]:
    with FileServer(library_files["chord_a.wav"].parent) as server:
        yield server


@pytest.fixture(scope="module")
def api(filled: dict[str, Any], tiny_model: Path) -> Iterator[httpx.Client]:
    config = service_config(filled["home"], tiny_model, allow_fetch=True, fetch_allow_networks=("127.0.0.1/32",)
    )
    with serving(config) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


def _ranked(results: list[dict[str, Any]], key: str) -> list[tuple[str, float]]:
    return [(r[key], round(r["score"], 5)) for r in results]


def test_same_results_as_the_cli(api: httpx.Client, filled: dict[str, Any]) -> None:
    for strategy, expected in (("mean", filled["cli_mean"]), ("best-score", filled["cli_best"])):
        served = api.get(f"/playlists/{filled['chords']}/recommendations", params={"k": 4, "strategy": strategy})
        assert served.status_code == 200, served.text
        assert _ranked(served.json()["results"], "track_uri") == _ranked(expected["results"], "track_uri")
        assert served.json()["results"][0]["because_of"] == expected["results"][0]["because_of"]
    by_name = api.get("/playlists/Chords/recommendations", params={"k": 4}).json()
    assert _ranked(by_name["results"], "track_uri") == _ranked(filled["cli_mean"]["results"], "track_uri")
    for_track = api.get(f"/tracks/{filled['drum_uri']}/playlists", params={"k": 5}).json()
    assert _ranked(for_track["results"], "playlist_uri") == _ranked(filled["cli_track"]["results"], "playlist_uri")


def test_ad_hoc_seeds_rank_like_the_stored_playlist(api: httpx.Client, filled: dict[str, Any]) -> None:
    playlist = api.get(f"/playlists/{filled['chords']}").json()
    seeds = {"seed_track_uris": playlist["track_uris"], "k": 4, "strategy": "best-score"}
    ad_hoc = api.post("/recommendations", json=seeds)
    assert ad_hoc.status_code == 200 and ad_hoc.json()["playlist_uri"] is None
    assert _ranked(ad_hoc.json()["results"], "track_uri") == _ranked(filled["cli_best"]["results"], "track_uri")
    assert_problem(api.post("/recommendations", json={"seed_track_uris": ["local:track:nothing"]}), 404, "no tracks")
    assert_problem(api.post("/recommendations", json={"seed_track_uris": []}), 422)


def test_upload_then_recommend(api: httpx.Client, filled: dict[str, Any], tmp_path: Path) -> None:
    song = write_audio(tmp_path / "new.ogg", chord(4.0, 233.1))  # a chord: the Chords playlist should want it
    first = upload(api, song, k=2, title="New Song", artist="An Artist", track_uri="spotify:track:newsong1")
    assert first.status_code == 201, first.text
    added = first.json()
    assert added["created"] and added["track"]["track_uri"] == "spotify:track:newsong1"
    assert (added["track"]["title"], added["track"]["has_audio"], added["track"]["source"]) == ("New Song", True, "api")
    assert [p["playlist_uri"] for p in added["playlists"]] and len(added["playlists"]) <= 2
    assert added["playlists"] == api.get("/tracks/spotify:track:newsong1/playlists", params={"k": 2}).json()["results"]
    again = upload(api, song, title="New Song", track_uri="spotify:track:newsong1")
    assert again.status_code == 200 and not again.json()["created"]
    recommended = api.get(f"/playlists/{filled['chords']}/recommendations", params={"k": 50}).json()["results"]
    assert "spotify:track:newsong1" in [r["track_uri"] for r in recommended]
    stored = api.get("/tracks/spotify:track:newsong1").json()
    assert stored["audio_sha1"] and stored["duration_s"] == pytest.approx(4.0, abs=0.05)


def test_upload_without_uri_gets_the_local_identity(api: httpx.Client, tmp_path: Path) -> None:
    response = upload(api, write_audio(tmp_path / "x.flac", drums(3.0, 100.0, seed=4)))
    assert response.status_code == 201
    assert response.json()["track"]["track_uri"].startswith("local:track:")


def test_fetch_from_a_trusted_network(api: httpx.Client, fileserver: FileServer) -> None:
    body = {"track_uri": "spotify:track:fetched1", "url": fileserver.url("bright_e.mp3"), "title": "Fetched"}
    response = api.post("/tracks", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["track"]["title"] == "Fetched" and fileserver.hits["bright_e.mp3"] == 1
    fileserver.routes["page.mp3"] = fileserver.routes.get("page.mp3") or _html()
    assert_problem(api.post("/tracks", json={**body, "url": fileserver.url("page.mp3")}), 415, "not audio")
    assert_problem(api.post("/tracks", json={**body, "url": fileserver.url("missing.ogg")}), 502, "404")


def _html() -> Any:
    from tests.servers import Response

    return Response(200, b"<html><body>not audio</body></html>", {"Content-Type": "audio/mpeg"})


def test_playlists_crud(api: httpx.Client, filled: dict[str, Any]) -> None:
    uri = "spotify:playlist:mix1"
    members = [filled["drum_uri"], "spotify:track:nosound"]
    created = api.put(f"/playlists/{uri}", json={"name": "Mix", "track_uris": members})
    assert created.status_code == 201, created.text
    assert created.json()["track_uris"] == members and created.json()["tracks_with_audio"] == 1
    replaced = api.put(f"/playlists/{uri}", json={"name": "Mix", "track_uris": members[:1]})
    assert replaced.status_code == 200 and replaced.json()["track_uris"] == members[:1]
    listed = {p["playlist_uri"]: p for p in api.get("/playlists").json()}
    assert listed[uri]["tracks"] == 1 and {filled["chords"], filled["beats"]} <= set(listed)
    assert api.get(f"/tracks/{filled['drum_uri']}").json()["playlists"] == sorted([filled["beats"], uri])
    recommended = api.get(f"/playlists/{uri}/recommendations", params={"include_warm": True, "k": 3})
    assert recommended.status_code == 200 and len(recommended.json()["results"]) == 3
    assert api.delete(f"/playlists/{uri}").json() == {"deleted": uri, "removed_from_playlists": []}
    assert_problem(api.get(f"/playlists/{uri}"), 404)
    assert_problem(api.delete(f"/playlists/{uri}"), 404)
    assert api.get(f"/tracks/{filled['drum_uri']}").json()["playlists"] == [filled["beats"]]
    assert_problem(api.put("/playlists/has space", json={"name": "x", "track_uris": []}), 422)
    lone_surrogate = b'{"name": "x", "track_uris": ["spotify:track:\\ud800"]}'  # valid JSON, not valid text
    assert_problem(
        api.put(f"/playlists/{uri}", content=lone_surrogate, headers={"content-type": "application/json"}), 422
    )
    assert_problem(api.get("/playlists/Chords/recommendations", params={"strategy": "loudest"}), 422)


def test_delete_track_leaves_its_playlists(api: httpx.Client, tmp_path: Path) -> None:
    uri = "spotify:track:doomed"
    assert upload(api, write_audio(tmp_path / "d.wav", chord(3.0, 300.0)), track_uri=uri).status_code == 201
    assert api.put("/playlists/spotify:playlist:keep", json={"name": "Keep", "track_uris": [uri]}).status_code == 201
    deleted = api.delete(f"/tracks/{uri}")
    assert deleted.json() == {"deleted": uri, "removed_from_playlists": ["spotify:playlist:keep"]}
    assert_problem(api.get(f"/tracks/{uri}"), 404)
    assert_problem(api.delete(f"/tracks/{uri}"), 404)
    assert api.get("/playlists/spotify:playlist:keep").json()["track_uris"] == []
    assert_problem(api.get(f"/tracks/{uri}/playlists"), 404)


def test_service_routes(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    info = api.get("/info").json()
    assert info["model"] and info["dim"] > 0 and info["tracks"] >= 7 and info["store"] == "embedded"
    assert api.get("/docs").status_code == 200 and "swagger" in api.get("/docs").text.lower()
    document = api.get("/openapi.json").json()
    assert {"/tracks", "/playlists/{uri}/recommendations", "/recommendations", "/metrics"} <= set(document["paths"])
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'siamrec_http_requests_total{method="GET",route="/info",status="200"}' in metrics.text
    assert 'siamrec_http_request_duration_seconds_bucket{le="0.02",method="GET",route="/health"}' in metrics.text


# ---- limits, refusals and auth ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[httpx.Client]:
    """A service with small limits: 200 kB uploads, 3 s of audio, one upload at a time, fetching on."""
    home = tmp_path_factory.mktemp("strict") / "home"
    config = service_config(home, tiny_model, max_upload_bytes=200_000,
        max_duration_s=3.0,
        queue_limit=1,
        allow_fetch=True,
    )
    with serving(config) as base, httpx.Client(base_url=base, timeout=30, headers={"x-test-home": str(home)}) as client:
        yield client


def test_oversized_uploads_are_refused(strict: httpx.Client, tmp_path: Path) -> None:
    big = write_audio(tmp_path / "big.wav", chord(8.0))  # 256 kB
    assert_problem(upload(strict, big), 413, "larger than")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while the body streams
        yield b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 10_000

    streamed = strict.post("/tracks", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert_problem(streamed, 413, "larger than")
    assert_problem(strict.put("/playlists/spotify:playlist:x", content=b"x" * 9_000_000), 413)


def test_non_audio_and_too_long_audio_are_refused(strict: httpx.Client, tmp_path: Path) -> None:
    fake = tmp_path / "song.mp3"
    fake.write_text("this is not music, whatever the name says\n" * 50)
    assert_problem(upload(strict, fake), 415, "not audio")
    assert_problem(upload(strict, write_audio(tmp_path / "long.wav", chord(5.0))), 422, "accepts up to 3 s")
    assert_problem(upload(strict, write_audio(tmp_path / "quiet.wav", chord(2.0) * 0)), 422, "silence")
    assert_problem(strict.post("/tracks", content=b"RIFF", headers={"Content-Type": "audio/wav"}), 415)
    assert strict.get("/info").json()["tracks"] == 0  # nothing refused was stored, not even its bytes
    assert not list((Path(strict.headers["x-test-home"]) / "uploads").glob("*"))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3"])
def test_fetching_never_goes_to_private_addresses(strict: httpx.Client, host: str) -> None:
    body = {"track_uri": "spotify:track:x", "url": f"http://{host}:9/a.ogg"}
    assert_problem(strict.post("/tracks", json=body), 403, "never fetched")


def _in_flight(client: httpx.Client) -> float:
    line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith("siamrec_uploads_in_flight "))
    return float(line.split()[1])


def test_queue_limit_answers_503(strict: httpx.Client, tmp_path: Path) -> None:
    song = write_audio(tmp_path / "ok.wav", chord(2.0))
    port = int(str(strict.base_url).rsplit(":", 1)[1].strip("/"))
    slow = socket.create_connection(("127.0.0.1", port))  # an upload that is still arriving holds the one slot
    slow.sendall(
        b"POST /tracks HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 100000\r\n\r\n--b\r\n"
    )
    try:
        deadline = time.monotonic() + 10
        while _in_flight(strict) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        busy = upload(strict, song)
        assert_problem(busy, 503, "retry later")
        assert int(busy.headers["Retry-After"]) > 0
        assert strict.get("/info").status_code == 200  # reads are not queued behind uploads
    finally:
        slow.close()
    deadline = time.monotonic() + 10
    while _in_flight(strict) > 0:  # the slot comes back when the slow client leaves
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert upload(strict, song).status_code in (200, 201)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[str]:
    """The service bound to every interface (0.0.0.0) with an API key."""
    home = tmp_path_factory.mktemp("keyed") / "home"
    config = service_config(home, tiny_model, host="0.0.0.0", api_key="s3cret-key").checked()
    with serving(config) as base:
        yield base


def test_off_loopback_needs_the_key_everywhere_but_health(keyed: str) -> None:
    with httpx.Client(base_url=keyed) as anonymous:
        assert anonymous.get("/health").status_code == 200
        for path in ("/info", "/playlists", "/metrics", "/openapi.json", "/docs", "/tracks/local:track:x"):
            assert_problem(anonymous.get(path), 401, "API key")
        assert_problem(anonymous.get("/info", headers={"Authorization": "Bearer s3cret-kez"}), 401)
    assert httpx.get(f"{keyed}/info", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    assert httpx.get(f"{keyed}/info", headers={"X-API-Key": "s3cret-key"}).status_code == 200


def test_serve_refuses_off_loopback_without_a_key(tmp_path: Path, tiny_model: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SIAMREC_API_KEY"}
    env |= {"SIAMREC_HOME": str(tmp_path / "home"), "SIAMREC_MODEL": str(tiny_model)}
    result = run_siamrec("serve", "--host", "0.0.0.0", env=env, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "siamrec: error: binding to 0.0.0.0 exposes the store: set SIAMREC_API_KEY to a secret clients must send, "
        "or bind to 127.0.0.1"
    ]
    many = run_siamrec("serve", "--workers", "2", env=env, timeout=60)
    assert many.returncode == 1 and "needs --qdrant-url" in many.stderr and "Traceback" not in many.stderr


def test_a_service_reads_its_store_ahead_as_it_opens(tiny_model: Path, tmp_path: Path) -> None:
    """The embedded store is read ahead in the background at start-up (siamrec.store.warmup)."""
    service = Service(service_config(tmp_path / "home", tiny_model))
    try:
        assert service.warming is not None and service.warming.wait(30) > 0
    finally:
        service.close()


def test_fetching_is_off_unless_enabled(tmp_path: Path, tiny_model: Path) -> None:
    with serving(service_config(tmp_path / "home", tiny_model)) as base:
        body = {"track_uri": "spotify:track:x", "url": "https://example.org/a.ogg"}
        assert_problem(httpx.post(f"{base}/tracks", json=body), 403, "URL fetching is off")


def test_an_upload_is_received_sniffed_and_kept_by_its_bytes(tmp_path: Path) -> None:
    """Received bytes are hashed and sniffed before anything decodes them; kept, they are named by their SHA-1,
    and decoding the kept file gives the windows add-track makes."""
    import numpy as np

    from siamrec import audio
    from siamrec.audio_items import AudioItem, load_item
    from siamrec.service import uploads

    song = write_audio(tmp_path / "song.flac", chord(6.0, 220.0))
    folder = tmp_path / "uploads"
    with song.open("rb") as handle:
        received = uploads.receive_audio(uploads.file_chunks(handle), folder, 10**8)
    assert received.sha1 == audio.file_sha1(song) and received.suffix == ".flac"
    path, new = uploads.keep_upload(received, folder)
    assert new and path.name == f"{received.sha1}.flac" and not received.temporary.exists()
    windows, info = uploads.decode_upload(path, 600.0)
    record, loaded = load_item(AudioItem(path))
    assert np.array_equal(windows, loaded) and info.duration_s == pytest.approx(6.0, abs=0.01)
    with song.open("rb") as handle:
        again = uploads.receive_audio(uploads.file_chunks(handle), folder, 10**8)
    assert uploads.keep_upload(again, folder) == (path, False)  # the same bytes twice are one file
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\0" * 5000)
    with junk.open("rb") as handle, pytest.raises(NotAudioError):
        uploads.receive_audio(uploads.file_chunks(handle), folder, 10**8)
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # refused bytes leave nothing behind


def test_an_upload_of_stored_bytes_is_not_decoded_and_takes_the_stored_vector(
    api: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried upload, or the same file under another URI, finds the track its bytes made: no decode, no model."""
    from siamrec.service import uploads

    song = write_audio(tmp_path / "twice.ogg", chord(4.0, 246.9))
    first = upload(api, song, k=3, track_uri="spotify:track:twice1")
    assert first.status_code == 201, first.text
    decodes: list[object] = []
    real = uploads.track_windows
    monkeypatch.setattr(uploads, "track_windows", lambda *a, **k: decodes.append(a) or real(*a, **k))
    try:
        again = upload(api, song, k=3, track_uri="spotify:track:twice2", title="Twice")
        assert again.status_code == 201, again.text
        assert decodes == []
        track, before = again.json()["track"], first.json()["track"]
        assert track["title"] == "Twice" and track["has_audio"]
        assert (track["audio_sha1"], track["duration_s"]) == (before["audio_sha1"], before["duration_s"])
        assert again.json()["playlists"] == first.json()["playlists"]  # the same vector
        other = write_audio(tmp_path / "other.ogg", chord(4.0, 261.6))
        assert upload(api, other, k=3, track_uri="spotify:track:twice3").status_code == 201
        assert len(decodes) == 1  # new bytes are decoded
    finally:
        for uri in ("spotify:track:twice1", "spotify:track:twice2", "spotify:track:twice3"):
            api.delete(f"/tracks/{uri}")


def test_playlists_are_listed_a_page_at_a_time_by_name(api: httpx.Client) -> None:
    """GET /playlists gives `limit` at a time in name order, the next page in its `Link` header (RFC 8288), even
    past the longest name a playlist may have in characters that take the most room in a cursor."""
    names = ["Summer Hits", "summer hits", "Summertime", "Summa", "Été", "summer 1", "\U0001d11e" * 500]
    uris = [f"spotify:playlist:page{i}" for i in range(len(names))]
    for uri, name in zip(uris, names, strict=True):
        assert api.put(f"/playlists/{uri}", json={"name": name, "track_uris": []}).status_code == 201
    try:
        whole = api.get("/playlists", params={"limit": 1000})
        assert "link" not in whole.headers
        everything = [(p["name"].casefold(), point_id(p["playlist_uri"])) for p in whole.json()]
        assert everything == sorted(everything) and {point_id(uri) for uri in uris} <= {pid for _, pid in everything}
        pages, path = [], "/playlists?limit=1"
        while path:
            answer = api.get(path)
            assert answer.status_code == 200 and len(answer.json()) <= 1
            pages += [(p["name"].casefold(), point_id(p["playlist_uri"])) for p in answer.json()]
            link = answer.headers.get("link")
            path = link[link.index("<") + 1 : link.index(">")] if link else ""
            assert not link or link.endswith('>; rel="next"')
        assert pages == everything
        summer = api.get("/playlists", params={"name": "SUMMER", "limit": 3})
        assert [p["name"].casefold() for p in summer.json()] == ["summer 1", "summer hits", "summer hits"]
        rest = summer.headers["link"][summer.headers["link"].index("<") + 1 : summer.headers["link"].index(">")]
        assert "name=SUMMER" in rest and [p["name"] for p in api.get(rest).json()] == ["Summertime"]
        assert api.get("/playlists", params={"name": "zzz"}).json() == []
        hits = api.get("/playlists", params={"words": "HITS sum", "limit": 1})  # words: any order, case, place
        rest = hits.headers["link"][hits.headers["link"].index("<") + 1 : hits.headers["link"].index(">")]
        assert "words=HITS+sum" in rest and "link" not in api.get(rest).headers
        assert sorted(p["name"] for p in [*hits.json(), *api.get(rest).json()]) == ["Summer Hits", "summer hits"]
        assert api.get("/playlists", params={"words": "ete"}).json()[0]["name"] == "Été"
        assert api.get("/playlists", params={"words": "mmer"}).json() == []  # a word's beginning, not its middle
        for bad in ("not-a-cursor", "WyJhIl0", "bnVsbA", "x" * 9000):
            assert_problem(api.get("/playlists", params={"after": bad}), 422)
        assert_problem(api.get("/playlists", params={"limit": 0}), 422)
    finally:
        for uri in uris:
            api.delete(f"/playlists/{uri}")
