"""Playlists a page at a time in name order (siamrec.store.by_name) on both backends, found by the words of
their names, and a store made before playlists carried their name rank or their names a word index."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from siamrec import constants as C
from siamrec.store import (
    ADAPTED,
    DERIVED,
    PLAYLIST_KEYWORD_FIELDS,
    TRACK_KEYWORD_FIELDS,
    PlaylistRecord,
    Store,
    playlist_payload,
)
from siamrec.store.backend import Point, Where
from siamrec.store.by_name import ORDER_CHARS, WORDS, index_words, order_key, rank_missing
from siamrec.store.edge import EdgeBackend
from siamrec.store.records import name_rank
from siamrec.uris import point_id

# Names that share a rank (the first 6 bytes: "summer…", "chillo…"), are shorter than it, differ only in case,
# repeat exactly, are empty, or leave ASCII.
NAMES = [
    "Summer Hits", "summer hits", "Summer", "summer 1", "Summertime Sadness", "Summa", "sum", "Ärger", "Zed", "",
    "chill", "Chill Vibes", "chillout", "Chillout Lounge", "a" * 40, "Été", "日本の歌", "summer hits", "Summer Hits",
]  # fmt: skip


def fill(store: Store, names: list[str]) -> list[str]:
    """The playlists stored (no tracks), and their URIs in the order pages must give: by case-folded name, then
    by point id (the hash of the URI)."""
    store.bind_model("hand", 3)
    records = [PlaylistRecord(f"pl:{i:02d}", name) for i, name in enumerate(names)]
    store.refresh_centroids(records)
    return [r.playlist_uri for r in sorted(records, key=lambda r: (r.name.casefold(), point_id(r.playlist_uri)))]


def walk(store: Store, limit: int, starting: str = "", words: str = "") -> list[str]:
    """Every page from the first, each next one from the cursor the last one gave."""
    seen: list[str] = []
    after = None
    while True:
        page = store.playlist_page(limit, after, starting, words)
        assert len(page.playlists) <= limit
        seen += [p.playlist_uri for p in page.playlists]
        if page.after is None:
            return seen
        assert len(page.playlists) == limit and page.after[1] == point_id(seen[-1])
        after = page.after


@pytest.mark.parametrize("limit", [1, 2, 5, 100])
def test_pages_give_every_playlist_once_in_name_order(any_store: Store, limit: int) -> None:
    expected = fill(any_store, NAMES)
    assert walk(any_store, limit) == expected


def test_a_name_prefix_gives_only_the_names_that_start_with_it_in_any_case(any_store: Store) -> None:
    expected = fill(any_store, NAMES)
    name_of = {f"pl:{i:02d}": name.casefold() for i, name in enumerate(NAMES)}
    for prefix in ("summer", "SUMMER H", "sum", "Summertime Sadness", "chillo", "ä", "日本", "zz", "Summer Hits!"):
        wanted = [uri for uri in expected if name_of[uri].startswith(prefix.casefold())]
        assert walk(any_store, 2, prefix) == wanted, prefix
    assert walk(any_store, 100, "summer")[:2] == ["pl:02", "pl:03"]  # "Summer", "summer 1"


def test_names_alike_for_longer_than_a_cursor_holds_go_by_point_id(any_store: Store) -> None:
    """A cursor keeps ORDER_CHARS of a name: past them, names alike so far are placed by point id alone."""
    long = ["y" * ORDER_CHARS + "b", "y" * ORDER_CHARS + "a", "y" * ORDER_CHARS, "y" * (ORDER_CHARS - 1) + "z"]
    fill(any_store, long)
    alike = sorted(["pl:00", "pl:01", "pl:02"], key=point_id)
    assert walk(any_store, 1) == [*alike, "pl:03"]
    assert all(len(page[0]) <= ORDER_CHARS for page in [any_store.playlist_page(1).after or ("", "")])


def test_an_empty_store_has_no_page(any_store: Store) -> None:
    page = any_store.playlist_page(10)
    assert page.playlists == [] and page.after is None


def test_a_store_made_before_the_name_rank_gets_it_once_even_after_an_interruption(any_store: Store) -> None:
    """The collections as an older siamrec made them (no rank, no index), half of the playlists already ranked as
    by a run that was cut short before its index: the first page ranks the rest, then indexes the rank."""
    backend = any_store.backend
    old = ((C.TRACKS_COLLECTION, TRACK_KEYWORD_FIELDS), (C.PLAYLISTS_COLLECTION, PLAYLIST_KEYWORD_FIELDS))
    for collection, keys in old:
        backend.create(collection, {"hand": 3, f"hand{DERIVED}{ADAPTED}": 3}, keys)
    any_store.bind_model("hand", 3)
    records = [PlaylistRecord(f"pl:{i:02d}", name) for i, name in enumerate(NAMES)]
    points = []
    for i, record in enumerate(records):
        payload = playlist_payload(record)
        if i % 2:
            del payload["name_rank"]
        points.append(Point(point_id(record.playlist_uri), {}, payload))
    backend.upsert(C.PLAYLISTS_COLLECTION, points)
    assert "name_rank" not in backend.indexed(C.PLAYLISTS_COLLECTION)

    assert walk(any_store, 3) == [r.playlist_uri for r in sorted(records, key=order_key)]
    if isinstance(backend, EdgeBackend):  # qdrant-client's in-memory mode keeps no payload index (a server does)
        assert "name_rank" in backend.indexed(C.PLAYLISTS_COLLECTION)
    for hit in backend.scroll(C.PLAYLISTS_COLLECTION):
        assert hit.payload["name_rank"] == name_rank(hit.payload["name"].casefold())
    assert rank_missing(backend) == 0  # once
    assert any_store.find_playlist("zed").playlist_uri == "pl:08"  # the records themselves unchanged


def test_ranks_order_as_names_do_and_stay_exact_in_a_float64() -> None:
    keys = sorted(name.casefold() for name in NAMES)
    ranks = [name_rank(key) for key in keys]
    assert ranks == sorted(ranks)
    assert max(name_rank("\U0010ffff" * 6), name_rank("", fill=0xFF)) < 2**53  # the engine orders as float64
    assert name_rank("summer hits") == name_rank("summertime") != name_rank("summa")
    assert name_rank("sum") < name_rank("summa") <= name_rank("sum", fill=0xFF)


def folded_words(text: str) -> list[str]:
    """A name's words as the text index keeps them: runs of letters and digits, lower case, accents dropped."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", plain.lower())


WORDY = [
    "Road Trip", "Chill road-trip 38", "Sunday trip", "Throwback Thursday", "Évasion", "rock_n_roll", "Trips",
    "Entrip", "日本の歌", "", "trip", "Roadtrip",
]  # fmt: skip


@pytest.mark.parametrize("limit", [1, 2, 100])
def test_words_find_names_with_a_word_starting_with_each_in_name_order(tmp_path: Path, limit: int) -> None:
    """On the embedded engine (its text index holds the beginnings of words): every word searched must start a
    word of the name, in any order, any case and with or without its accents; the name prefix still applies."""
    store = Store(EdgeBackend(tmp_path / "store"))
    expected = fill(store, WORDY)
    name_of = {f"pl:{i:02d}": name for i, name in enumerate(WORDY)}
    for words in ("trip", "TRI", "road tr", "tr ROAD", "evas", "ÉVAS", "roll", "rock n", "日本", "38 chill", "zzz"):
        wanted = [
            uri for uri in expected
            if all(any(w.startswith(q) for w in folded_words(name_of[uri])) for q in folded_words(words))
        ]  # fmt: skip
        assert walk(store, limit, words=words) == wanted, words
    assert walk(store, limit, words="trip") == ["pl:01", "pl:00", "pl:02", "pl:10", "pl:06"]
    assert walk(store, limit, "road", "trip") == ["pl:00"]  # "Road Trip"; "Roadtrip" has no word starting "trip"
    assert walk(store, limit, words="  ") == expected  # no words: every playlist
    store.close()


def test_memory_mode_finds_whole_words_only(any_store: Store) -> None:
    """qdrant-client's memory mode builds no index: there a word must be a whole word of the name (a Qdrant
    server and the embedded engine find the beginnings of words too)."""
    fill(any_store, WORDY)
    assert walk(any_store, 2, words="road Trip") == ["pl:01", "pl:00"]
    beginnings = [] if any_store.backend.location == ":memory:" else ["pl:01", "pl:00", "pl:02", "pl:10", "pl:06"]
    assert walk(any_store, 2, words="tri") == beginnings


def test_a_new_store_has_the_word_index_from_the_start(tmp_path: Path) -> None:
    store = Store(EdgeBackend(tmp_path / "store"))
    store.bind_model("hand", 3)
    assert {WORDS, "name_rank"} <= store.backend.indexed(C.PLAYLISTS_COLLECTION)
    assert index_words(store.backend) is False
    store.close()


def test_a_store_made_before_the_word_index_gets_it_at_its_first_word_search(tmp_path: Path) -> None:
    store = Store(EdgeBackend(tmp_path / "store"))
    old = ((C.TRACKS_COLLECTION, TRACK_KEYWORD_FIELDS), (C.PLAYLISTS_COLLECTION, PLAYLIST_KEYWORD_FIELDS))
    for collection, keys in old:
        store.backend.create(collection, {"hand": 3, f"hand{DERIVED}{ADAPTED}": 3}, keys, {"name_rank": "integer"})
    fill(store, WORDY)  # as the siamrec before this one made them: ranked, no word index
    assert WORDS not in store.backend.indexed(C.PLAYLISTS_COLLECTION)
    store.playlist_page(5)  # a listing without words does not build it
    assert WORDS not in store.backend.indexed(C.PLAYLISTS_COLLECTION)
    assert [p.playlist_uri for p in store.playlist_page(5, words="evasion").playlists] == ["pl:04"]
    assert WORDS in store.backend.indexed(C.PLAYLISTS_COLLECTION)
    assert index_words(store.backend) is False  # once
    store.close()
    reopened = Store(EdgeBackend(tmp_path / "store"))
    assert [p.playlist_uri for p in reopened.playlist_page(5, words="chill").playlists] == ["pl:01"]
    reopened.close()


def test_a_server_backend_refuses_a_prefix_it_would_not_apply_to_an_ordered_walk() -> None:
    """qdrant-client sends no prefix condition (servers before 1.19 have none): `scroll` tests payloads itself,
    and the ordered walk, whose pages must be whole, refuses one instead of ignoring it."""
    store = Store.memory()
    fill(store, ["ab", "cd"])
    with pytest.raises(ValueError, match="for scroll only"):
        store.backend.ordered(C.PLAYLISTS_COLLECTION, "name_rank", 0, 10, where=Where(prefix={"name_key": "a"}))
    found = store.backend.scroll(C.PLAYLISTS_COLLECTION, Where(prefix={"name_key": "a"}))
    assert [hit.payload["name_key"] for hit in found] == ["ab"]
