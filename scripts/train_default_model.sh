#!/usr/bin/env bash
# Train and export siamrec's shipped default model on the TRAIN corpus (../shared/corpus, sources_train.json),
# validating on the dev corpus (sources_dev.json), whose audio it never hears. Uses the project's own
# `siamrec train` and `siamrec export`. Re-runnable: the decode cache is reused and `train` resumes a run
# folder that already holds a checkpoint.
#
#   scripts/train_default_model.sh ablation   # the model card's ablation (short runs, same budget each)
#   scripts/train_default_model.sh train      # the default model (about 50 min on 2 CPU cores)
#   scripts/train_default_model.sh export     # → $RUNS/default.onnx (no projection yet), then the quality benchmark
#   scripts/train_default_model.sh project    # the metric fitted on the train corpus's playlists → siamrec/assets/default.onnx
#
# Environment: CORPUS (default ~/data/siamrec-train), VAL_CORPUS (~/data/siamrec-dev), RUNS (~/runs),
# CACHE (~/.cache/siamrec/decoded), EPOCHS (default 16), TEACHER (musicnn; empty: no distillation),
# DISTILL_WEIGHT (1), SPREAD_WEIGHT (0.5), PROJECTION_SHRINKAGE (0.7), TRAIN_STORE (/tmp/siamrec-train-store),
# PYTHON (.venv/bin/python), SIAMREC (.venv/bin/siamrec).
set -euo pipefail
cd "$(dirname "$0")/.."

CORPUS=${CORPUS:-$HOME/data/siamrec-train}
VAL_CORPUS=${VAL_CORPUS:-$HOME/data/siamrec-dev}
RUNS=${RUNS:-$HOME/runs}
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/siamrec/decoded}
EPOCHS=${EPOCHS:-16}
# musicnn (ISC licence, shipped for the bench) as the teacher of a distillation head; TEACHER= (empty) for none.
TEACHER=${TEACHER-siamrec/assets/baselines/musicnn_msd.onnx}
DISTILL_WEIGHT=${DISTILL_WEIGHT:-1}
# The spread's weight beside the mean in the track vector: chosen on the TRAIN corpus's playlists with
# benchmarks/spread_weight.py (model card), never on the dev corpus it is reported on.
SPREAD_WEIGHT=${SPREAD_WEIGHT:-0.5}
# The shipped projection's shrinkage: chosen with benchmarks/shipped_projection.py on the TRAIN corpus's playlists
# (fitted on some, scored on the held-out others), never on the dev corpus (model card).
PROJECTION_SHRINKAGE=${PROJECTION_SHRINKAGE:-0.7}
TRAIN_STORE=${TRAIN_STORE:-/tmp/siamrec-train-store}
PYTHON=${PYTHON:-.venv/bin/python}
SIAMREC=${SIAMREC:-.venv/bin/siamrec}
RUN="$RUNS/default"
# A small CNN (fast on a laptop CPU), Adam (SGD at the recipe's lr barely moved in a CPU budget), spectrogram
# augmentation only (the effect chain made the encoder blind to the timbre that playlists share), half the
# pairs two crops of one track and half crops of two different tracks of one playlist (issue 10); the shipped
# vector adds log-mel band statistics beside the learned embedding (--timbre, the default) and a head distilled
# from musicnn (--teacher).
MODEL_ARGS=(--backbone cnn --width 16 --batch-size 64 --crops-per-track 8 --optimizer adam --lr 0.001 --augment spec)
PAIRS=${PAIRS:-two-crops:0.5,playlist:0.5}
# The ablation: the same network, one short budget per pair recipe.
ABLATION_STEPS=${ABLATION_STEPS:-30}

source_args() {
    # The corpus when its build has finished, else the audio folders built so far (one playlist per folder).
    if [[ -f "$CORPUS/playlists.json" ]]; then echo --corpus "$CORPUS"; else echo --data "$CORPUS/audio"; fi
}

ablation() {
    for pairs in two-crops playlist two-crops:0.5,playlist:0.5; do
        $SIAMREC train $(source_args) --val-corpus "$VAL_CORPUS" --cache "$CACHE" --out "$RUNS/ablation/${pairs//[:,]/_}" \
            "${MODEL_ARGS[@]}" --pairs "$pairs" --epochs 4 --max-steps-per-epoch "$ABLATION_STEPS" --val-every 4 \
            --workers 1
    done
    $PYTHON benchmarks/default_model_quality.py --val-corpus "$VAL_CORPUS" --cache "$CACHE" --windows 8 \
        $(for run in "$RUNS"/ablation/*/last.pt; do echo --checkpoint "$run"; done)
}

train() {
    local resume=()
    [[ -f "$RUN/last.pt" ]] && resume=(--resume)
    $SIAMREC train $(source_args) --val-corpus "$VAL_CORPUS" --cache "$CACHE" --out "$RUN" "${MODEL_ARGS[@]}" \
        --pairs "$PAIRS" --epochs "$EPOCHS" --val-every 4 --workers 1 ${TEACHER:+--teacher "$TEACHER" --distill-weight "$DISTILL_WEIGHT"} "${resume[@]}"
}

export_model() {
    $SIAMREC export "$RUN/last.pt" -o "$RUNS/default.onnx" --name siamrec-default --spread-weight "$SPREAD_WEIGHT" \
        --trained-on "siamrec train corpus (shared/corpus/sources_train.json); validated on the dev corpus, never trained on"
    $PYTHON benchmarks/default_model_quality.py --val-corpus "$VAL_CORPUS" --cache "$CACHE" \
        --checkpoint "$RUN/last.pt" --untrained --spread-weight "$SPREAD_WEIGHT"
}

project() {
    # The train corpus only: check it shares nothing with the dev corpus, embed it with the exported network,
    # show the choice of shrinkage (held-out train playlists), then write the projected model.
    $PYTHON benchmarks/corpus_separation.py --dev "$VAL_CORPUS" --train "$CORPUS"
    $SIAMREC --home "$TRAIN_STORE" --model "$RUNS/default.onnx" sync-playlists --mpd "$CORPUS/playlists.json" \
        --audio-manifest "$CORPUS/tracks.tsv"
    $PYTHON benchmarks/shipped_projection.py --home "$TRAIN_STORE" --shrinkages 0.2,0.4,0.5,0.6,0.7,0.8
    $SIAMREC --home "$TRAIN_STORE" project "$RUNS/default.onnx" -o siamrec/assets/default.onnx \
        --shrinkage "$PROJECTION_SHRINKAGE" --no-centroid-projection --name siamrec-default-2 \
        --fitted-on "the train corpus's playlists (shared/corpus/sources_train.json)"
}

case "${1:-all}" in
    ablation) ablation ;;
    train) train ;;
    export) export_model ;;
    project) project ;;
    all) train && export_model && project ;;
    *) echo "usage: $0 [ablation|train|export|project|all]" >&2; exit 2 ;;
esac
