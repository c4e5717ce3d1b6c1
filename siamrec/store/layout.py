"""How the embedded store lays its vectors out on disk and in memory, chosen by measurement
(benchmarks/store_scale.py at the shipped model's dimension, with the adapted vectors beside the plain ones).

Each collection's vectors are kept twice: the originals (float16 for tracks) in memory-mapped files on disk, what
results are rescored with and read back, and a TurboQuant 4-bit copy (an eighth of float32) that the HNSW search
walks. At 1M 1,296-d tracks with their adapted twins that copy keeps the store under 8 GB (7.7 GB) with recall@10
>= 0.98; scalar int8 (a quarter, `turbo4=False`, the copy of stores made with this layout's first version) found
as many neighbours at 20k but needs about 1.3 GB more at 1M. The graph, the originals, the quantized copy, the
payload and its keyword indexes are all memory maps the OS pages in on demand ("cold"), so opening a store reads
a few small files whatever its size, and a one-off command pays only for the pages its query touches. A store
created before this layout gets the quantized copy, the mapped indexes and the memory placement the first time it
is opened (EdgeBackend._load); its originals stay float32 (the engine cannot change a stored datatype in place;
`siamrec store backup` then `restore` rewrites them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import qdrant_edge as qe

from siamrec import constants as C
from siamrec.store.backend import IndexKind

QUANTILE = 0.99  # int8 range from the 1st-99th percentile of each collection's values: outliers clip, not the rest


@dataclass(frozen=True)
class Layout:
    """The engine settings a collection is created with, and the search parameters that go with them."""

    quantized: bool = True  # a quantized copy of every vector for the search, originals kept for rescoring
    turbo4: bool = True  # that copy as TurboQuant 4-bit (an eighth of float32); False: scalar int8 (a quarter)
    float16: bool = True  # tracks' originals as float16 (half the disk; cosines agree to ~1e-3); centroids float32
    cold: bool = True  # originals, graph, quantized copy and payload memory-mapped and paged in on demand
    m: int = 16  # HNSW links per node
    ef_construct: int = 100  # HNSW build breadth
    hnsw_ef: int = 128  # search breadth: recall@10 >= 0.97 at 20k, 100k and 1M 1,296-d tracks (store_scale.py)
    oversampling: float = 2.0  # quantized candidates fetched per result, then rescored with the originals

    def memory(self) -> qe.Memory | None:
        return qe.Memory.Cold if self.cold else None

    def quantization(self) -> qe.ScalarQuantizationConfig | qe.TurboQuantQuantizationConfig | None:
        if not self.quantized:
            return None
        if self.turbo4:
            return qe.TurboQuantQuantizationConfig(bits=qe.TurboQuantBitSize.Bits4, memory=self.memory())
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=QUANTILE, memory=self.memory())

    def datatype(self, collection: str) -> qe.VectorStorageDatatype:
        """Float16 for the tracks (the bulk of the store), float32 for the few playlist centroids and the rest."""
        half = self.float16 and collection == C.TRACKS_COLLECTION
        return qe.VectorStorageDatatype.Float16 if half else qe.VectorStorageDatatype.Float32

    def config(
        self, collection: str, vectors: dict[str, int], stored: dict[str, qe.VectorStorageDatatype] | None = None
    ) -> qe.EdgeConfig:
        """The shard config for `{name: dim}`; `stored` holds the datatypes of vectors a shard has already."""
        datatypes = {name: (stored or {}).get(name, self.datatype(collection)) for name in vectors}
        memory = self.memory()
        hnsw = qe.HnswIndexConfig(m=self.m, ef_construct=self.ef_construct, full_scan_threshold=10_000, memory=memory)
        return qe.EdgeConfig(
            vectors={
                name: qe.EdgeVectorParams(
                    size=dim, distance=qe.Distance.Cosine, datatype=datatypes[name], memory=memory
                )
                for name, dim in vectors.items()
            },
            hnsw_config=hnsw,
            quantization_config=self.quantization(),
            payload_memory=qe.Memory.Cold if self.cold else None,
            id_tracker_memory=memory,
        )

    def keyword_index(self) -> qe.KeywordIndexParams | qe.PayloadSchemaType:
        """A keyword index memory-mapped (at 200k tracks, six in-RAM indexes took 6.6 s to open, mapped ones 0.9 s)."""
        return qe.KeywordIndexParams(memory=qe.Memory.Cold) if self.cold else qe.PayloadSchemaType.Keyword

    def integer_index(self) -> qe.IntegerIndexParams:
        """An integer index that answers equality and order (the playlists' name rank), mapped like the others."""
        return qe.IntegerIndexParams(lookup=True, range=True, memory=qe.Memory.Cold if self.cold else None)

    def index(self, kind: IndexKind) -> qe.IntegerIndexParams | qe.TextIndexParams:
        """The engine's parameters for an index of that kind (Backend.add_index)."""
        return self.integer_index() if kind == "integer" else self.text_index()

    def text_index(self) -> qe.TextIndexParams:
        """A text index that finds a name by the beginnings of its words, whatever their case and accents."""
        cold = qe.Memory.Cold if self.cold else None
        return qe.TextIndexParams(tokenizer=qe.TokenizerType.Prefix, lowercase=True, ascii_folding=True, memory=cold)

    def search(self, exact: bool) -> qe.SearchParams:
        """Exact searches score the originals (the reference the approximate search is measured against)."""
        if exact:
            return qe.SearchParams(exact=True, quantization=qe.QuantizationSearchParams(ignore=True))
        rescore = qe.QuantizationSearchParams(rescore=True, oversampling=self.oversampling) if self.quantized else None
        return qe.SearchParams(hnsw_ef=self.hnsw_ef, quantization=rescore)


DEFAULT = Layout()
LEGACY = Layout(quantized=False, float16=False, cold=False)  # what stores were created with before this layout
EXACT = Layout(float16=False)  # a store copied from an old one (migrate.py): every stored value exactly as it was


def stored_datatypes(engine_config: dict[str, Any]) -> dict[str, qe.VectorStorageDatatype]:
    """The datatype each of a shard's vectors is stored as, from its `edge_config.json` (float32 when unsaid)."""
    vectors = engine_config.get("vectors") if isinstance(engine_config, dict) else None
    if not isinstance(vectors, dict):
        return {}
    named = {"float16": qe.VectorStorageDatatype.Float16, "uint8": qe.VectorStorageDatatype.Uint8}
    return {
        name: named.get(p.get("datatype") if isinstance(p, dict) else None, qe.VectorStorageDatatype.Float32)
        for name, p in vectors.items()
    }


def needs_upgrade(engine_config: dict[str, Any], layout: Layout) -> bool:
    """Whether a shard was created before `layout` (no quantized copy where the layout wants one; a store that
    has the int8 copy keeps it: the engine cannot swap one quantization for another without rebuilding)."""
    if not layout.quantized:
        return False
    return not (isinstance(engine_config, dict) and engine_config.get("quantization_config"))
