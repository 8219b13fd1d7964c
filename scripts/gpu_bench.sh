#!/usr/bin/env bash
# The benchmark suite on a GPU machine, with the binaries scripts/gpu_check.sh build puts in .gpu-bin/:
#   scripts/gpu_bench.sh              # full (17 scenarios), then compare (stock vs the candidate), then microbench
# Carry .gpu-bin.tgz (what scripts/gpu_check.sh build packs; unpacked here) and assets (the tokenizer,
# git-ignored): the scenarios are text.
# Environment: OUT (default out/gpu-bench), GQA_BENCH_MODEL (default /tmp/m, made if missing),
# GQA_BENCH_PROGRAM (the compare candidate; default examples/qwen3_gqa/tunable_program.cu),
# GQA_BENCH_STEPS (default "full compare microbench"; e.g. "quick"), GQA_BENCH_ARGS (extra bench options).
# Each step's JSON/CSV/Markdown and chart data land in $OUT/<step>/; charts are drawn where gnuplot exists
# (else: cd $OUT/<step> && gnuplot bench-*.gp, here).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.gpu-bin
if [[ -f .gpu-bin.tgz && ! -x "$BIN/gqa-evolve" ]]; then tar xzf .gpu-bin.tgz; fi
OUT=${OUT:-out/gpu-bench}
MODEL=${GQA_BENCH_MODEL:-/tmp/m}
PROGRAM=${GQA_BENCH_PROGRAM:-examples/qwen3_gqa/tunable_program.cu}
STEPS=${GQA_BENCH_STEPS:-full compare microbench}
mkdir -p "$OUT"
export GQA_CACHE_DIR=${GQA_CACHE_DIR:-/tmp/gqa-cache}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/env.log"
if ldd "$BIN/gqa-evolve" | tee -a "$OUT/env.log" | grep -q "not found"; then echo "missing shared libraries"; exit 1; fi
if [[ ! -f "$MODEL/model.safetensors" ]]; then
  # The bench needs the tokenizer: carried in assets/ by the working tree.
  "$BIN/gqa-evolve" make-model --preset qwen3-0.6b --seed 0 --out "$MODEL" --tokenizer-dir assets/qwen3-tokenizer 2>&1 | tee -a "$OUT/env.log"
fi

rc=0
for step in $STEPS; do
  echo "== $step"
  case $step in
    quick|full|extended)
      timeout "${GQA_BENCH_TIMEOUT:-3000}" "$BIN/gqa-evolve" bench --mode "$step" --device cuda --model "$MODEL" \
        --output-dir "$OUT/$step" ${GQA_BENCH_ARGS:-} 2>&1 | tee "$OUT/$step.log"
      rc=$((rc | PIPESTATUS[0])) ;;
    compare)
      timeout "${GQA_BENCH_TIMEOUT:-3000}" "$BIN/gqa-evolve" bench --mode compare --device cuda --model "$MODEL" \
        --program "$PROGRAM" --output-dir "$OUT/compare" ${GQA_BENCH_ARGS:-} 2>&1 | tee "$OUT/compare.log"
      rc=$((rc | PIPESTATUS[0])) ;;
    microbench)
      timeout 600 "$BIN/gqa-evolve" microbench "$PROGRAM" --target cuda 2>&1 | tee "$OUT/microbench.log"
      rc=$((rc | PIPESTATUS[0])) ;;
    *) echo "unknown step '$step' (quick, full, extended, compare, microbench)"; rc=2 ;;
  esac
done
exit "$rc"
