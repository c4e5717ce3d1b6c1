"""What sync-playlists survives: duplicate pids, conflicting local playlists, hostile dumps and manifests, and
a Spotify login on a machine without a browser; each compared with a full dump of the store."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.cli import assert_one_error_line, invoke, run_siamrec
from tests.servers import FakePlaylist, SpotifyServer, fake_track, mpd_playlist, mpd_track
from tests.stores import dump_store


def _slice(path: Path, playlists: list[dict]) -> Path:
    path.write_text(json.dumps({"info": {}, "playlists": playlists}))
    return path


def _sync_json(*args: str) -> tuple[int, dict]:
    done = invoke("sync-playlists", *args, "--json")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_duplicate_mpd_pid_first_wins_and_is_reported(home: Path, tmp_path: Path) -> None:
    first = mpd_playlist(7, "first", [mpd_track("spotify:track:a", "A", "X"), mpd_track("spotify:track:b", "B", "X")])
    again = mpd_playlist(7, "again", [mpd_track("spotify:track:c", "C", "Y")])
    _slice(tmp_path / "mpd.slice.0-999.json", [first, again])  # twice in one slice
    _slice(tmp_path / "mpd.slice.1000-1999.json", [mpd_playlist(7, "third", [mpd_track("spotify:track:d", "D", "Z")])])
    status, report = _sync_json("--mpd", str(tmp_path))
    assert status == 1 and report["playlists"] == 1
    duplicates = [f for f in report["failed"] if "duplicate pid" in f["reason"]]
    assert len(duplicates) == 2 and "mpd.slice.0-999.json" in duplicates[0]["reason"]
    stored = dump_store(home)
    names = [record["name"] for _, record in stored["playlists"].values()]
    assert names == ["first"]
    status, report = _sync_json("--mpd", str(tmp_path))
    assert report["playlists_written"] == 0 and report["tracks_written"] == 0
    assert dump_store(home) == stored  # idempotent: no flip between versions


def test_m3u_and_folder_with_one_name_never_overwrite(
    home: Path,
    tmp_path: Path,
    library_files: dict[str, Path],
) -> None:
    files = sorted(library_files.values())
    (tmp_path / "lists" / "x").mkdir(parents=True)
    for file in files[3:]:
        (tmp_path / "lists" / "x" / file.name).symlink_to(file)
    m3u = tmp_path / "x.m3u8"
    m3u.write_text("\n".join(str(f) for f in files[:3]) + "\n")
    args = ("--m3u", str(m3u), "--folder", str(tmp_path / "lists"))
    status, report = _sync_json(*args)
    assert status == 1
    assert report["playlists"] == 1 and report["playlists_written"] == 1
    assert [f["reason"][:9] for f in report["failed"]] == ["conflict:"]
    stored = dump_store(home)
    ((_, playlist),) = stored["playlists"].values()
    assert len(playlist["track_uris"]) == 3  # the M3U's, read first
    status, report = _sync_json(*args)
    assert report["playlists_written"] == 0 and dump_store(home) == stored


def test_hostile_dump_fields(home: Path, tmp_path: Path) -> None:
    nested = tmp_path / "nested" / "mpd.slice.0-999.json"
    nested.parent.mkdir()
    nested.write_text("[" * 100_000 + "]" * 100_000)
    good = mpd_playlist(1, "ok", [mpd_track("spotify:track:a", "A", "X") | {"duration_ms": 1e999}])
    good["tracks"].append(mpd_track("spotify:track:b", "B", "X") | {"track_name": {"not": "text"}})
    good_slice = _slice(tmp_path / "mpd.slice.1000-1999.json", [good])
    status, report = _sync_json("--mpd", str(nested), "--mpd", str(good_slice))
    assert status == 1 and report["playlists"] == 1
    assert any("nested too deeply" in f["reason"] for f in report["failed"])
    tracks = {uri: record for uri, (_, record) in dump_store(home)["tracks"].items()}
    assert tracks["spotify:track:a"].get("duration_s") is None
    assert tracks["spotify:track:b"]["title"] == ""


def test_bad_manifest_and_overlong_m3u_lines(home: Path, tmp_path: Path) -> None:
    m3u = tmp_path / "long.m3u"
    m3u.write_text("#EXTM3U\n" + "a" * 100_000 + ".ogg\n" + "b/" * 3000 + "c.ogg\nspotify:track:a\n")
    manifest = tmp_path / "audio.jsonl"
    manifest.write_text('{"track_uri": 5, "path": "x.ogg"}\n{"track_uri": "spotify:track:a", "path": "%s"}\n' % (
        "d" * 5000))  # fmt: skip
    status, report = _sync_json("--m3u", str(m3u), "--audio-manifest", str(manifest))
    assert status == 1 and report["playlists"] == 1
    assert all(len(f["where"]) < 400 for f in report["failed"])
    assert len(report["failed"]) == 4  # two unreadable lines, one manifest line without text, one unreadable path


def test_spotify_me_without_a_browser_does_not_wait_or_print_to_stdout(
    home: Path,
    tmp_path: Path,
) -> None:
    mine = FakePlaylist("Mine", [fake_track("Artist", "Song")])
    with SpotifyServer([mine], users={"me": [mine.id]}) as server:
        env = {**os.environ, **server.env(), "SPOTIPY_REDIRECT_URI": "http://127.0.0.1:8080/callback"}
        started = time.monotonic()
        done = run_siamrec("sync-playlists", "--spotify-user", "me", "--json", env=env)  # stdin: /dev/null
        assert time.monotonic() - started < 60
        assert done.stdout == ""
        assert_one_error_line(_without_prompt(done), "no redirect address")
        assert "https://accounts.spotify.com/authorize?" in done.stderr
        assert dump_store(home) == {}  # the store was never opened while waiting

        done = run_siamrec(
            "sync-playlists",
            "--spotify-user",
            "me",
            "--spotify-login-wait",
            "1",
            "--json",
            stdin=subprocess.PIPE,
            env=env,
        )  # fmt: skip  (a pipe nobody writes: times out)
        assert_one_error_line(_without_prompt(done), "within 1 s")

        redirect = "http://127.0.0.1:8080/callback?code=good-code\n"
        done = run_siamrec("sync-playlists", "--spotify-user", "me", "--json", env=env, input=redirect)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["playlists"] == 1
        assert (home / "spotify-token.json").is_file()
        done = run_siamrec("sync-playlists", "--spotify-user", "me", "--json", env=env)  # cached: no prompt
        assert done.returncode == 0 and "authorize?" not in done.stderr


def _without_prompt(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """`done` without the login prompt's lines on stderr."""
    kept = [line for line in done.stderr.splitlines() if "spotify" not in line.lower() or "error" in line]
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, "\n".join(kept))
