"""Ablation of a trained model's track vector on a validation corpus it never heard: parts, pooling, windows.

    python benchmarks/default_model_quality.py --val-corpus ~/data/siamrec-dev \
        --checkpoint ~/runs/default/last.pt [--checkpoint ~/runs/other/last.pt …] --json out.json

For every checkpoint (a run trained on other audio; its standardisation and spread statistics come from its
training tracks), on every playlist of the validation corpus with the masked-playlist protocol of
siamrec.bench (mask 5, up to 10 seeds, candidates = all masked tracks, `--seeds` random splits, the same
splits for every row), plain cosine and the adapted metric (fitted on each split's seeds only):
- the parts of the vector: learned embedding, + log-mel timbre statistics, + the distilled head (if any);
- pooling of the window embeddings: mean, or mean and spread (std) as `siamrec export` ships by default;
- windows per track: 8 (as shipped) or more;
- the same network untrained (random weights, BatchNorm statistics re-estimated on validation windows without
  labels).
siamrec bench gives the shipped model's figures beside musicnn and MFCC; this script explains them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from siamrec import constants as C
from siamrec.bench.baselines import MusicnnEncoder, mfcc_statistics, zscore
from siamrec.bench.protocol import evaluate_vectors
from siamrec.training.data import build_cache, corpus_tracks, evaluation_windows, open_cached
from siamrec.training.nets import SimSiam, load_checkpoint, model_from_checkpoint, part_columns, stats_parts
from siamrec.training.validation import feature_stats, spread_stats, standardised, window_embeddings
from siamrec.vectors import pool_windows

METRICS = ("r_precision", "ndcg", "reward")


def pooled(
    embeddings: torch.Tensor,
    owner: np.ndarray,
    stats: dict[str, torch.Tensor],
    parts: tuple[str, ...],
    pooling: str,
    spread_weight: float = 1.0,
) -> np.ndarray:
    """Track vectors from raw window embeddings: the chosen parts, standardised and scaled, pooled as
    siamrec.embed does (the spread statistics are the run's, measured on its training tracks)."""
    columns = part_columns(stats_parts(stats))
    keep = np.concatenate([columns[name] for name in parts])
    standard = standardised(embeddings, stats, timbre=True).double().numpy()[:, keep]
    spread_mean = spread_scale = None
    if pooling == "mean+std":
        spread_mean = stats["spread_mean"].double().numpy()[keep]
        spread_scale = 1.0 / stats["spread_std"].double().numpy()[keep]
    return pool_windows(standard, np.bincount(owner), pooling, spread_mean, spread_scale, spread_weight)


@torch.no_grad()
def untrained(checkpoint: dict, signals: list[np.ndarray], seed: int = 0) -> SimSiam:
    """The run's architecture with random weights; BatchNorm statistics re-estimated on unlabeled windows."""
    torch.manual_seed(seed)
    model = model_from_checkpoint(checkpoint)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()
            module.momentum = None
    for module in model.backbone.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            module.reset_parameters()
    windows = torch.from_numpy(np.concatenate([evaluation_windows(s, 4) for s in signals]))
    model.train()
    for chunk in windows[torch.randperm(len(windows))].split(64):
        model.backbone(model.frontend(chunk))
    return model.eval()


def score(vectors: np.ndarray, groups: list[np.ndarray], seeds: int) -> dict[str, dict[str, tuple[float, float]]]:
    return {
        metric: evaluate_vectors(vectors, groups, n_masked=5, max_seeds=10, seeds=seeds, adapted=metric == "adapted")
        for metric in ("plain", "adapted")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val-corpus", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("~/.siamrec/cache/decoded").expanduser())
    parser.add_argument("--checkpoint", type=Path, action="append", default=[], help="a run's last.pt")
    parser.add_argument("--seeds", type=int, default=10, help="random mask/seed splits")
    parser.add_argument("--windows", default="8,16", help="windows per track to try (8 ships)")
    parser.add_argument("--untrained", action="store_true", help="also the untrained network of the first run")
    parser.add_argument("--musicnn", type=Path, help="also musicnn_msd.onnx (z-scored), on the same splits")
    parser.add_argument("--mfcc", action="store_true", help="also MFCC statistics (z-scored), on the same splits")
    parser.add_argument("--spread-weight", type=float, default=1.0, help="mean+std: the spread's weight (export's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    val_set, files, _ = build_cache(corpus_tracks(args.val_corpus), args.cache)
    signals = open_cached(files)
    groups = [np.asarray(v) for v in val_set.playlists.values()]
    print(f"{len(groups)} validation playlists, {len(files)} tracks; mask 5, up to 10 seeds, {args.seeds} splits")
    rows: dict[str, dict] = {}
    runs = [(path.parent.name, load_checkpoint(str(path))) for path in args.checkpoint]
    if args.untrained:
        runs.append(("untrained", {**runs[0][1], "untrained": True}))
    for label, checkpoint in runs:
        if checkpoint.get("untrained"):
            model = untrained(checkpoint, signals)
            train_embeddings, train_owner = window_embeddings(model, signals, torch.device("cpu"), C.WINDOWS_PER_TRACK)
            stats = feature_stats(train_embeddings, model.backbone_dim)
            stats.update(spread_stats(standardised(train_embeddings, stats, True), train_owner))
        else:
            model, stats = model_from_checkpoint(checkpoint).eval(), checkpoint["feature_stats"]
        names = [name for name, _ in stats_parts(stats)]
        combos = [tuple(names[: i + 1]) for i in range(len(names))] + [(name,) for name in names[1:]]
        for windows in [int(w) for w in args.windows.split(",")]:
            started = time.perf_counter()
            embeddings, owner = window_embeddings(model, signals, torch.device("cpu"), windows)
            seconds = time.perf_counter() - started
            for parts in combos:
                for pooling in ("mean", "mean+std"):
                    if windows != C.WINDOWS_PER_TRACK and parts != tuple(names):
                        continue
                    name = f"{label} | {'+'.join(parts)} | {pooling} | {windows} windows"
                    rows[name] = score(
                        pooled(embeddings, owner, stats, parts, pooling, args.spread_weight), groups, args.seeds
                    )
                    rows[name]["embed_seconds"] = seconds
                    plain, adapted = rows[name]["plain"]["r_precision"], rows[name]["adapted"]["r_precision"]
                    print(f"| {name} | {plain[0]:.3f} ± {plain[1]:.3f} | {adapted[0]:.3f} ± {adapted[1]:.3f} |",
                          flush=True)  # fmt: skip
    windows = [evaluation_windows(s) for s in signals] if args.musicnn or args.mfcc else []
    baselines = {"mfcc": lambda: zscore(mfcc_statistics(windows))} if args.mfcc else {}
    if args.musicnn:
        baselines["musicnn"] = lambda: zscore(MusicnnEncoder(args.musicnn).track_vectors(windows))
    for name, make in baselines.items():
        started = time.perf_counter()
        rows[name] = score(make(), groups, args.seeds)
        rows[name]["embed_seconds"] = time.perf_counter() - started
        plain, adapted = rows[name]["plain"]["r_precision"], rows[name]["adapted"]["r_precision"]
        print(f"| {name} | {plain[0]:.3f} ± {plain[1]:.3f} | {adapted[0]:.3f} ± {adapted[1]:.3f} |", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
