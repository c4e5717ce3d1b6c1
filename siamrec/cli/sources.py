"""siamrec's own playlist sources, registered like anyone's (pyproject.toml, entry points `siamrec.sources`).

Each declares its sync-playlists options and builds its connector from their values; the connector (spotipy,
the Subsonic client…) is imported only then, so `sync-playlists --help` stays light. Building runs before the
store is opened: a Spotify login or a Subsonic password prompt holds no lock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from siamrec.cli.spotify import LOGIN_WAIT_S, login
from siamrec.cli.subsonic import connect, server_option_list
from siamrec.connectors.sources import Built, RegisteredSource
from siamrec.errors import ConfigError

if TYPE_CHECKING:
    from siamrec.config import Settings
    from siamrec.connectors.base import PlaylistSource

Values = Mapping[str, Any]


def _mpd(values: Values, settings: Settings) -> list[PlaylistSource]:
    if not values["mpd_paths"]:
        if values["top_followers"] or values["pids"] or values["name_regex"] or values["min_tracks"]:
            raise ConfigError(
                "--top-followers, --pid, --name and --min-tracks select Million Playlist Dataset playlists: add --mpd"
            )
        return []
    from siamrec.connectors.mpd import MpdSelection, MpdSource

    name = values["name_regex"]
    try:
        pattern = re.compile(name, re.IGNORECASE) if name else None
    except re.error as exc:
        raise ConfigError(f"--name {name!r} is not a regular expression: {exc}") from exc
    selection = MpdSelection(top_followers=values["top_followers"], pids=frozenset(values["pids"]),
                             name_pattern=pattern, min_tracks=values["min_tracks"])  # fmt: skip
    return [MpdSource(values["mpd_paths"], selection)]


MPD = RegisteredSource(
    "mpd",
    [
        click.Option(["--mpd", "mpd_paths"], multiple=True, type=click.Path(path_type=Path),
                     help="Million Playlist Dataset folder or slice file (the challenge set file too)."),
        click.Option(["--top-followers"], type=click.IntRange(1),
                     help="Only the N most-followed playlists (the paper: 100)."),
        click.Option(["--pid", "pids"], multiple=True, type=int,
                     help="Only this Million Playlist Dataset pid (repeatable)."),
        click.Option(["--name", "name_regex"], help="Only playlists whose name matches this regular expression."),
        click.Option(["--min-tracks"], type=click.IntRange(0), default=0,
                     help="Only playlists with at least N tracks."),
    ],  # fmt: skip
    _mpd,
    named_by=("--mpd",),
    order=10,
)


def _spotify(values: Values, settings: Settings) -> list[PlaylistSource]:
    if not (values["spotify_refs"] or values["spotify_users"]):
        return []
    from siamrec.connectors.spotify import ME, SpotifySource

    source = SpotifySource(values["spotify_refs"], values["spotify_users"], cache_dir=settings.home)
    if ME in values["spotify_users"]:
        login(settings.home, wait_s=values["spotify_login_wait"])
    return [source]


SPOTIFY = RegisteredSource(
    "spotify",
    [
        click.Option(["--spotify", "spotify_refs"], multiple=True,
                     help="Spotify playlist URL, URI or ID (repeatable)."),
        click.Option(["--spotify-user", "spotify_users"], multiple=True,
                     help="All playlists of a Spotify user; 'me': yours (OAuth: the first time, siamrec prints an "
                     "address to open in any browser and reads the address you are sent to from stdin)."),
        click.Option(["--spotify-login-wait"], type=click.FloatRange(1, 3600), default=LOGIN_WAIT_S,
                     show_default=True, help="Seconds to wait for the pasted Spotify redirect address."),
    ],  # fmt: skip
    _spotify,
    named_by=("--spotify", "--spotify-user"),
    order=20,
)


def _files(values: Values, settings: Settings) -> list[PlaylistSource]:
    if not (values["playlist_files"] or values["folders"]):
        return []
    from siamrec.connectors.local import LocalSource

    return [LocalSource(values["playlist_files"], values["folders"])]


FILES = RegisteredSource(
    "files",
    [
        click.Option(["--m3u", "playlist_files"], multiple=True, type=click.Path(path_type=Path),
                     help="M3U/M3U8/PLS file."),
        click.Option(["--folder", "folders"], multiple=True, type=click.Path(path_type=Path),
                     help="One subfolder per playlist."),
    ],  # fmt: skip
    _files,
    named_by=("--m3u", "--folder"),
    order=30,
)


def _subsonic(values: Values, settings: Settings) -> Built:
    """The server's source, and the fetcher that streams its songs (into the audio cache unless turned off)."""
    if not values["subsonic_url"]:
        if values["subsonic_playlists"] or values["subsonic_library"]:
            raise ConfigError("--subsonic-playlist and --subsonic-library need --subsonic URL and --subsonic-user")
        return Built()
    if values["fetch_audio"] or values["audio_url"]:
        raise ConfigError("a Subsonic server streams its own audio: drop --fetch-audio/--audio-url, or sync it apart")
    from siamrec.connectors.cache import AudioCache
    from siamrec.connectors.subsonic.learn import PlayerLearner
    from siamrec.connectors.subsonic.source import LIBRARY_ROUND, SubsonicFetcher, SubsonicSource

    client = connect(values["subsonic_url"], values["subsonic_user"])
    fetcher = SubsonicFetcher(client, None if values["no_audio_cache"] else AudioCache(settings.cache_dir / "audio"))
    # what the listener did to the playlists siamrec published on the server, stored as feedback
    options: dict[str, Any] = {"fetcher": fetcher, "learn": lambda store: PlayerLearner(store, client).learn_all()}
    if not fetcher.keep:  # no cache: each round's audio is dropped once embedded
        options.update(tracks_per_round=LIBRARY_ROUND, after_round=fetcher.round_done)
    source = SubsonicSource(client, values["subsonic_playlists"], values["subsonic_library"])
    return Built([source], options, fetcher.close)


SUBSONIC = RegisteredSource(
    "subsonic",
    [
        *server_option_list(),
        click.Option(["--subsonic-playlist", "subsonic_playlists"], multiple=True,
                     help="Only this server playlist, by name or id (repeatable)."),
        click.Option(["--subsonic-library"], is_flag=True, help="Also every song of the Subsonic library, paged."),
        click.Option(["--no-audio-cache"], is_flag=True,
                     help="Subsonic: drop each round's audio once embedded (big libraries)."),
    ],  # fmt: skip
    _subsonic,
    named_by=("--subsonic",),
    order=40,
)
