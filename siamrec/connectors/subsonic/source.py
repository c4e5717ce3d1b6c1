"""A Subsonic server as a playlist source for the sync, and the fetcher that streams its songs' audio."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import soundfile as sf

from siamrec.connectors.base import Problem, SourcePlaylist, SourceTrack
from siamrec.connectors.cache import AudioCache
from siamrec.connectors.subsonic.client import (
    SOURCE,
    Song,
    SongUnavailable,
    SubsonicClient,
    parse_uri,
    playlist_uri,
    track_uri,
)
from siamrec.connectors.subsonic.schema import PlaylistEntry

LIBRARY_CHUNK = 200  # songs per library batch handed to the sync
LIBRARY_ROUND = 1000  # songs per sync round without a cache: the most audio on disk at once
SIAMREC_MARK = "siamrec:"  # how the comment of a playlist siamrec wrote starts: never read back as a source


class SubsonicSource:
    """The server's playlists (all visible to the user, or those named) and, when asked, every song."""

    label = "Subsonic"

    def __init__(self, client: SubsonicClient, playlists: Iterable[str] = (), library: bool = False) -> None:
        self.client = client
        self.wanted = list(playlists)
        self.library = library
        self.problems: list[Problem] = []

    def playlists(self) -> Iterator[SourcePlaylist]:
        """The chosen playlists, then the library; what the server got wrong joins `problems` as it is read."""
        listed = [p for p in self.client.playlists() if not p.comment.startswith(SIAMREC_MARK)]
        for entry in self._chosen(listed):
            try:
                playlist = self._playlist(entry)
            except SongUnavailable as exc:  # deleted between the listing and the read
                self.problems.append(Problem(f"playlist {entry.name!r}", str(exc)))
                continue
            finally:
                self._take_client_problems()
            yield playlist
        if self.library:
            yield from self._library()
        self._take_client_problems()

    def _take_client_problems(self) -> None:
        self.problems += self.client.problems
        self.client.problems.clear()

    def _chosen(self, listed: list[PlaylistEntry]) -> list[PlaylistEntry]:
        """All playlists the user sees except siamrec's own, or those named by id or name."""
        if not self.wanted:
            return listed
        chosen: list[PlaylistEntry] = []
        for key in self.wanted:
            matches = [p for p in listed if key in (p.id, p.name)]
            if not matches:
                self.problems.append(Problem(f"--subsonic-playlist {key}", "no such playlist on the server"))
            chosen += [p for p in matches if p not in chosen]
        return chosen

    def _playlist(self, entry: PlaylistEntry) -> SourcePlaylist:
        info, songs = self.client.playlist(entry.id)
        return SourcePlaylist(
            uri=playlist_uri(self.client.server, entry.id),
            name=info.name or entry.name or entry.id,
            source=SOURCE,
            tracks=[self._track(Song.of(song)) for song in songs],
            description=info.comment,
        )

    def _library(self) -> Iterator[SourcePlaylist]:
        """The library in chunks the sync stores and embeds without saving them as playlists."""
        chunk: list[SourceTrack] = []
        for song in self.client.songs():
            if not song.isVideo:
                chunk.append(self._track(Song.of(song)))
            if len(chunk) >= LIBRARY_CHUNK:
                self._take_client_problems()
                yield self._collection(chunk)
                chunk = []
        self._take_client_problems()
        if chunk:
            yield self._collection(chunk)

    def _collection(self, tracks: list[SourceTrack]) -> SourcePlaylist:
        return SourcePlaylist(uri=f"subsonic:{self.client.server}:library", name="library", source=SOURCE,
                              tracks=tracks, collection=True)  # fmt: skip

    def _track(self, song: Song) -> SourceTrack:
        return SourceTrack(
            uri=track_uri(self.client.server, song.id),
            title=song.title,
            artist=song.artist,
            album=song.album,
            duration_s=song.duration_s,
            version=f"{song.suffix}:{song.version}",
            size_bytes=song.size,
        )


class SubsonicFetcher:
    """Audio from the server for the sync: each song version downloaded once into the audio cache.

    Cache entries are keyed by `<track uri>@<version>`, so a file the server changed is fetched again and
    an unchanged one never is. With `keep=False` (big libraries) audio goes to a temporary cache that
    `round_done` empties once the round is embedded.
    """

    def __init__(self, client: SubsonicClient, cache: AudioCache | None) -> None:
        self.client = client
        self.keep = cache is not None
        self._tmp = None if cache else Path(tempfile.mkdtemp(prefix="siamrec-subsonic-"))
        self.cache = cache or AudioCache(self._tmp or Path())
        self.downloads = 0

    def fetch_many(
        self, tracks: list[SourceTrack], on_done: Callable[[int], None] | None = None
    ) -> tuple[dict[str, Path], list[Problem]]:
        """Songs the server cannot stream are Problems; a server that stops answering stops the sync.

        Tracks of other sources (synced in the same run) are not this fetcher's: left without audio.
        """
        found: dict[str, Path] = {}
        problems: list[Problem] = []
        for track in tracks:
            parsed = parse_uri(track.uri)
            try:
                if parsed is not None and parsed[:2] == (self.client.server, "track"):
                    found[track.uri] = self.fetch(track, parsed[2])
            except SongUnavailable as exc:
                problems.append(Problem(track.uri, f"no audio: {exc}"))
            if on_done:
                on_done(1)
        return found, problems

    def fetch(self, track: SourceTrack, song_id: str) -> Path:
        key = f"{track.uri}@{track.version}"
        cached = self.cache.path(key)
        if cached is not None:
            return cached
        suffix = track.version.split(":", 1)[0]
        song = Song(song_id, track.title, track.artist, track.album, track.duration_s, suffix, track.version,
                    track.size_bytes)  # fmt: skip
        work = self.cache.work_dir(key)
        try:
            audio = self.client.download(song, work)
            try:
                duration_ms = round(sf.info(str(audio)).duration * 1000)
            except (sf.LibsndfileError, RuntimeError):
                duration_ms = None  # not decodable: the embed phase reports it for this song
            self.downloads += 1
            return self.cache.put_download(
                work,
                audio,
                key,
                duration_ms=duration_ms,
                source_url=self.client.endpoint("download") + f"?id={song.id}",
                extractor=SOURCE,
                video_id=song.id,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def round_done(self) -> None:
        """Without a cache, the round's audio is embedded by now: free the disk."""
        if self._tmp is not None:
            for entry in self._tmp.iterdir():
                if entry.name != ".tmp":
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            self.cache = AudioCache(self._tmp)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
