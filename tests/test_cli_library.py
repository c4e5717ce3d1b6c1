"""The library path through the real CLI process: one-line errors, exit codes, an intact store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mutagen.flac import FLAC

from siamrec import constants as C
from siamrec.audio import identify
from siamrec.config import resolve_settings
from siamrec.store import Store
from siamrec.testing import chord, drums, write_audio
from tests.cli import assert_one_error_line, invoke, run_siamrec


def stored_state() -> dict[str, list[float]]:
    with Store.open(resolve_settings()) as store:
        model = store.stored_model()
        assert model is not None
        store.bind_model(*model, create=False)
        return {t.record.track_uri: t.vector.round(6).tolist() for t in store.iter_tracks()}


@pytest.fixture
def filled_home(home: Path, library_files: dict[str, Path]) -> Path:
    invoke("add-track", str(library_files["chord_a.wav"].parent), check=True)
    return home


def test_add_track_twice_keeps_one_point(home: Path, library_files: dict[str, Path]) -> None:
    first = json.loads(invoke("add-track", "--json", str(library_files["chord_a.wav"]), check=True).stdout)
    again = json.loads(invoke("add-track", "--json", str(library_files["chord_a.wav"]), check=True).stdout)
    assert (first["added"], again["added"], again["updated"], again["unchanged"]) == (1, 0, 0, 1)  # not re-read
    assert again["tracks_in_store"] == 1


def test_tags_and_overrides(home: Path, tmp_path: Path) -> None:
    path = write_audio(tmp_path / "song.flac", chord(3.0, 196.0))
    tagged = FLAC(str(path))  # tags written the way a tagger would
    tagged["title"], tagged["artist"] = "Tagged Title", "Tagged Artist"
    tagged.save()
    invoke("add-track", str(path), check=True)
    invoke("add-track", str(path), "--uri", "spotify:track:abc", "--artist", "Override", check=True)
    with Store.open(resolve_settings()) as store:
        store.bind_model(*store.stored_model(), create=False)
        tracks = store.get_tracks([f"local:track:{identify(path)}", "spotify:track:abc"])
    records = {uri: t.record for uri, t in tracks.items()}
    assert records["spotify:track:abc"].artist == "Override"
    assert records["spotify:track:abc"].title == "Tagged Title"
    local = next(r for u, r in records.items() if u.startswith("local:"))
    assert (local.title, local.artist) == ("Tagged Title", "Tagged Artist")


@pytest.mark.parametrize(
    ("maker", "fragment"),
    [
        (
            lambda d, lib: (d / "notes.mp3").write_text("not audio at all\n" * 40) and d / "notes.mp3",
            "not an audio file",
        ),
        (
            lambda d, lib: (d / "cut.mp3").write_bytes(lib["bright_e.mp3"].read_bytes()[:600]) and d / "cut.mp3",
            "cut.mp3",
        ),
        (lambda d, lib: (d / "zero.ogg").touch() or d / "zero.ogg", "empty"),
        (lambda d, lib: write_audio(d / "blip.wav", chord(0.2)), "at least"),
        (lambda d, lib: write_audio(d / "silence.wav", np.zeros(10 * C.SAMPLE_RATE, np.float32)), "silence"),
    ],
    ids=["text-as-mp3", "truncated-mp3", "zero-bytes", "0.2s-clip", "digital-silence"],
)
def test_bad_files_fail_cleanly_and_keep_the_store(
    filled_home: Path, tmp_path: Path, library_files: dict[str, Path], maker, fragment: str
) -> None:
    before = stored_state()
    bad = maker(tmp_path, library_files)
    result = invoke("add-track", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and fragment in skipped[0], result.stderr
    assert stored_state() == before


def test_eight_channel_96k_wav_is_added(home: Path, tmp_path: Path) -> None:
    path = write_audio(tmp_path / "surround.wav", drums(4.0, sample_rate=96_000), 96_000, channels=8)
    summary = json.loads(invoke("add-track", "--json", str(path), check=True).stdout)
    assert summary["added"] == 1 and summary["failed"] == []


def test_folder_mixing_good_and_bad_files(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    write_audio(folder / "a" / "good1.wav", chord(3.0, 220.0))
    write_audio(folder / "b" / "good2.ogg", drums(3.0))
    (folder / "b" / "broken.flac").write_bytes(b"fLaC" + b"\0" * 100)
    (folder / "cover.jpg").write_bytes(b"\xff\xd8 not audio, not listed")
    result = invoke("add-track", "--json", str(folder))
    summary = json.loads(result.stdout)
    assert result.returncode == 1
    assert summary["added"] == 2 and [Path(f["path"]).name for f in summary["failed"]] == ["broken.flac"]
    assert len(stored_state()) == 2


def test_playlist_recommend_and_m3u(filled_home: Path, library_files: dict[str, Path], tmp_path: Path) -> None:
    m3u = tmp_path / "chords.m3u"
    m3u.write_text(f"#EXTM3U\n#EXTINF:4,chord a\n{library_files['chord_a.wav']}\nchord_c.flac\n")
    (tmp_path / "chord_c.flac").symlink_to(library_files["chord_c.flac"])
    invoke("playlist", "import", str(m3u), check=True)
    listed = json.loads(invoke("playlist", "list", "--json", check=True).stdout)
    assert [(p["name"], p["tracks"]) for p in listed] == [("chords", 2)]
    info = json.loads(invoke("info", "--json", check=True).stdout)
    assert (info["tracks"], info["cold_tracks"], info["playlists"], info["model"]) == (7, 5, 1, "tiny")
    out = tmp_path / "next.m3u"
    result = json.loads(
        invoke("recommend", "--playlist", "chords", "-k", "3", "--json", "--m3u", str(out), check=True).stdout
    )
    assert len(result["results"]) == 3
    assert all(
        r["path"] not in {str(library_files["chord_a.wav"]), str(library_files["chord_c.flac"])}
        for r in result["results"]
    )
    assert all(r["because_of"] for r in result["results"])
    assert out.read_text().count("#EXTINF") == 3
    by_track = json.loads(
        invoke("recommend", "--track", str(library_files["chord_a.wav"]), "--json", check=True).stdout
    )
    assert by_track["results"][0]["name"] == "chords"


def test_unknown_playlist_is_one_line(filled_home: Path) -> None:
    assert_one_error_line(invoke("recommend", "--playlist", "No Such List"), "no playlist named 'No Such List'")


def test_missing_model_is_one_line(home: Path, library_files: dict[str, Path], monkeypatch) -> None:
    monkeypatch.setenv("SIAMREC_MODEL", str(home / "missing.onnx"))
    assert_one_error_line(invoke("add-track", str(library_files["noise.ogg"])), "missing.onnx not found")


def test_mismatched_model_is_one_line(
    filled_home: Path, other_model: Path, library_files: dict[str, Path], monkeypatch
) -> None:
    monkeypatch.setenv("SIAMREC_MODEL", str(other_model))
    before = stored_state()
    assert_one_error_line(invoke("add-track", str(library_files["noise.ogg"])), "holds vectors of model 'tiny'")
    assert stored_state() == before


def test_second_process_on_the_embedded_store(filled_home: Path) -> None:
    holder = Store.open(resolve_settings())  # this process holds the embedded store
    try:
        assert_one_error_line(run_siamrec("playlist", "list"), "in use by another siamrec process")
    finally:
        holder.close()
    invoke("playlist", "list", check=True)


def _retag(path: Path, title: str) -> None:
    tagged = FLAC(str(path))
    tagged["title"] = title
    tagged.save()


def test_retagged_file_updates_its_one_point(home: Path, tmp_path: Path) -> None:
    path = write_audio(tmp_path / "song.flac", chord(3.0, 196.0))
    _retag(path, "Before")
    first = json.loads(invoke("add-track", "--json", str(path), check=True).stdout)
    _retag(path, "After")  # the bytes change, the audio does not
    again = json.loads(invoke("add-track", "--json", str(path), check=True).stdout)
    assert (first["added"], again["added"], again["updated"]) == (1, 0, 1)
    assert first["track_uris"] == again["track_uris"] and again["tracks_in_store"] == 1
    with Store.open(resolve_settings()) as store:
        store.bind_stored_model()
        (track,) = store.get_tracks(again["track_uris"]).values()
    assert track.record.title == "After"


def test_same_audio_under_two_uris_is_never_recommended_to_itself(home: Path, tmp_path: Path) -> None:
    seed = write_audio(tmp_path / "seed.wav", chord(3.0, 220.0))
    other = write_audio(tmp_path / "other.wav", drums(3.0))
    invoke("playlist", "create", "Mine", str(seed), check=True)
    invoke("add-track", str(seed), "--uri", "spotify:track:same", check=True)  # the seed's audio again
    invoke("add-track", str(other), check=True)
    result = json.loads(invoke("recommend", "--playlist", "Mine", "--json", check=True).stdout)
    assert [r["track_uri"] for r in result["results"]] == [f"local:track:{identify(other)}"]


def test_playlist_create_with_nothing_usable_keeps_the_stored_playlist(
    filled_home: Path, tmp_path: Path, library_files
):
    invoke("playlist", "create", "Keep", str(library_files["chord_a.wav"]), "spotify:track:notyet", check=True)
    before = json.loads(invoke("playlist", "show", "Keep", "--json", check=True).stdout)
    assert [(t["track_uri"].split(":")[0], t["has_audio"]) for t in before["tracks"]] == [
        ("local", True),
        ("spotify", False),  # referenced, its audio not added yet
    ]
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    result = invoke("playlist", "create", "Keep", str(bad), str(tmp_path / "missing.ogg"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert json.loads(invoke("playlist", "show", "Keep", "--json", check=True).stdout) == before


def test_playlist_import_does_what_it_can_and_prints_one_json_document(
    filled_home: Path, tmp_path: Path, library_files: dict[str, Path]
) -> None:
    bad = tmp_path / "bad.pls"
    bad.write_text("no playlist section here\n")
    good = tmp_path / "good.m3u"
    good.write_text(f"{library_files['chord_a.wav']}\n{library_files['drums_90.flac']}\n")
    result = invoke("playlist", "import", "--json", str(bad), str(good))
    report = json.loads(result.stdout)  # one document, whatever the number of files
    assert result.returncode == 1 and report["playlists"] == 1 and len(report["failed"]) == 1
    listed = json.loads(invoke("playlist", "list", "--json", check=True).stdout)
    assert [(p["name"], p["tracks"]) for p in listed] == [("good", 2)]


def test_names_that_slug_alike_stay_two_playlists(filled_home: Path, library_files: dict[str, Path]) -> None:
    for name, track in [("Rock & Roll", "chord_a.wav"), ("rock-roll!", "drums_90.flac"), ("Музыка", "noise.ogg"),
                        ("Песни", "chord_c.flac")]:  # fmt: skip
        invoke("playlist", "create", name, str(library_files[track]), check=True)
    listed = json.loads(invoke("playlist", "list", "--json", check=True).stdout)
    assert [p["name"] for p in listed] == ["Rock & Roll", "rock-roll!", "Музыка", "Песни"]  # by name, any case
    assert len({p["playlist_uri"] for p in listed}) == 4
    for options, names in [(("--name", "ROCK", "--limit", "1"), ["Rock & Roll"]), (("--name", "мУ"), ["Музыка"]),
                           (("--name", "rock", "--limit", "5"), ["Rock & Roll", "rock-roll!"])]:  # fmt: skip
        found = json.loads(invoke("playlist", "list", *options, "--json", check=True).stdout)
        assert [p["name"] for p in found] == names, options
