"""How much the spread of a track's windows should weigh beside their mean (`siamrec export --spread-weight`).

    siamrec --home /tmp/train-store sync-playlists --mpd ~/data/siamrec-train/playlists.json \
        --audio-manifest ~/data/siamrec-train/tracks.tsv
    python benchmarks/spread_weight.py --home /tmp/train-store --model siamrec/assets/default.onnx \
        --mask 10/3 --weights 0.4,0.5,0.6,0.7,0.8,0.9,1 [--json]

For a mean+std model, the window embeddings of every track in a synced store are computed once (the windows
`siamrec add-track` reads), then pooled with each weight and scored with `siamrec bench`'s protocol on the
store's playlists (the same splits for every weight, plain and adapted). The weight stored in the model does
not matter here: every row re-pools. Choose the weight on the playlists the model was trained on, never on the
corpus you report: the shipped default's 0.5 was chosen on the train corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from siamrec.audio import track_windows
from siamrec.bench.methods import read_library
from siamrec.bench.run import ADAPTED_SUFFIX, parse_masks, run_protocol
from siamrec.config import resolve_settings
from siamrec.embed import TrackEncoder
from siamrec.names import path_from_payload
from siamrec.store import Store
from siamrec.vectors import batched, pool_windows

TRACK_BATCH = 16  # tracks decoded, then embedded in one run of batches (as add-track does)


def store_window_embeddings(encoder: TrackEncoder, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Every track's window embeddings, concatenated, and the windows per track: computed once, pooled per row."""
    embeddings, counts = [], []
    for chunk in track(list(batched(paths, TRACK_BATCH)), description="embedding windows"):
        windows = [track_windows(path)[0] for path in chunk]
        embeddings.append(encoder.embed_windows(np.concatenate(windows)))
        counts += [len(w) for w in windows]
    return np.concatenate(embeddings), np.array(counts)


@click.command()
@click.option("--home", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mask", default="10/5", show_default=True, help="SEEDS/MASKED, as in siamrec bench.")
@click.option("--seeds", default=10, show_default=True, help="Random splits.")
@click.option("--weights", default="0.4,0.5,0.6,0.7,0.8,0.9,1", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def main(home: Path, model: Path, mask: str, seeds: int, weights: str, as_json: bool) -> None:
    encoder = TrackEncoder(model, device="cpu")
    info = encoder.info
    if info.pooling != "mean+std":
        raise click.UsageError(f"{model} pools by {info.pooling}: the spread weight only applies to mean+std")
    with Store.open(resolve_settings(home=str(home))) as store:
        library = read_library(store)
    embeddings, counts = store_window_embeddings(encoder, [path_from_payload(r.path) for r in library.records])
    rows = []
    for weight in [float(w) for w in weights.split(",")]:
        vectors = pool_windows(embeddings, counts, info.pooling, info.spread_mean, info.spread_scale, weight)
        results, _ = run_protocol({"model": vectors}, library.playlists, parse_masks(mask), seeds, metric="both")
        scores = results[0].methods
        rows.append(
            {
                "weight": weight,
                "r_precision": scores["model"]["r_precision"],
                "r_precision_adapted": scores["model" + ADAPTED_SUFFIX]["r_precision"],
            }
        )
    if as_json:
        print(json.dumps({"model": str(model), "store": str(home), "mask": mask, "seeds": seeds, "rows": rows}))
        return
    table = Table(title=f"{info.name}: spread weight, mask {mask}, {seeds} splits, {len(counts)} tracks")
    for column in ("spread weight", "R-prec plain", "R-prec adapted"):
        table.add_column(column, justify="right")
    for row in rows:
        plain, adapted = row["r_precision"], row["r_precision_adapted"]
        table.add_row(f"{row['weight']:g}", f"{plain[0]:.3f} ± {plain[1]:.3f}", f"{adapted[0]:.3f} ± {adapted[1]:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
