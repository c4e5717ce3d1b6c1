"""`siamrec feedback` and `/playlists/{uri}/feedback`: real CLI processes and the real service on one store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from siamrec.audio import identify
from siamrec.uris import local_track_uri
from tests.cli import answer, assert_one_error_line, home_env, run_siamrec
from tests.service import PROBLEM, service_config, serving
from tests.stores import full_dump


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, library_files: dict[str, Path]) -> Path:
    """A home holding the seven test tracks and the playlist Chords (two of them): five tracks are cold."""
    home = tmp_path_factory.mktemp("feedback") / "home"
    answer("add-track", *(str(p) for p in library_files.values()), env=home_env(home, tiny_model))
    answer("playlist", "create", "Chords", str(library_files["chord_a.wav"]),
           str(library_files["chord_c.flac"]), env=home_env(home, tiny_model))  # fmt: skip
    return home


@pytest.fixture
def home(library: Path, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of `library` for one test, set as this process's SIAMREC_HOME (the CLI runs use it)."""
    copy = tmp_path / "home"
    shutil.copytree(library, copy)
    monkeypatch.setenv("SIAMREC_HOME", str(copy))
    monkeypatch.setenv("SIAMREC_MODEL", str(tiny_model))
    monkeypatch.setenv("COLUMNS", "100")
    return copy


def uri_of(files: dict[str, Path], name: str) -> str:
    return local_track_uri(identify(files[name]))


def ranked(results: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(r["track_uri"], round(r["score"], 5)) for r in results]


def api(home: Path, model: Path) -> Any:
    return serving(service_config(home, model))


def test_cli_and_http_give_the_same_results(
    home: Path, tmp_path: Path, tiny_model: Path, library_files: dict[str, Path]
) -> None:
    other = tmp_path / "other"
    shutil.copytree(home, other)
    before = answer("recommend", "--playlist", "Chords", "-k", "5")["results"]
    keep, drop = before[0]["track_uri"], before[1]["track_uri"]
    by_cli = answer("feedback", "Chords", "--accept", keep, "--reject", drop)
    assert by_cli == {"playlist_uri": by_cli["playlist_uri"], "accepted": [keep], "rejected": [drop],
                      "added_to_playlist": [keep], "changed": True}  # fmt: skip
    cli_list = answer("feedback", "Chords", "--list")
    cli_best = answer("recommend", "--playlist", "Chords", "-k", "5", "--strategy", "best-score")
    cli_mean = answer("recommend", "--playlist", "Chords", "-k", "5")
    shown = answer("playlist", "show", "Chords")
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
    first = answer("recommend", "--playlist", "Chords", "-k", "5")["results"]
    drop, keep = first[0]["track_uri"], first[1]["track_uri"]

    def suited(track: str) -> list[str]:
        return [r["name"] for r in answer("recommend", "--track", track)["results"]]

    assert "Chords" in suited(drop)
    answer("feedback", "Chords", "--reject", drop)
    assert "Chords" not in suited(drop)  # nor is the playlist suggested for the track it rejected
    after = answer("recommend", "--playlist", "Chords", "-k", "5")["results"]
    assert drop not in [r["track_uri"] for r in after]
    same = [(r["track_uri"], r["score"]) for r in first if r["track_uri"] != drop]
    assert [(r["track_uri"], r["score"]) for r in after] != same  # not only left out: the query moved away from it
    answer("feedback", "Chords", "--accept", keep)
    changed = answer("feedback", "Chords", "--reject", keep)  # the latest answer wins
    assert changed["accepted"] == [] and changed["rejected"] == sorted([drop, keep]) and changed["changed"]
    shown = answer("playlist", "show", "Chords")
    assert keep not in [t["track_uri"] for t in shown["tracks"]]  # it was there only because it was accepted
    answer("feedback", "Chords", "--accept", drop)
    cleared = answer("feedback", "Chords", "--clear")
    assert cleared["accepted"] == cleared["rejected"] == []
    assert answer("feedback", "Chords", "--list") == cleared
    shown = answer("playlist", "show", "Chords")
    assert drop in [t["track_uri"] for t in shown["tracks"]]  # accepted tracks stay in the playlist
    text = run_siamrec("feedback", "Chords", "--accept", drop)
    assert text.returncode == 0 and text.stdout.rstrip().endswith("stored"), text.stdout
    text = run_siamrec("feedback", "Chords", "--accept", drop)
    assert text.returncode == 0 and "nothing changed" in text.stdout


def test_feedback_survives_resyncs_and_goes_with_the_playlist(
    home: Path, tmp_path: Path, tiny_model: Path, library_files: dict[str, Path]
) -> None:
    m3u = tmp_path / "Mix.m3u"
    m3u.write_text(f"{library_files['chord_a.wav']}\n{library_files['drums_120.wav']}\n")
    answer("playlist", "import", str(m3u))
    drop = uri_of(library_files, "noise.ogg")
    stored = answer("feedback", "Mix", "--reject", drop)
    answer("playlist", "import", str(m3u))  # unchanged
    m3u.write_text(f"{library_files['chord_a.wav']}\n{library_files['bright_a.ogg']}\n")
    answer("playlist", "import", str(m3u))  # rewritten: new tracks, new centroid
    assert answer("playlist", "show", "Mix")["tracks"][1]["track_uri"] == uri_of(library_files, "bright_a.ogg")
    kept = answer("feedback", "Mix", "--list")
    assert kept == {k: stored[k] for k in ("playlist_uri", "accepted", "rejected")}
    found = answer("recommend", "--playlist", "Mix", "-k", "10", "--include-warm")["results"]
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
    answer("feedback", "Chords", "--reject", track)
    before = full_dump(home)
    assert_one_error_line(run_siamrec("feedback", "Nope", "--reject", track), "no playlist named 'Nope'", alone=True)
    assert_one_error_line(
        run_siamrec("feedback", "Chords", "--accept", track, "--reject", "local:track:missing"),
        "no track 'local:track:missing'",
        alone=True,
    )
    assert_one_error_line(run_siamrec("feedback", "Chords", "--accept", track, "--reject", track), "both", alone=True)
    assert_one_error_line(run_siamrec("feedback", "Chords"), "--list", alone=True)
    assert_one_error_line(run_siamrec("feedback", "Chords", "--list", "--clear"), "one of them", alone=True)
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
