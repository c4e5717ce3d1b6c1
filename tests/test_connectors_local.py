"""Local playlists: M3U/M3U8 and PLS parsing, folder layouts, and entries that point nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutagen.flac import FLAC

from siamrec.audio import identify
from siamrec.connectors.local import LocalSource, read_m3u, read_playlist_file, write_m3u
from siamrec.errors import ConnectorError
from siamrec.testing import chord, drums, write_audio
from siamrec.uris import LOCAL_TRACK_PREFIX, local_playlist_uri


@pytest.fixture
def music(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "music"
    files = {
        "a": write_audio(root / "calm" / "a chord.flac", chord(1.5, 220.0)),
        "b": write_audio(root / "calm" / "deeper" / "b.wav", chord(1.5, 330.0)),
        "c": write_audio(root / "beats" / "c.ogg", drums(1.5)),
        "loose": write_audio(root / "loose.wav", chord(1.5, 440.0, bright=True)),
    }
    tags = FLAC(str(files["a"]))
    tags["title"], tags["artist"] = "A Chord", "The Tester"
    tags.save()
    (root / ".hidden").mkdir()
    write_audio(root / ".hidden" / "x.wav", chord(1.5))
    return files


def test_m3u_entries_in_order(tmp_path: Path, music: dict[str, Path]) -> None:
    m3u = tmp_path / "list.m3u8"
    m3u.write_text(
        "#EXTM3U\n#PLAYLIST:Évening\n#EXTINF:2,The Tester - A Chord\nmusic/calm/a%20chord.flac\n"
        f"file://{str(music['b']).replace(' ', '%20')}\nspotify:track:4uLU6hMCjMI75M1A2tKUQC\n\n{music['c']}\n"
    )
    entries = read_m3u(m3u)
    assert entries.name == "Évening"
    assert entries.entries == [
        tmp_path / "music/calm/a%20chord.flac",
        music["b"],
        "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
        music["c"],
    ]
    assert entries.files == [tmp_path / "music/calm/a%20chord.flac", music["b"], music["c"]]
    assert entries.uris == ["spotify:track:4uLU6hMCjMI75M1A2tKUQC"]


def test_pls_entries_by_number(tmp_path: Path, music: dict[str, Path]) -> None:
    pls = tmp_path / "mix.pls"
    pls.write_text(
        "[playlist]\nFile2=music/beats/c.ogg\nTitle2=C\nFile1=music/calm/a chord.flac\nLength1=2\n"
        "File3=spotify:track:4uLU6hMCjMI75M1A2tKUQC\nNumberOfEntries=3\nVersion=2\n"
    )
    entries = read_playlist_file(pls)
    assert entries.name == "mix"
    assert entries.entries == [music["a"], music["c"], "spotify:track:4uLU6hMCjMI75M1A2tKUQC"]
    (tmp_path / "bad.pls").write_text("hello\n")
    with pytest.raises(ConnectorError, match="not a PLS playlist"):
        read_playlist_file(tmp_path / "bad.pls")


def test_missing_and_foreign_entries_are_problems(tmp_path: Path, music: dict[str, Path]) -> None:
    (tmp_path / "notes.txt").write_text("not audio")
    m3u = tmp_path / "mixed.m3u"
    m3u.write_text(f"{music['a']}\ngone.flac\nnotes.txt\nspotify:track:4uLU6hMCjMI75M1A2tKUQC\n")
    source = LocalSource([m3u, tmp_path / "absent.m3u"])
    (playlist,) = list(source.playlists())
    assert playlist.uri == local_playlist_uri("mixed") and playlist.source == "local"
    first, uri_only = playlist.tracks
    assert first.uri == f"{LOCAL_TRACK_PREFIX}{identify(music['a'])}" and first.path == music["a"].resolve()
    assert (first.title, first.artist) == ("A Chord", "The Tester")
    assert uri_only.uri == "spotify:track:4uLU6hMCjMI75M1A2tKUQC" and uri_only.path is None
    assert [str(p) for p in source.problems] == [
        f"mixed.m3u: {tmp_path / 'gone.flac'}: no such file",
        f"mixed.m3u: {tmp_path / 'notes.txt'}: not an audio file (unknown suffix)",
        f"{tmp_path / 'absent.m3u'}: cannot read playlist {tmp_path / 'absent.m3u'}: No such file or directory",
    ]


def test_a_list_of_missing_files_has_no_tracks(tmp_path: Path) -> None:
    m3u = tmp_path / "ghosts.m3u"
    m3u.write_text("one.flac\ntwo.flac\n")
    source = LocalSource([m3u])
    (playlist,) = list(source.playlists())
    assert playlist.tracks == [] and len(source.problems) == 2


def test_one_folder_per_playlist(music: dict[str, Path]) -> None:
    root = music["loose"].parent
    playlists = {p.name: p for p in LocalSource(folders=[root]).playlists()}
    assert sorted(playlists) == ["beats", "calm", "music"]
    assert [t.path for t in playlists["calm"].tracks] == [music["a"].resolve(), music["b"].resolve()]
    assert [t.path for t in playlists["music"].tracks] == [music["loose"].resolve()]
    with pytest.raises(ConnectorError, match="no such folder"):
        list(LocalSource(folders=[root / "nope"]).playlists())


def test_write_then_read_m3u(tmp_path: Path, music: dict[str, Path]) -> None:
    out = tmp_path / "out.m3u"
    write_m3u(out, [(str(music["a"]), "The Tester - A Chord", 1.5), ("spotify:track:x", "Someone - Else", None)])
    assert read_m3u(out).entries == [music["a"], "spotify:track:x"]
