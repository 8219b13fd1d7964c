#!/usr/bin/env bash
# Offline evolution of the CUDA tunable program on a GPU machine, from poor knobs (the runs in docs/evolve.md).
#   scripts/gpu_evolve.sh build        # here: gqa-evolve (CUDA, MPI, x86-64-v3) built from a clean worktree of
#                                      # HEAD in ../wt-gpu, plus the OpenMPI bundle, into .gpu-bin/evolve/
#   scripts/gpu_evolve.sh single [N]   # there: one process, one worker on one GPU, N iterations (default 30)
#   scripts/gpu_evolve.sh mpi K [N]    # there: mpirun -n K+1 --workers mpi (K evaluator ranks, one GPU each)
# Carry .gpu-bin/evolve. GQA_EVOLVE_LIMIT: hard limit in seconds (default 540; on a kill, a resume with no
# new iterations still writes the report). Results in $OUT: stdout, evolve.log, report.md, best program,
# and the start and best programs re-evaluated (within GQA_REEVAL_BUDGET seconds, default 60).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=$PWD/.gpu-bin/evolve
MODE=${1:?usage: scripts/gpu_evolve.sh build | single [N] | mpi K [N]}

if [[ $MODE == build ]]; then
  set -e
  WT=${GQA_WORKTREE:-$PWD/../wt-gpu}
  [[ -d $WT ]] || git worktree add --detach "$WT" HEAD
  git -C "$WT" checkout -q --detach "$(git rev-parse HEAD)"
  cmake -S "$WT" -B "$WT/build" -G Ninja -DGQA_BUILD_TESTS=OFF -DGQA_CPU_ARCH=x86-64-v3 -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$WT/build" -j2 --target gqa-evolve
  mkdir -p "$BIN_DIR"
  cp "$WT/build/gqa-evolve" "$BIN_DIR/" && strip "$BIN_DIR/gqa-evolve"
  scripts/mpi_bundle.sh "$BIN_DIR/openmpi"
  echo "built from $(git -C "$WT" rev-parse --short HEAD)"; du -sh "$BIN_DIR"
  exit 0
fi

OUT=${OUT:-out/gpu-evolve}
mkdir -p "$OUT"
source "$BIN_DIR/openmpi/env.sh"
BIN=$BIN_DIR/gqa-evolve
export GQA_CACHE_DIR=/tmp/gqa-cache OMP_WAIT_POLICY=passive
{ nvidia-smi -L; ldd "$BIN" | grep -i "not found"; } | tee "$OUT/stdout.txt"
R=/tmp/run-$MODE; rm -rf "$R"; mkdir -p "$R"
# Poor starting knobs, so that there is something to find.
sed -e 's/^constexpr int THREADS = [0-9]*;/constexpr int THREADS = 64;/' \
    -e 's/^constexpr int DECODE_SPLITS = [0-9]*;/constexpr int DECODE_SPLITS = 1;/' \
    -e 's/^constexpr int MIN_KEYS_PER_SPLIT = [0-9]*;/constexpr int MIN_KEYS_PER_SPLIT = 512;/' \
    examples/qwen3_gqa/tunable_program.cu > "$R/start_program.cu"
ARGS=("$R/start_program.cu" --config examples/qwen3_gqa/config_cuda.yaml --output "$R/run")
case $MODE in
  single) N=${2:-30}; CMD=("$BIN" evolve "${ARGS[@]}" --workers 1 --iterations "$N") ;;
  mpi) K=${2:?mpi needs K}; N=${3:-30}
       CMD=(mpirun -n $((K + 1)) --allow-run-as-root --oversubscribe --bind-to none "$BIN" evolve "${ARGS[@]}" --workers mpi --iterations "$N") ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
echo "+ ${CMD[*]}" | tee -a "$OUT/stdout.txt"
start=$(date +%s.%N)
timeout -s KILL "${GQA_EVOLVE_LIMIT:-540}" "${CMD[@]}" >> "$OUT/stdout.txt" 2>&1
rc=$?
end=$(date +%s.%N)
echo "exit $rc after $(python3 -c "print(f'{$end - $start:.1f}')") s" | tee -a "$OUT/stdout.txt"
if [[ $rc != 0 ]]; then  # the report of what was committed before the kill
  "$BIN" evolve "${ARGS[@]}" --resume --iterations 0 >> "$OUT/stdout.txt" 2>&1
fi
tail -4 "$OUT/stdout.txt"
cp "$R/run/report.md" "$R/run/evolve.log" "$R/run/best/best_program.cu" "$R/run/best/best_program_info.json" "$OUT/" 2>/dev/null
# Re-evaluating both ends takes ~30 s: skipped when the run left less than that of the device call.
t_end=$(( $(date +%s) + ${GQA_REEVAL_BUDGET:-60} ))
for p in "$R/start_program.cu" "$R/run/best/best_program.cu"; do
  (( $(date +%s) + 20 < t_end )) || { echo "== re-evaluation skipped (GQA_REEVAL_BUDGET)" >> "$OUT/stdout.txt"; break; }
  echo "== re-evaluated: $p" >> "$OUT/stdout.txt"
  timeout 120 "$BIN" evaluate "$p" --target cuda --no-e2e --bench-seconds 0.3 2>&1 | grep -E "combined_score|correct" | tee -a "$OUT/stdout.txt"
done
