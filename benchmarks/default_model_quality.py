"""Quality of a trained model on playlists held out from its training, beside its controls and baselines.

    python benchmarks/default_model_quality.py --corpus ~/data/siamrec-dev --cache ~/.siamrec/cache/decoded \
        --checkpoint ~/runs/default/last.pt --model siamrec/assets/default.onnx

The held-out playlists are the ones the checkpoint's run held out (split by playlist, so none of their audio
was trained on). On them, with the masked-playlist protocol (siamrec.bench: mask 5, up to 10 seeds,
candidates = all masked tracks, `--seeds` random splits), it scores:
- model: the ONNX file as shipped (standardised with statistics of the *training* tracks, inside the graph);
- control: the same architecture untrained (random weights, BatchNorm statistics re-estimated on the training
  tracks, standardised the same way), over several initialisations: what training adds;
- MFCC statistics and musicnn (z-scored over the evaluated tracks, as siamrec bench does), and random vectors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from siamrec import constants as C
from siamrec.baselines import mfcc_vectors, musicnn_vectors, random_vectors, zscore
from siamrec.bench import evaluate_vectors
from siamrec.data import build_cache, corpus_tracks, evaluation_windows, open_cached, split_by_playlist
from siamrec.embed import TrackEncoder
from siamrec.models import ModelConfig, SimSiam, load_checkpoint
from siamrec.train import feature_stats, track_vectors, window_embeddings

METRICS = ("r_precision", "ndcg", "hit_rate@10", "reward")


@torch.no_grad()
def control_vectors(config: ModelConfig, seed: int, train: list[np.ndarray], val: list[np.ndarray]) -> np.ndarray:
    """Untrained network: BatchNorm running statistics re-estimated on the training tracks' windows."""
    torch.manual_seed(seed)
    model = SimSiam(config)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over every batch
    windows = torch.from_numpy(np.concatenate([evaluation_windows(s, 4) for s in train]))
    model.train()
    for chunk in windows[torch.randperm(len(windows))].split(64):
        model.backbone(model.frontend(chunk))
    stats = feature_stats(window_embeddings(model, train, torch.device("cpu"), 4)[0])
    embeddings, owner = window_embeddings(model, val, torch.device("cpu"), C.WINDOWS_PER_TRACK)
    return track_vectors(embeddings, owner, stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("~/.siamrec/cache/decoded").expanduser())
    parser.add_argument("--checkpoint", type=Path, required=True, help="the run's last.pt (split, architecture)")
    parser.add_argument("--model", type=Path, default=Path("siamrec/assets/default.onnx"))
    parser.add_argument("--musicnn", type=Path, default=Path("/work/shared/baselines/musicnn_msd.onnx"))
    parser.add_argument("--seeds", type=int, default=10, help="random mask/seed splits per method")
    parser.add_argument("--control-inits", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    checkpoint = load_checkpoint(str(args.checkpoint))
    train_set, val_set, held = split_by_playlist(
        corpus_tracks(args.corpus), checkpoint["val_fraction"], checkpoint["split_seed"]
    )
    assert held == checkpoint["val_playlists"], "the corpus no longer splits as the run did"
    val_set, val_files, _ = build_cache(val_set, args.cache)
    _, train_files, _ = build_cache(train_set, args.cache)
    val_signals, train_signals = open_cached(val_files), open_cached(train_files)
    windows = [evaluation_windows(s) for s in val_signals]
    groups = [np.asarray(v) for v in val_set.playlists.values()]
    print(f"held-out playlists ({len(held)}, {len(val_files)} tracks): {', '.join(held)}")

    methods: dict[str, np.ndarray] = {}
    if args.model.is_file():
        methods["model (ONNX, as shipped)"] = TrackEncoder(args.model, device="cpu").track_vectors(windows)
        methods["model, z-scored on these tracks"] = zscore(methods["model (ONNX, as shipped)"])
    config = ModelConfig(**checkpoint["config"])
    for seed in range(args.control_inits):
        methods[f"control: untrained, init {seed}"] = control_vectors(config, seed, train_signals, val_signals)
    methods["MFCC statistics"] = mfcc_vectors(windows)
    if args.musicnn.is_file():
        methods["musicnn (MSD, supervised)"] = zscore(musicnn_vectors(windows, args.musicnn))
    methods["random"] = random_vectors(len(windows), 64)

    results = {
        name: evaluate_vectors(vectors, groups, n_masked=5, max_seeds=10, seeds=args.seeds)
        for name, vectors in methods.items()
    }
    first = next(iter(results.values()))
    print(
        f"mask 5, up to 10 seeds, {args.seeds} splits; mean ± std over splits. "
        f"chance: R-precision {first['r_precision_chance'][0]:.3f}, reward {first['reward_chance'][0]:.2f}"
    )
    print("| method | " + " | ".join(METRICS) + " |")
    print("|---|" + "--:|" * len(METRICS))
    for name, result in results.items():
        cells = [f"{result[m][0]:.3f} ± {result[m][1]:.3f}" for m in METRICS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    mfcc = results["MFCC statistics"]["r_precision"][0]
    controls = [r["r_precision"][0] for n, r in results.items() if n.startswith("control")]
    for name in [n for n in results if n.startswith("model")]:
        value, spread = results[name]["r_precision"]
        print(
            f"{name}: R-precision / MFCC = {value / mfcc:.2f} (target >= 1.2); "
            f"minus best control = {value - max(controls):+.3f} (spread over splits {spread:.3f})"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"held_out": held, "results": results}, indent=2))


if __name__ == "__main__":
    main()
