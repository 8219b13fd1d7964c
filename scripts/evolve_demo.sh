#!/usr/bin/env bash
# The evolution demo on any machine (no GPU, no LLM endpoint needed): sets up and builds, then runs
# `gqa-evolve evolve` with the offline mutator on the CPU tunable attention program for a few minutes and
# prints where the best program and the report are.
#   GQA_EVOLVE_ITERATIONS  iterations (default 16)
#   GQA_EVOLVE_OUT         run folder (default runs/evolve-demo-<time>); rerun with --resume to continue
#   GQA_EVOLVE_TARGET      cpu (default) or cuda (tunable_program.cu, config_cuda.yaml; needs a GPU)
# The seed program is examples/qwen3_gqa/tunable_program.cpp with deliberately poor knob settings (small
# key blocks, no GQA packing, no split-KV), so that there is measurable room to improve; extra arguments go
# to `gqa-evolve evolve` (e.g. --workers 2, --resume).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n "${GQA_SKIP_SETUP:-}" ]] || scripts/setup.sh
BIN=${GQA_BUILD_DIR:-build}/gqa-evolve
OUT=${GQA_EVOLVE_OUT:-runs/evolve-demo-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
TARGET=${GQA_EVOLVE_TARGET:-cpu}
if [[ $TARGET == cuda ]]; then
  EXT=cu CONFIG=examples/qwen3_gqa/config_cuda.yaml EVAL_ARGS=(--target cuda --no-e2e --bench-seconds 0.3)
  POOR=(-e 's/^constexpr int THREADS = [0-9]*;/constexpr int THREADS = 64;/'
        -e 's/^constexpr int DECODE_SPLITS = [0-9]*;/constexpr int DECODE_SPLITS = 1;/'
        -e 's/^constexpr int MIN_KEYS_PER_SPLIT = [0-9]*;/constexpr int MIN_KEYS_PER_SPLIT = 512;/')
else
  EXT=cpp CONFIG=examples/qwen3_gqa/config.yaml EVAL_ARGS=(--no-e2e --threads 1 --bench-seconds 0.3)
  POOR=(-e 's/^constexpr int KV_BLOCK = [0-9]*;/constexpr int KV_BLOCK = 16;/'
        -e 's/^constexpr int Q_TILE = [0-9]*;/constexpr int Q_TILE = 1;/'
        -e 's/^constexpr int GQA_PACK = [0-9]*;/constexpr int GQA_PACK = 0;/'
        -e 's/^constexpr int MIN_SPLIT_KEYS = [0-9]*;/constexpr int MIN_SPLIT_KEYS = 4096;/'
        -e 's/^constexpr int SPLITS_PER_THREAD = [0-9]*;/constexpr int SPLITS_PER_THREAD = 1;/')
fi
START=$OUT/start_program.$EXT
[[ -f $START ]] || sed "${POOR[@]}" "examples/qwen3_gqa/tunable_program.$EXT" > "$START"
"$BIN" evolve "$START" --config "$CONFIG" --output "$OUT" --iterations "${GQA_EVOLVE_ITERATIONS:-16}" "$@"
# Scores during a run are single noisy measurements, and the best of many is biased upwards: measure the
# start and the best program again, one after the other, with the same fixed settings.
echo
echo "re-measuring the start and the best program (fixed settings, one after the other)..."
for p in "$START" "$OUT/best/best_program.$EXT"; do
  score=$("$BIN" evaluate "$p" "${EVAL_ARGS[@]}" | sed -n 's/^combined_score: *//p')
  echo "  $p: combined_score $score"
done
echo
echo "run folder: $OUT (report: $OUT/report.html and report.md, best program: $OUT/best/best_program.$EXT, log: $OUT/evolve.log)"
