"""`siamrec sync-playlists`: what lands in the store, idempotence, bad input, and kill-and-resume."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siamrec.config import resolve_settings
from siamrec.connectors.base import PlaylistSource
from siamrec.connectors.cache import AudioCache
from siamrec.connectors.fetch import Fetcher
from siamrec.connectors.local import LocalSource
from siamrec.connectors.mpd import MpdSource
from siamrec.connectors.search import FetchOptions, url_template_search
from siamrec.connectors.spotify import SpotifySource
from siamrec.connectors.sync import Sync, SyncOptions, SyncReport
from siamrec.embed import TrackEncoder
from siamrec.library import add_paths
from siamrec.store import Store, playlist_centroid
from siamrec.testing import chord, drums, noise, write_audio
from tests.cli import assert_one_error_line, invoke, run_siamrec, run_until_killed
from tests.servers import (
    FakePlaylist,
    FileServer,
    Response,
    SpotifyServer,
    fake_track,
    mpd_playlist,
    mpd_track,
    spotify_id,
    write_mpd_slices,
)
from tests.stores import snapshot

SIGNALS = [
    chord(2.0, 220.0),
    chord(2.0, 330.0, bright=True),
    drums(2.0),
    drums(2.0, 90.0, seed=1),
    noise(2.0),
    chord(2.0, 261.6),
    chord(2.0, 392.0, bright=True),
]
MEMBERS = {0: [0, 1, 2, 3], 1: [2, 3, 4, 5], 2: [4, 5, 6, 0]}


@dataclass
class Corpus:
    """Seven 2 s tracks in three playlists (two slices), the audio, and a tracks.tsv-style manifest."""

    root: Path
    ids: list[str]
    mpd: Path
    manifest: Path

    @property
    def uris(self) -> list[str]:
        return [f"spotify:track:{i}" for i in self.ids]


def make_corpus(root: Path) -> Corpus:
    ids = [spotify_id(f"track {i}") for i in range(len(SIGNALS))]
    for track_id, samples in zip(ids, SIGNALS, strict=True):
        write_audio(root / "audio" / f"{track_id}.ogg", samples)
    tracks = [mpd_track(f"spotify:track:{t}", f"Song {i}", f"Artist {i % 3}", 2000) for i, t in enumerate(ids)]
    playlists = [
        mpd_playlist(pid, f"List {pid}", [tracks[i] for i in members], followers=pid + 1)
        for pid, members in MEMBERS.items()
    ]
    write_mpd_slices(root / "mpd", playlists, per_slice=2)
    manifest = root / "tracks.tsv"
    rows = [f"spotify:track:{t}\taudio/{t}.ogg\t2000\tx" for t in ids]
    manifest.write_text("track_uri\tpath\tduration_ms\tplaylist\n" + "\n".join(rows) + "\n")
    return Corpus(root, ids, root / "mpd", manifest)


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return make_corpus(tmp_path / "corpus")


@pytest.fixture(scope="module")
def encoder(tiny_model: Path) -> TrackEncoder:
    return TrackEncoder(tiny_model, device="cpu")


def sync(store: Store, encoder: TrackEncoder, *sources: PlaylistSource, **options: Any) -> SyncReport:
    return Sync(store, encoder, SyncOptions(batch_size=3, **options)).run(sources)


# ---- in process -----------------------------------------------------------------------------------------


def test_mpd_with_a_manifest_fills_the_store(memory_store: Store, encoder: TrackEncoder, corpus: Corpus) -> None:
    report = sync(memory_store, encoder, MpdSource([corpus.mpd]), audio_manifest=corpus.manifest)
    assert (report.playlists, report.tracks, report.with_audio, report.embedded, report.failed) == (3, 7, 7, 7, [])
    stored = memory_store.get_tracks(corpus.uris, with_vectors=True)
    first = stored[corpus.uris[0]]
    assert (first.record.title, first.record.artist, first.record.duration_s) == ("Song 0", "Artist 0", 2.0)
    assert first.record.playlists == ["mpd:playlist:0", "mpd:playlist:2"] and first.record.source == "mpd"
    assert first.record.path == str((corpus.root / "audio" / f"{corpus.ids[0]}.ogg").resolve())
    (record, centroid), *_ = memory_store.get_playlists(["mpd:playlist:1"]).values()
    assert record.track_uris == [corpus.uris[i] for i in MEMBERS[1]] and record.followers == 2
    expected = playlist_centroid(np.stack([stored[corpus.uris[i]].vector for i in MEMBERS[1]]))
    np.testing.assert_allclose(centroid, expected, atol=1e-6)


def test_audio_added_before_under_another_uri_is_not_embedded_again(
    memory_store: Store, encoder: TrackEncoder, corpus: Corpus, decoded: list[Path]
) -> None:
    """A folder added, then synced from playlists that name the same files: the same bytes hold the same audio,
    so the sync reuses the stored vectors and identities, and neither decodes the files nor runs the model."""
    added = add_paths(memory_store, encoder, [corpus.root / "audio"])
    assert added.embedded == len(added.added) == 7
    local = {t.record.audio_id: t.vector for t in memory_store.iter_tracks()}
    decoded.clear()
    report = sync(memory_store, encoder, MpdSource([corpus.mpd]), audio_manifest=corpus.manifest)
    assert (report.tracks, report.with_audio, report.embedded, report.skipped, report.failed) == (7, 7, 0, 7, [])
    assert decoded == []
    stored = memory_store.get_tracks(corpus.uris, with_vectors=True)
    assert len(stored) == 7 and memory_store.count_tracks() == 14
    for track in stored.values():
        assert track.record.source == "mpd" and track.record.audio_id in local
        np.testing.assert_allclose(track.vector, local[track.record.audio_id], atol=1e-6)  # stored: renormalised


def test_a_second_run_changes_nothing(memory_store: Store, encoder: TrackEncoder, corpus: Corpus) -> None:
    sync(memory_store, encoder, MpdSource([corpus.mpd]), audio_manifest=corpus.manifest)
    before = snapshot(memory_store)
    before_added = {t.record.track_uri: t.record.added_at for t in memory_store.iter_tracks(with_vectors=False)}
    again = sync(memory_store, encoder, MpdSource([corpus.mpd]), audio_manifest=corpus.manifest)
    assert (again.tracks_written, again.playlists_written, again.embedded, again.skipped) == (0, 0, 0, 7)
    assert snapshot(memory_store) == before
    assert {t.record.track_uri: t.record.added_at for t in memory_store.iter_tracks(with_vectors=False)} == before_added


def test_metadata_first_audio_later_and_vectors_survive(
    memory_store: Store, encoder: TrackEncoder, corpus: Corpus
) -> None:
    bare = sync(memory_store, encoder, MpdSource([corpus.mpd]))
    assert (bare.tracks, bare.with_audio, len(bare.without_audio), bare.playlists_without_audio) == (7, 0, 7, 3)
    assert all(c is None for _, c in memory_store.get_playlists([f"mpd:playlist:{p}" for p in MEMBERS]).values())
    sync(memory_store, encoder, MpdSource([corpus.mpd]), audio_manifest=corpus.manifest)
    embedded = snapshot(memory_store)
    assert all(c is not None for _, c in embedded["playlists"].values())
    metadata_only = sync(memory_store, encoder, MpdSource([corpus.mpd]))  # no audio source this time
    assert metadata_only.with_audio == 7 and snapshot(memory_store) == embedded


def test_a_track_leaving_a_playlist_leaves_it_in_the_store(
    memory_store: Store, encoder: TrackEncoder, corpus: Corpus
) -> None:
    sync(memory_store, encoder, MpdSource([corpus.mpd]), audio_manifest=corpus.manifest)
    path = corpus.mpd / "data" / "mpd.slice.0-1.json"
    document = json.loads(path.read_text())
    document["playlists"][0]["tracks"] = document["playlists"][0]["tracks"][1:]  # drop track 0 from List 0
    path.write_text(json.dumps(document))
    report = sync(memory_store, encoder, MpdSource([corpus.mpd]), audio_manifest=corpus.manifest)
    assert report.playlists_written == 1 and report.tracks_written == 0
    assert memory_store.get_tracks([corpus.uris[0]])[corpus.uris[0]].record.playlists == ["mpd:playlist:2"]


def test_local_playlists_and_their_failures(
    memory_store: Store, encoder: TrackEncoder, corpus: Corpus, tmp_path: Path
) -> None:
    (tmp_path / "fake.ogg").write_text("<html>not audio</html>")
    m3u = tmp_path / "mine.m3u"
    audio = corpus.root / "audio"
    m3u.write_text(f"{audio / corpus.ids[0]}.ogg\n{audio / corpus.ids[1]}.ogg\nmissing.ogg\nfake.ogg\n")
    report = sync(memory_store, encoder, LocalSource([m3u], [audio.parent]))
    assert report.playlists == 2 and report.embedded == 7
    reasons = {Path(p.where.rsplit(": ", 1)[-1]).name: p.reason for p in report.failed}
    assert reasons.keys() == {"missing.ogg", "fake.ogg"} and reasons["missing.ogg"] == "no such file"
    assert "not an audio file" in reasons["fake.ogg"]
    mine, folder = memory_store.find_playlist("mine"), memory_store.find_playlist("audio")
    # what is not audio never becomes a track of the playlist; the same audio is the same track
    assert len(mine.track_uris) == 2 and set(mine.track_uris) < set(folder.track_uris)


def test_zero_resolvable_tracks_keep_what_was_stored(
    memory_store: Store, encoder: TrackEncoder, corpus: Corpus, tmp_path: Path
) -> None:
    m3u = tmp_path / "mine.m3u"
    m3u.write_text(f"{corpus.root / 'audio' / corpus.ids[0]}.ogg\n")
    sync(memory_store, encoder, LocalSource([m3u]))
    before = snapshot(memory_store)
    m3u.write_text("gone.ogg\nalso-gone.ogg\n")
    report = sync(memory_store, encoder, LocalSource([m3u]))
    messages = [str(p) for p in report.failed]
    assert messages[-1] == "mine (local:playlist:mine): no resolvable tracks; the playlist was not saved"
    assert len(messages) == 3 and snapshot(memory_store) == before


def test_bad_audio_and_missing_manifest_files_are_per_track(
    memory_store: Store, encoder: TrackEncoder, corpus: Corpus
) -> None:
    (corpus.root / "audio" / f"{corpus.ids[1]}.ogg").write_text("<html>oops</html>")
    (corpus.root / "audio" / f"{corpus.ids[2]}.ogg").unlink()
    report = sync(memory_store, encoder, MpdSource([corpus.mpd]), audio_manifest=corpus.manifest)
    assert report.embedded == 5 and report.with_audio == 5
    failed = {p.where: p.reason for p in report.failed}
    assert "not an audio file" in failed[corpus.uris[1]] or "corrupt" in failed[corpus.uris[1]]
    assert failed[corpus.uris[2]].startswith("the audio manifest names") and failed[corpus.uris[2]].endswith(
        "not exist"
    )


def test_spotify_playlists_with_fetched_audio(
    memory_store: Store, encoder: TrackEncoder, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracks = [fake_track(f"Artist {i}", f"Song {i}", 2000) for i in range(3)]
    playlist = FakePlaylist("Fetched", tracks, followers=9)
    served = tmp_path / "served"
    for i, track in enumerate(tracks):
        write_audio(served / f"{track['id']}.ogg", SIGNALS[i])
    with SpotifyServer([playlist]) as api, FileServer(served) as files:
        for key, value in api.env().items():
            monkeypatch.setenv(key, value)
        files.routes[f"{tracks[2]['id']}.ogg"] = Response(200, b"<html>login</html>", {"Content-Type": "audio/ogg"})
        cache = AudioCache(tmp_path / "cache")
        fetcher = Fetcher(cache, url_template_search(f"{files.base}/{{id}}.ogg"), FetchOptions(min_interval_s=0))
        source = SpotifySource([playlist.id], cache_dir=tmp_path)
        report = sync(memory_store, encoder, source, cache=cache, fetcher=fetcher)
    assert (report.fetched, report.embedded, report.with_audio) == (2, 2, 2)
    (problem,) = report.failed
    assert problem.where == tracks[2]["uri"] and "HTML page instead of audio" in problem.reason
    stored = memory_store.find_playlist("Fetched")
    assert stored.followers == 9 and stored.track_uris == [t["uri"] for t in tracks]


# ---- the command, as a process --------------------------------------------------------------------------


def test_bad_input_gives_clear_lines_and_keeps_the_store(home: Path, corpus: Corpus, tmp_path: Path) -> None:
    run_siamrec("sync-playlists", "--mpd", str(corpus.mpd), "--audio-manifest", str(corpus.manifest), check=True)
    with Store.open(resolve_settings()) as store:
        before = snapshot(store)
    (corpus.mpd / "data" / "mpd.slice.2-3.json").write_text('{"info": {}, "playlists": [{"pid": 2, "na')
    ghost = tmp_path / "ghosts.m3u"
    ghost.write_text("nothing-here.ogg\n")
    result = run_siamrec(
        "sync-playlists", "--mpd", str(corpus.mpd), "--m3u", str(ghost), "--audio-manifest", str(corpus.manifest)
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert len(failed) == 3
    assert "mpd.slice.2-3.json: not valid JSON" in failed[0]
    assert any(line.endswith("nothing-here.ogg: no such file") for line in failed)
    assert any(
        line.endswith("ghosts (local:playlist:ghosts): no resolvable tracks; the playlist was not saved")
        for line in failed
    )
    with Store.open(resolve_settings()) as store:
        assert snapshot(store) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mpd", "/nonexistent/mpd"], "/nonexistent/mpd: no such Million Playlist Dataset folder or slice file"),
        (["--spotify", "https://open.spotify.com/album/37i9dQZF1DXcBWIGoYBM5M"], "is not a Spotify playlist URL"),
        (["--mpd", ".", "--name", "("], "--name '(' is not a regular expression"),
        (["--top-followers", "5"], "select Million Playlist Dataset playlists: add --mpd"),
        ([], "name a playlist source"),
    ],
)
def test_fatal_errors_are_one_line(home: Path, args: list[str], message: str) -> None:
    """In process, through the same entry point as the `siamrec` command (a subprocess each costs seconds)."""
    result = invoke("sync-playlists", *args)
    assert result.returncode == 1
    assert_one_error_line(result, message, alone=True)


@pytest.mark.parametrize(
    "kill_points",
    [
        pytest.param(("fetch batch 1", "embed batch 2"), id="two-points"),
        pytest.param(
            ("tracks batch 2", "fetch batch 2", "embed batch 1", "playlists batch 1"),
            id="every-phase",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_killed_then_resumed(home: Path, corpus: Corpus, tmp_path: Path, kill_points: tuple[str, ...]) -> None:
    """SIGKILLed between batches at each kill point in turn, then run to the end: the store is the one an
    uninterrupted run makes, no file is downloaded twice, and one more run writes nothing."""
    with FileServer(corpus.root / "audio") as files:
        url = f"{files.base}/{{id}}.ogg"
        args = ["sync-playlists", "--mpd", str(corpus.mpd), "--audio-url", url, "--fetch-interval", "0", "--json"]
        reference_home = tmp_path / "reference"
        reference = run_siamrec(*args, env={**os.environ, "SIAMREC_HOME": str(reference_home)})
        assert reference.returncode == 0, reference.stderr
        once = dict(files.hits)
        assert sorted(once) == sorted(f"{t}.ogg" for t in corpus.ids)

        resumed = {**os.environ, "SIAMREC_SYNC_BATCH": "3", "SIAMREC_SYNC_PAUSE": "0.2"}
        for marker in kill_points:
            run_until_killed(args, resumed, f"sync: {marker} done")
        final = run_siamrec(*args)
        assert final.returncode == 0, final.stderr
        assert {name: hits - once[name] for name, hits in files.hits.items()} == once  # each file fetched once
    summary = json.loads(final.stdout)
    assert summary["with_audio"] == 7 and summary["failed"] == []
    with Store.open(resolve_settings(home=str(reference_home))) as store:
        expected = snapshot(store, relative_to=reference_home)
    with Store.open(resolve_settings()) as store:
        assert snapshot(store, relative_to=home) == expected
    again = json.loads(run_siamrec(*args).stdout)
    assert (again["tracks_written"], again["playlists_written"], again["fetched"], again["embedded"]) == (0, 0, 0, 0)


@pytest.fixture(autouse=True)
def _no_spotify_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never reach the real Spotify, whatever the developer's environment holds."""
    for key in ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET", "SIAMREC_SPOTIFY_API", "SIAMREC_SPOTIFY_TOKEN_URL"):
        monkeypatch.delenv(key, raising=False)
    yield
