"""Listing playlists by name in a store of many: a page (`Store.playlist_page`, what `GET /playlists` and
`siamrec playlist list --limit` use) against reading every playlist and sorting (what the list did before).

A diagnostic store of N playlists of 30 track URIs each (no audio), named as the Million Playlist Dataset's
often are: one or two of twenty common words, a third of them with a number, so that many names are alike and
many share their first six bytes (one rank). Times: the store's first listing after its playlists were written
without their rank (the one-time upgrade a store made before gets), the first page, a page of 1,000, name
searches, the first word search (it builds the names' word index, once), word searches (a word inside names,
the beginning of one, two words, a word no name has), a walk through every page, and the whole read-and-sort.

    .venv/bin/python benchmarks/playlist_pages.py --playlists 100000
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from siamrec import constants as C
from siamrec.store import PLAYLIST_KEYWORD_FIELDS, PlaylistRecord, Store, playlist_payload
from siamrec.store.backend import Point
from siamrec.store.edge import EdgeBackend
from siamrec.uris import point_id

WORDS = [
    "country", "chill", "rap", "workout", "party", "summer", "throwback", "rock", "oldies", "jams", "vibes",
    "christmas", "gym", "road trip", "sad", "happy", "disney", "edm", "worship", "Musik",
]  # fmt: skip


def playlists(n: int) -> list[PlaylistRecord]:
    rng = random.Random(0)
    found = []
    for p in range(n):
        name = " ".join(rng.sample(WORDS, rng.randint(1, 2))) + (f" {rng.randint(1, 99)}" if rng.random() < 0.3 else "")
        tracks = [f"spotify:track:{p}x{i:022d}" for i in range(30)]
        found.append(PlaylistRecord(f"mpd:playlist:{p}", name, source="mpd", track_uris=tracks))
    return found


def timed(func, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playlists", type=int, default=100_000)
    args = parser.parse_args()
    figures: dict[str, float] = {"playlists": args.playlists}
    with tempfile.TemporaryDirectory(prefix="siamrec-pages-") as work:
        root = Path(work) / "store"
        store = Store(EdgeBackend(root))
        store.bind_model("synthetic", 8)
        records = playlists(args.playlists)
        _, figures["write_s"] = timed(store.refresh_centroids, records)
        # again as a store made before the rank: no index on it, and payloads without it
        vectors = store.backend.vectors(C.PLAYLISTS_COLLECTION) or {}
        store.backend.drop(C.PLAYLISTS_COLLECTION)
        store.backend.create(C.PLAYLISTS_COLLECTION, vectors, PLAYLIST_KEYWORD_FIELDS)
        for start in range(0, len(records), 1000):
            points = []
            for record in records[start : start + 1000]:
                payload = {k: v for k, v in playlist_payload(record).items() if k != "name_rank"}
                points.append(Point(point_id(record.playlist_uri), {}, payload))
            store.backend.upsert(C.PLAYLISTS_COLLECTION, points)
        store.close()

        store = Store(EdgeBackend(root))
        store.bind_stored_model()
        _, figures["first_listing_with_upgrade_s"] = timed(store.playlist_page, 100)
        for label, limit, starting in (("page_100", 100, ""), ("page_1000", 1000, ""), ("name_chill_v", 100, "Chill V"),
                                       ("name_country", 100, "country"), ("name_none", 100, "zzz")):  # fmt: skip
            runs = [timed(store.playlist_page, limit, None, starting)[1] for _ in range(5)]
            figures[f"{label}_ms"] = round(1000 * sorted(runs)[2], 1)  # the median of 5
        _, figures["first_word_search_with_index_s"] = timed(store.playlist_page, 100, None, "", "trip")
        for label, words in (("words_trip", "trip"), ("words_thr", "thr"), ("words_chill_trip", "chill trip"),
                             ("words_none", "zzz")):  # fmt: skip
            runs = [timed(store.playlist_page, 100, None, "", words)[1] for _ in range(5)]
            figures[f"{label}_ms"] = round(1000 * sorted(runs)[2], 1)
        start, after, seen = time.perf_counter(), None, 0
        while True:
            page = store.playlist_page(1000, after)
            seen += len(page.playlists)
            if (after := page.after) is None:
                break
        figures["walk_all_by_1000_s"] = time.perf_counter() - start
        assert seen == args.playlists, seen
        everything, figures["read_all_and_sort_s"] = timed(
            lambda: sorted(store.iter_playlists(), key=lambda p: (p.name.casefold(), p.playlist_uri))
        )
        assert len(everything) == args.playlists
        store.close()
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}, indent=1))


if __name__ == "__main__":
    main()
