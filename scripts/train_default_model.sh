#!/usr/bin/env bash
# Train and export siamrec's shipped default model on the TRAIN corpus (../shared/corpus, sources_train.json),
# validating on the dev corpus (sources_dev.json), whose audio it never hears. Uses the project's own
# `siamrec train` and `siamrec export`. Re-runnable: the decode cache is reused and `train` resumes a run
# folder that already holds a checkpoint.
#
#   scripts/train_default_model.sh ablation   # the model card's ablation (short runs, same budget each)
#   scripts/train_default_model.sh train      # the default model (about an hour on 2 CPU cores)
#   scripts/train_default_model.sh export     # → siamrec/assets/default.onnx, then the quality benchmark
#
# Environment: CORPUS (default ~/data/siamrec-train), VAL_CORPUS (~/data/siamrec-dev), RUNS (~/runs),
# CACHE (~/.siamrec/cache/decoded), EPOCHS (default 12), PYTHON (.venv/bin/python), SIAMREC (.venv/bin/siamrec).
set -euo pipefail
cd "$(dirname "$0")/.."

CORPUS=${CORPUS:-$HOME/data/siamrec-dev}
RUNS=${RUNS:-$HOME/runs}
CACHE=${CACHE:-$HOME/.siamrec/cache/decoded}
EPOCHS=${EPOCHS:-30}
PYTHON=${PYTHON:-.venv/bin/python}
SIAMREC=${SIAMREC:-.venv/bin/siamrec}
RUN="$RUNS/default"
# The default model: a small CNN (fast on a laptop CPU), Adam (SGD at the recipe's lr barely moved in a
# CPU budget: loss -0.06 after 76 steps vs -0.36 after 60 with Adam), two-crop pairs, spectrogram
# augmentation only (the effect chain made the encoder blind to the timbre that playlists share: see
# siamrec/assets/MODEL_CARD.md).
MODEL_ARGS=(--backbone cnn --width 16 --batch-size 64 --crops-per-track 8 --optimizer adam --lr 0.001)
# The ablation: a smaller CNN with the same recipe, 60 steps per cell.
ABLATION_ARGS=(--backbone cnn --width 8 --batch-size 32 --crops-per-track 8 --optimizer adam --lr 0.001)

ablation() {
    for pairs in same-crop two-crops; do
        for augment in effects mix spec all; do
            $SIAMREC train --corpus "$CORPUS" --cache "$CACHE" --out "$RUNS/ablation/$augment-$pairs" \
                "${ABLATION_ARGS[@]}" --augment "$augment" --pairs "$pairs" --epochs 2 --max-steps-per-epoch 30 \
                --val-every 2 --workers 1
        done
    done
    $PYTHON - "$RUNS/ablation" <<'EOF'
import csv, sys
from pathlib import Path
print("| augment | pairs | loss (last epoch) | collapse (last epoch) | held-out R-precision | chance |")
print("|---|---|--:|--:|--:|--:|")
for log in sorted(Path(sys.argv[1]).glob("*/log.csv")):
    row = list(csv.DictReader(open(log)))[-1]
    augment, pairs = log.parent.name.split("-", 1)
    print(f"| {augment} | {pairs} | {float(row['loss']):+.3f} | {float(row['collapse']):.2f} | "
          f"{float(row['r_precision']):.3f} | {float(row['r_precision_chance']):.3f} |")
EOF
}

train() {
    local resume=()
    [[ -f "$RUN/last.pt" ]] && resume=(--resume)
    $SIAMREC train --corpus "$CORPUS" --cache "$CACHE" --out "$RUN" "${MODEL_ARGS[@]}" \
        --augment spec --pairs two-crops --epochs "$EPOCHS" --val-every 5 --workers 1 "${resume[@]}"
}

export_model() {
    local held
    held=$($PYTHON -c "import torch, sys; print('; '.join(torch.load(sys.argv[1], weights_only=False)['val_playlists']))" "$RUN/last.pt")
    $SIAMREC export "$RUN/last.pt" -o siamrec/assets/default.onnx --name siamrec-default \
        --trained-on "siamrec dev corpus (shared/corpus/sources_dev.json) minus held-out playlists: $held"
    $PYTHON benchmarks/default_model_quality.py --corpus "$CORPUS" --cache "$CACHE" \
        --checkpoint "$RUN/last.pt" --model siamrec/assets/default.onnx
}

case "${1:-all}" in
    ablation) ablation ;;
    train) train ;;
    export) export_model ;;
    all) train && export_model ;;
    *) echo "usage: $0 [ablation|train|export|all]" >&2; exit 2 ;;
esac
