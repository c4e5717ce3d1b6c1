"""`siamrec feedback` and `/playlists/{uri}/feedback`: real CLI processes and the real service on one store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service import PROBLEM, serving

from siamrec.audio import identify
from siamrec.config import resolve_settings
from siamrec.service.config import ServiceConfig
from siamrec.store import Store
from siamrec.uris import local_track_uri


def siamrec(home: Path, model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m siamrec ARGS` in its own process on `home`."""
    env = {**os.environ, "SIAMREC_HOME": str(home), "SIAMREC_MODEL": str(model), "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "siamrec", *args], capture_output=True, text=True, env=env, timeout=120
    )


def answer(home: Path, model: Path, *args: str) -> Any:
    """The --json document of a command that must succeed."""
    result = siamrec(home, model, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("siamrec: error:") and fragment in lines[0], result.stderr


def full_dump(home: Path) -> dict[str, Any]:
    """Every point of both collections, every named vector (rounded) and the whole payload: feedback included."""
    with Store.open(resolve_settings(home=str(home))) as store:
        store.bind_stored_model()
        dump = {}
        for collection in ("tracks", "playlists"):
            names = sorted(store.backend.vectors(collection) or {})
            dump[collection] = {
                hit.id: ({k: v.round(5).tolist() for k, v in hit.vectors.items()}, hit.payload)
                for hit in store.backend.scroll(collection, vectors=names)
            }
    return dump


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]) -> Path:
    """A home holding the seven test tracks and the playlist Chords (two of them): five tracks are cold."""
    home = tmp_path_factory.mktemp("feedback") / "home"
    answer(home, tiny_model, "add-track", *(str(p) for p in library_files.values()))
    answer(home, tiny_model, "playlist", "create", "Chords", str(library_files["chord_a.wav"]),
           str(library_files["chord_c.flac"]))  # fmt: skip
    return home


@pytest.fixture
def home(library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(library, copy)
    monkeypatch.setenv("SIAMREC_HOME", str(copy))
    return copy


def uri_of(files: dict[str, Path], name: str) -> str:
    return local_track_uri(identify(files[name]))


def ranked(results: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(r["track_uri"], round(r["score"], 5)) for r in results]


def api(home: Path, model: Path) -> Any:
    return serving(ServiceConfig(home=str(home), model=str(model)))


def test_cli_and_http_give_the_same_results(
    home: Path, tmp_path: Path, tiny_model: Path, library_files: dict[str, Path]
) -> None:
    other = tmp_path / "other"
    shutil.copytree(home, other)
    before = answer(home, tiny_model, "recommend", "--playlist", "Chords", "-k", "5")["results"]
    keep, drop = before[0]["track_uri"], before[1]["track_uri"]
    by_cli = answer(home, tiny_model, "feedback", "Chords", "--accept", keep, "--reject", drop)
    assert by_cli == {"playlist_uri": by_cli["playlist_uri"], "accepted": [keep], "rejected": [drop],
                      "added_to_playlist": [keep], "changed": True}  # fmt: skip
    cli_list = answer(home, tiny_model, "feedback", "Chords", "--list")
    cli_best = answer(home, tiny_model, "recommend", "--playlist", "Chords", "-k", "5", "--strategy", "best-score")
    cli_mean = answer(home, tiny_model, "recommend", "--playlist", "Chords", "-k", "5")
    shown = answer(home, tiny_model, "playlist", "show", "Chords")
    assert keep in [t["track_uri"] for t in shown["tracks"]]  # accepted: it joined the playlist
    for results in (cli_mean["results"], cli_best["results"]):
        assert {keep, drop}.isdisjoint(r["track_uri"] for r in results)  # neither comes back
    with api(other, tiny_model) as base, httpx.Client(base_url=base, timeout=30) as client:
        route = f"/playlists/{by_cli['playlist_uri']}/feedback"
        by_http = client.post(route, json={"accept": [keep], "reject": [drop]})
        assert by_http.status_code == 200, by_http.text
        assert by_http.json() == by_cli
        again = client.post("/playlists/Chords/feedback", json={"accept": [keep], "reject": [drop]})
        assert again.json() == {**by_cli, "added_to_playlist": [], "changed": False}  # idempotent
        assert client.get(route).json() == cli_list
        for strategy, expected in (("mean", cli_mean), ("best-score", cli_best)):
            served = client.get("/playlists/Chords/recommendations", params={"k": 5, "strategy": strategy}).json()
            assert ranked(served["results"]) == ranked(expected["results"])
            assert served["results"][0]["because_of"] == expected["results"][0]["because_of"]
        assert keep in client.get("/playlists/Chords").json()["track_uris"]
        assert "/playlists/{uri}/feedback" in client.get("/openapi.json").json()["paths"]
    assert full_dump(other) == full_dump(home)  # one store state, whichever way the answers came


def test_rejections_steer_and_later_answers_win(home: Path, tiny_model: Path) -> None:
    first = answer(home, tiny_model, "recommend", "--playlist", "Chords", "-k", "5")["results"]
    drop, keep = first[0]["track_uri"], first[1]["track_uri"]

    def suited(track: str) -> list[str]:
        return [r["name"] for r in answer(home, tiny_model, "recommend", "--track", track)["results"]]

    assert "Chords" in suited(drop)
    answer(home, tiny_model, "feedback", "Chords", "--reject", drop)
    assert "Chords" not in suited(drop)  # nor is the playlist suggested for the track it rejected
    after = answer(home, tiny_model, "recommend", "--playlist", "Chords", "-k", "5")["results"]
    assert drop not in [r["track_uri"] for r in after]
    same = [(r["track_uri"], r["score"]) for r in first if r["track_uri"] != drop]
    assert [(r["track_uri"], r["score"]) for r in after] != same  # not only left out: the query moved away from it
    answer(home, tiny_model, "feedback", "Chords", "--accept", keep)
    changed = answer(home, tiny_model, "feedback", "Chords", "--reject", keep)  # the latest answer wins
    assert changed["accepted"] == [] and changed["rejected"] == sorted([drop, keep]) and changed["changed"]
    shown = answer(home, tiny_model, "playlist", "show", "Chords")
    assert keep not in [t["track_uri"] for t in shown["tracks"]]  # it was there only because it was accepted
    answer(home, tiny_model, "feedback", "Chords", "--accept", drop)
    cleared = answer(home, tiny_model, "feedback", "Chords", "--clear")
    assert cleared["accepted"] == cleared["rejected"] == []
    assert answer(home, tiny_model, "feedback", "Chords", "--list") == cleared
    shown = answer(home, tiny_model, "playlist", "show", "Chords")
    assert drop in [t["track_uri"] for t in shown["tracks"]]  # accepted tracks stay in the playlist
    text = siamrec(home, tiny_model, "feedback", "Chords", "--accept", drop)
    assert text.returncode == 0 and text.stdout.rstrip().endswith("stored"), text.stdout
    text = siamrec(home, tiny_model, "feedback", "Chords", "--accept", drop)
    assert text.returncode == 0 and "nothing changed" in text.stdout


def test_feedback_survives_resyncs_and_goes_with_the_playlist(
    home: Path, tmp_path: Path, tiny_model: Path, library_files: dict[str, Path]
) -> None:
    m3u = tmp_path / "Mix.m3u"
    m3u.write_text(f"{library_files['chord_a.wav']}\n{library_files['drums_120.wav']}\n")
    answer(home, tiny_model, "playlist", "import", str(m3u))
    drop = uri_of(library_files, "noise.ogg")
    stored = answer(home, tiny_model, "feedback", "Mix", "--reject", drop)
    answer(home, tiny_model, "playlist", "import", str(m3u))  # unchanged
    m3u.write_text(f"{library_files['chord_a.wav']}\n{library_files['bright_a.ogg']}\n")
    answer(home, tiny_model, "playlist", "import", str(m3u))  # rewritten: new tracks, new centroid
    assert answer(home, tiny_model, "playlist", "show", "Mix")["tracks"][1]["track_uri"] == uri_of(
        library_files, "bright_a.ogg"
    )
    kept = answer(home, tiny_model, "feedback", "Mix", "--list")
    assert kept == {k: stored[k] for k in ("playlist_uri", "accepted", "rejected")}
    found = answer(home, tiny_model, "recommend", "--playlist", "Mix", "-k", "10", "--include-warm")["results"]
    assert drop not in [r["track_uri"] for r in found]
    uri = stored["playlist_uri"]
    with api(home, tiny_model) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert client.delete(f"/playlists/{uri}").status_code == 200
        assert client.get(f"/playlists/{uri}/feedback").status_code == 404
        assert client.put(f"/playlists/{uri}", json={"name": "Mix", "track_uris": []}).status_code == 201
        assert client.get(f"/playlists/{uri}/feedback").json() == {"playlist_uri": uri, "accepted": [], "rejected": []}


def test_bad_input_is_one_line_or_one_problem_and_changes_nothing(
    home: Path, tiny_model: Path, library_files: dict[str, Path]
) -> None:
    track = uri_of(library_files, "noise.ogg")
    answer(home, tiny_model, "feedback", "Chords", "--reject", track)
    before = full_dump(home)
    one_error_line(siamrec(home, tiny_model, "feedback", "Nope", "--reject", track), "no playlist named 'Nope'")
    one_error_line(
        siamrec(home, tiny_model, "feedback", "Chords", "--accept", track, "--reject", "local:track:missing"),
        "no track 'local:track:missing'",
    )
    one_error_line(siamrec(home, tiny_model, "feedback", "Chords", "--accept", track, "--reject", track), "both")
    one_error_line(siamrec(home, tiny_model, "feedback", "Chords"), "--list")
    one_error_line(siamrec(home, tiny_model, "feedback", "Chords", "--list", "--clear"), "one of them")
    assert full_dump(home) == before
    with api(home, tiny_model) as base, httpx.Client(base_url=base, timeout=30) as client:
        for route, body, status, fragment in (
            ("/playlists/Nope/feedback", {"reject": [track]}, 404, "no playlist named 'Nope'"),
            ("/playlists/Chords/feedback", {"accept": ["local:track:missing"]}, 404, "local:track:missing"),
            ("/playlists/Chords/feedback", {"accept": [track], "reject": [track]}, 400, "both"),
            ("/playlists/Chords/feedback", {"accept": "local:track:x"}, 422, ""),
            ("/playlists/Chords/feedback", {"accept": ["not a uri"]}, 422, ""),
        ):
            refused = client.post(route, json=body)
            assert refused.status_code == status, refused.text
            assert refused.headers["content-type"].startswith(PROBLEM)
            assert fragment in refused.json()["detail"] and str(home) not in refused.text
        assert client.get("/playlists/Nope/feedback").status_code == 404
        assert client.delete("/playlists/Nope/feedback").status_code == 404
    assert full_dump(home) == before
