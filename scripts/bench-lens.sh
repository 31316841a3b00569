#!/usr/bin/env bash
# make bench-lens: the Geometric Lens end to end on the running platform (`atlas up`), then its measures.
#   1. atlas lens bootstrap: MBPP train problems through the platform, candidates labelled by hidden tests
#      (the decontamination check against HumanEval / MBPP test is printed first), then atlas lens train;
#   2. atlas-bench on HumanEval and MBPP's test split with the public, lens and lens-stop ablations, 3 seeds;
#   3. scripts/bench_lens.py: AUC per feature source, first-pick gain, G(x), selected@1, sandbox runs, cost.
# Sizes (problems) are set by LENS_TRAIN_LIMIT and LENS_EVAL_LIMIT; every step continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
TRAIN=${LENS_TRAIN_LIMIT:-150}
EVAL=${LENS_EVAL_LIMIT:-12}
OUT=${LENS_OUT:-bench-results}
"$BIN/atlas" status >/dev/null || { echo "bench-lens: start the platform first (atlas up)" >&2; exit 1; }
"$BIN/atlas" lens bootstrap --sources mbpp:train --limit "$TRAIN" --k 5 --max-tokens 256 --no-train
"$BIN/atlas" lens train --no-feedback || true  # "not better than the live weights" is an answer, not a failure
for dataset in humaneval mbpp; do
    "$BIN/atlas" bench run --dataset "$dataset" --split test --limit "$EVAL" --k 5 --max-tokens 256 \
        --repair-rounds 0 --ablations public,lens,lens-stop --seeds 0,1,2 --out "$OUT/lens-eval-$dataset"
done
"$BIN/python" scripts/bench_lens.py --eval-runs "$OUT/lens-eval-humaneval,$OUT/lens-eval-mbpp" \
    --out "$OUT/lens.json"
