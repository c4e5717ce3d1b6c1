"""Playlists a page at a time in name order, without reading them all (a platform may hold a million).

The engine orders by numbers only, so each playlist's payload carries `name_rank`: the first RANK_BYTES bytes of
its case-folded name as a number (siamrec.store.records.name_rank). Ranks order as names do, but names that
share those bytes share a rank, so a page walks the ranks in order and reads each rank it reaches whole (only
the names of its playlists), sorting it itself. The order is the case-folded name's first ORDER_CHARS characters,
then the point id (a hash of the URI: same names come in a fixed order), so that a cursor, the order key of the
last playlist shown, stays short whatever a source names its playlists. A page is the next `limit` after it.

A word search (`words`) walks the same order through a filter on the name's text index, which holds the beginnings
of its words: the engine skips the playlists it leaves out, so a page of a rare word costs what it shows too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from siamrec import constants as C
from siamrec.logs import get_logger
from siamrec.store.backend import EVERYTHING, Backend, Hit, Where
from siamrec.store.records import PlaylistRecord, name_rank, playlist_from_payload
from siamrec.uris import point_id

log = get_logger(__name__)

RANK = "name_rank"
WORDS = "name"  # the field of the text index a word search asks
KEYS = ("name_key", RANK)  # what a walk reads of each playlist
ORDER_CHARS = 500  # of a name, that set its place (names alike so far go by point id)
MAX_BATCH = 1000  # playlists read per step of a walk


@dataclass(frozen=True)
class NamePage:
    """One page of playlists in name order; `after` is the cursor of the next page (None: this is the last)."""

    playlists: list[PlaylistRecord]
    after: tuple[str, str] | None


def order_key(playlist: PlaylistRecord) -> tuple[str, str]:
    """A playlist's place in name order (what pages give, and `siamrec playlist list` sorts by)."""
    return playlist.name.casefold()[:ORDER_CHARS], point_id(playlist.playlist_uri)


def _ranked(backend: Backend, start: int, stop: int, batch: int, where: Where = EVERYTHING) -> Iterator[list[Hit]]:
    """The playlists matching `where` with ranks from `start` to `stop`, a whole rank at a time, lowest first:
    `batch` at a time in rank order, every rank of a batch but its last is whole; that one is read whole alone."""
    value = start
    while value <= stop:
        hits = backend.ordered(C.PLAYLISTS_COLLECTION, RANK, value, batch, with_payload=list(KEYS), where=where)
        groups: dict[int, list[Hit]] = {}
        for hit in hits:
            groups.setdefault(int(hit.payload[RANK]), []).append(hit)
        if len(hits) == batch:  # the last rank may go on past the batch
            value = max(groups)
            whole_rank = Where(equals={RANK: value}, words=where.words)
            groups[value] = list(backend.scroll(C.PLAYLISTS_COLLECTION, whole_rank, with_payload=list(KEYS)))
        for rank in sorted(groups):
            if rank > stop:
                return
            yield groups[rank]
        if len(hits) < batch:
            return
        value += 1


def playlists_by_name(
    backend: Backend, limit: int, after: tuple[str, str] | None = None, starting: str = "", words: str = ""
) -> NamePage:
    """Up to `limit` playlists whose case-folded name starts with `starting` and has a word starting with each
    of `words` (any case or accent), in name order, after the cursor `after` (the order key of the last playlist
    of the previous page). A word search needs the text index (`index_words`)."""
    prefix = starting.casefold()
    begin = max(after[0], prefix) if after else prefix
    # text, as the engine takes it: a word from a command line may hold undecodable bytes (lone surrogates)
    text = words.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    where = Where(words={WORDS: text}) if text.strip() else EVERYTHING
    chosen: list[tuple[str, str]] = []  # order keys: (name, point id)
    stop, batch = name_rank(prefix, fill=0xFF), min(limit + 1, MAX_BATCH)
    for group in _ranked(backend, name_rank(begin), stop, batch, where):
        names = ((str(hit.payload.get("name_key", "")), hit.id) for hit in group)
        keys = sorted((name[:ORDER_CHARS], pid) for name, pid in names if name.startswith(prefix))
        chosen += [key for key in keys if after is None or key > after]
        if len(chosen) > limit:
            break
    page = chosen[:limit]
    found = {hit.id: hit for hit in backend.retrieve(C.PLAYLISTS_COLLECTION, [pid for _, pid in page])}
    playlists = [playlist_from_payload(found[pid].payload) for _, pid in page if pid in found]
    return NamePage(playlists, page[-1] if len(chosen) > limit else None)


def rank_missing(backend: Backend) -> int:
    """Give the playlists of a store made before `name_rank` their rank, then index it (logged once); returns
    how many were ranked. The index comes last, so a run cut short leaves no index and the next one finishes the
    ranks."""
    if RANK in backend.indexed(C.PLAYLISTS_COLLECTION):
        return 0
    ranked = 0
    unranked: dict[int, list[str]] = {}
    for hit in backend.scroll(C.PLAYLISTS_COLLECTION, with_payload=["name", RANK]):
        if RANK in hit.payload:
            continue
        unranked.setdefault(name_rank(str(hit.payload.get("name", "")).casefold()), []).append(hit.id)
        ranked += 1
        if ranked % MAX_BATCH == 0:
            _write_ranks(backend, unranked)
            unranked = {}
    _write_ranks(backend, unranked)
    backend.add_index(C.PLAYLISTS_COLLECTION, RANK, "integer")
    if ranked:
        log.warning("the store's %d playlists got their name rank, to be listed by name: once", ranked)
    return ranked


def index_words(backend: Backend) -> bool:
    """Give the playlists' names their text index (a store made before it); returns whether it was missing."""
    if WORDS in backend.indexed(C.PLAYLISTS_COLLECTION):
        return False
    backend.add_index(C.PLAYLISTS_COLLECTION, WORDS, "text")
    log.warning("the store's playlist names got their word index, to be found by any word: once")
    return True


def _write_ranks(backend: Backend, ranks: dict[int, list[str]]) -> None:
    for value, ids in ranks.items():  # one write per rank: playlists whose names share it go together
        backend.set_payload(C.PLAYLISTS_COLLECTION, ids, {RANK: value})
