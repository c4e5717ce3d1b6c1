"""The store, in the project's own words: tracks and playlists with their vectors, bound to one model.

This package's front door only re-exports: the records (records), where a store lives (location), the `Store`
facade over one backend (facade, its adapted metric in metric; backends in edge and client; the embedded one's
layout in layout, its engine types in conversions), the adapted metric's storage (adaptation), playlists a page
at a time by name (by_name), feedback (feedback), backups (backup), migration (migrate), disk checks (disk) and
reading the store ahead for a service (warmup).
"""

from siamrec.store.facade import COLD, PAGE, Store, playlist_centroid
from siamrec.store.location import embedded_path, open_backend, store_exists
from siamrec.store.metric import ADAPTED, DERIVED, METRICS, WRITE_BATCH
from siamrec.store.records import (
    PLAYLIST_KEYWORD_FIELDS,
    PLAYLIST_OWN_KEYS,
    TRACK_KEYWORD_FIELDS,
    PlaylistRecord,
    ScoredPlaylist,
    ScoredTrack,
    StoredTrack,
    TrackRecord,
    now_iso,
    playlist_from_payload,
    playlist_payload,
    record_payload,
    track_from_payload,
)

__all__ = [
    "ADAPTED",
    "COLD",
    "DERIVED",
    "METRICS",
    "PAGE",
    "PLAYLIST_KEYWORD_FIELDS",
    "PLAYLIST_OWN_KEYS",
    "TRACK_KEYWORD_FIELDS",
    "WRITE_BATCH",
    "PlaylistRecord",
    "ScoredPlaylist",
    "ScoredTrack",
    "Store",
    "StoredTrack",
    "TrackRecord",
    "embedded_path",
    "now_iso",
    "open_backend",
    "playlist_centroid",
    "playlist_from_payload",
    "playlist_payload",
    "record_payload",
    "store_exists",
    "track_from_payload",
]
