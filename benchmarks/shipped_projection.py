"""Which projection to ship in the model (`siamrec project`), chosen on the TRAIN corpus's playlists only.

    siamrec --home /tmp/train-store sync-playlists --mpd ~/data/siamrec-train/playlists.json \
        --audio-manifest ~/data/siamrec-train/tracks.tsv      # embedded by the model without a projection
    python benchmarks/shipped_projection.py --home /tmp/train-store [--json]

A shipped projection must help playlists it never saw. So the playlists are split into folds (whole playlists):
each option is fitted on the other folds' playlists and scored with `siamrec bench`'s protocol (plain and
adapted, the same splits for every option) on the held-out fold's playlists, whose tracks it never read. The
options: the whitening's shrinkage (or the one cross-validation within the fitted playlists picks, as `adapt`
and `project` do by default), with or without the centroid projection. The row "none" is the model as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from siamrec.bench.methods import read_library
from siamrec.bench.run import ADAPTED_SUFFIX, parse_masks, run_protocol
from siamrec.config import resolve_settings
from siamrec.projection import Projection
from siamrec.store import Store
from siamrec.whitening import fit_whitening

Options = dict[str, tuple[float | None, bool | None]]  # name → (shrinkage, centroid projection); None: chosen


def fold_scores(vectors: np.ndarray, playlists: list[np.ndarray], folds: int, mask: str, seeds: int,
                options: Options, fold_seed: int) -> dict[str, list[tuple]]:  # fmt: skip
    """Per option, (plain, adapted) R-precision on each held-out fold."""
    order = np.random.default_rng(fold_seed).permutation(len(playlists))
    scores: dict[str, list[tuple]] = {name: [] for name in ["none", *options]}
    for fold in range(folds):
        held = set(order[fold::folds].tolist())
        fit_on = [p for i, p in enumerate(playlists) if i not in held]
        test = [p for i, p in enumerate(playlists) if i in held]
        methods = {"none": vectors}
        for name, (shrinkage, project) in options.items():
            whitening = fit_whitening(vectors, fit_on, shrinkage, project)
            methods[name] = Projection.from_whitening(whitening).apply(vectors)
        results, _ = run_protocol(methods, test, parse_masks(mask), seeds, metric="both", rng_seed=fold)
        for name in scores:
            figures = results[0].methods
            adapted = figures.get(name + ADAPTED_SUFFIX)  # absent when a fold has too few playlists to adapt
            scores[name].append((figures[name]["r_precision"][0], adapted["r_precision"][0] if adapted else np.nan))
    return scores


@click.command()
@click.option("--home", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--folds", default=4, show_default=True, help="Folds of whole playlists.")
@click.option("--repeats", default=2, show_default=True, help="Fold draws.")
@click.option("--mask", default="10/3", show_default=True, help="SEEDS/MASKED on the held-out playlists.")
@click.option("--seeds", default=10, show_default=True, help="Random splits per fold.")
@click.option("--shrinkages", default="0.2,0.4,0.6,0.8", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def main(home: Path, folds: int, repeats: int, mask: str, seeds: int, shrinkages: str, as_json: bool) -> None:
    with Store.open(resolve_settings(home=str(home))) as store:
        library = read_library(store)
    options: Options = {"cross-validated": (None, None)}
    for value in [float(s) for s in shrinkages.split(",")]:
        options[f"shrinkage {value:g}"] = (value, False)
        options[f"shrinkage {value:g} + centroid projection"] = (value, True)
    per_option: dict[str, list[tuple]] = {}
    for repeat in range(repeats):
        for name, values in fold_scores(library.vectors, library.playlists, folds, mask, seeds, options,
                                        repeat).items():  # fmt: skip
            per_option.setdefault(name, []).extend(values)
    rows = [{"option": name, "plain": float(np.mean([v[0] for v in values])),
             "adapted": float(np.nanmean([v[1] for v in values])), "folds": len(values)}
            for name, values in per_option.items()]  # fmt: skip
    if as_json:
        print(json.dumps({"store": str(home), "mask": mask, "seeds": seeds, "rows": rows}))
        return
    table = Table(title=f"{library.model[0]}: projection fitted on other playlists, mask {mask}")
    for column in ("option", "plain", "adapted"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["option"], f"{row['plain']:.3f}", f"{row['adapted']:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
