"""The project's filters and vectors in Qdrant Edge's terms (what the embedded backend hands the engine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import qdrant_edge as qe

from siamrec.store.backend import Where


def edge_filter(where: Where) -> qe.Filter | None:
    if not where:
        return None
    must: list[Any] = [qe.IsEmptyCondition(key) for key in where.empty]
    must += [qe.FieldCondition(key, match=qe.MatchAny(list(values))) for key, values in where.any_of.items()]
    must += [qe.FieldCondition(key, match=qe.MatchValue(value)) for key, value in where.equals.items()]
    # The keyword index answers a prefix without reading payloads: 3-10 ms for one folder among 50,000 tracks.
    must += [qe.FieldCondition(key, match=qe.MatchPrefix(start)) for key, start in where.prefix.items()]
    must += [qe.FieldCondition(key, match=qe.MatchText(text)) for key, text in where.words.items()]
    must += [qe.HasVectorCondition(where.has_vector)] if where.has_vector else []
    must_not: list[Any] = [qe.HasIdCondition(set(where.not_ids))] if where.not_ids else []
    must_not += [qe.FieldCondition(key, match=qe.MatchAny(list(values))) for key, values in where.none_of.items()]
    return qe.Filter(must=must or None, must_not=must_not or None)


def as_lists(vectors: Sequence[dict[str, np.ndarray]]) -> list[dict[str, list[float]]]:
    """Each point's named vectors as the lists the engine takes, converted a matrix per name (one `tolist` for
    a batch instead of one per vector)."""
    rows: list[dict[str, list[float]]] = [{} for _ in vectors]
    for name in {name for named in vectors for name in named}:
        having = [i for i, named in enumerate(vectors) if name in named]
        matrix = np.stack([vectors[i][name] for i in having]).astype(np.float32, copy=False).tolist()
        for i, row in zip(having, matrix, strict=True):
            rows[i][name] = row
    return rows
