"""Subsonic API servers (Navidrome, Gonic, Airsonic, Ampache, Supysonic, Jellyfin's plugin) as a siamrec plugin.

`client`: the API session and the URIs; `source`: the server's playlists and library for the sync, and its
audio; `publish`: recommendations written back as server playlists.
"""
