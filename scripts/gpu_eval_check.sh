#!/usr/bin/env bash
# The CUDA evaluator's check on a GPU machine: the GPU adversarial suite, and timed evaluations of the examples.
#   scripts/gpu_eval_check.sh build   # here: build-evalgpu/ (x86-64-v3 host code, sm_90a) -> build-evalgpu-bin/
#   scripts/gpu_eval_check.sh run     # there, with build-evalgpu-bin/ carried; JSON and logs in $OUT
# Through the device tool: run(command="OUT=$OUT scripts/gpu_eval_check.sh run", carry=["build-evalgpu-bin"]).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=build-evalgpu-bin

if [[ "${1:-run}" == build ]]; then
  set -e
  cmake -S . -B build-evalgpu -G Ninja -DGQA_CPU_ARCH=x86-64-v3 -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-evalgpu -j2 --target gqa-evolve test_adversarial_cuda
  mkdir -p "$BIN"
  cp build-evalgpu/gqa-evolve build-evalgpu/tests/evaluate/test_adversarial_cuda "$BIN/"
  strip "$BIN"/*
  ls -la "$BIN"
  exit 0
fi

OUT=${OUT:-out/gpu-eval}
mkdir -p "$OUT"
export GQA_SOURCE_DIR=$PWD GQA_EVOLVE_BINARY=$PWD/$BIN/gqa-evolve GQA_TEST_CACHE_DIR=/tmp/gqa-test-cache
export GQA_CACHE_DIR=${GQA_CACHE_DIR:-/tmp/gqa-eval-cache}
LOG="$OUT/eval.log"
# gqa-evolve links OpenMPI when the build found it, and the GPU machine has none: carry the copy that
# scripts/gpu_evolve.sh build makes (scripts/mpi_bundle.sh).
if [[ -f .gpu-bin/evolve/openmpi/env.sh ]]; then source .gpu-bin/evolve/openmpi/env.sh; fi
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nvcc --version | tail -1; ldd "$BIN/gqa-evolve" | grep -i "not found"; } 2>&1 | tee "$LOG"

# Timed evaluations: tunable uncached (empty cache: compile and the end-to-end model are made), then cached.
timed() {  # name, args...
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$BIN/gqa-evolve" evaluate "$@" --json > "$OUT/$name.json" 2>>"$LOG"
  local t1=$(date +%s.%N)
  python3 - "$OUT/$name.json" "$name" "$t0" "$t1" <<'PY' | tee -a "$LOG"
import json, sys
r = json.load(open(sys.argv[1])); m = r["metrics"]
print(f"== {sys.argv[2]}: wall {float(sys.argv[4]) - float(sys.argv[3]):.1f} s, evaluation_seconds {m['evaluation_seconds']:.1f}, "
      f"compile cached {m.get('compile_cached')}, correct {m['correct']}, score {m['combined_score']:.4f}, "
      f"failed {m['failed_stage']}: {m.get('failure', '')[:200]}")
for k in ("e2e_token_agreement", "e2e_decode_tps_ratio", "e2e_program_calls", "e2e_skipped"):
    if k in m: print(f"   {k}: {m[k]}")
print(r["artifacts"].get("benchmark_table", ""))
PY
}
rm -rf "$GQA_CACHE_DIR"
timed tunable_uncached examples/qwen3_gqa/tunable_program.cu
timed tunable_cached examples/qwen3_gqa/tunable_program.cu
timed initial examples/qwen3_gqa/initial_program.cu --no-e2e

echo "== GPU adversarial suite" | tee -a "$LOG"
timeout "${GQA_TEST_TIMEOUT:-400}" "$BIN/test_adversarial_cuda" --gtest_output="xml:$OUT/adversarial.xml" 2>&1 | tee "$OUT/adversarial.log"
