#!/usr/bin/env bash
# make bench-router: the confidence router and the pattern cache end to end on the running platform (`atlas up`,
# a fresh one: the warm-up is what the router learns from), then their measures.
#   1. the decontamination check (printed), then the warm-up: MBPP train problems through the platform with
#      learning on (posteriors and the bench user's patterns);
#   2. the posteriors after the warm-up (atlas router status --json);
#   3. atlas-bench on HumanEval and MBPP's test split with baseline (k=1), repair (fixed k=5), router and cache,
#      3 seeds, learning off;
#   4. scripts/bench_router.py analyse: tokens per solved, savings, equal compute, route mix, retrievals,
#      calibration (JSON in $OUT/router.json, the plot in $OUT/router-calibration.svg).
# Sizes (problems) are set by ROUTER_TRAIN_LIMIT, ROUTER_HUMANEVAL_LIMIT and ROUTER_MBPP_LIMIT (the defaults are the
# run in docs/benchmarks.md, about 2.5 hours here); every step continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
TRAIN=${ROUTER_TRAIN_LIMIT:-40}
declare -A EVAL=([humaneval]=${ROUTER_HUMANEVAL_LIMIT:-6} [mbpp]=${ROUTER_MBPP_LIMIT:-12})
OUT=${ROUTER_OUT:-bench-results}
"$BIN/atlas" status >/dev/null || { echo "bench-router: start the platform first (atlas up)" >&2; exit 1; }
"$BIN/python" scripts/bench_router.py warm --limit "$TRAIN" --out "$OUT"
# atlas.conf keys only: the operator commands refuse unknown ATLAS_ keys such as ATLAS_DATA_DIR
env -u ATLAS_DATA_DIR "$BIN/atlas" router status --json > "$OUT/router-posteriors.json"
for dataset in humaneval mbpp; do
    "$BIN/atlas" bench run --dataset "$dataset" --split test --limit "${EVAL[$dataset]}" --k 5 --max-tokens 256 \
        --repair-rounds 2 --ablations baseline,repair,router,cache --seeds 0,1,2 --out "$OUT/router-eval-$dataset"
done
"$BIN/python" scripts/bench_router.py analyse --eval-runs "$OUT/router-eval-humaneval,$OUT/router-eval-mbpp" \
    --warm "$OUT/router-warm" --posteriors "$OUT/router-posteriors.json" --out "$OUT/router.json" \
    --plot "$OUT/router-calibration.svg"
