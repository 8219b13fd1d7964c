#!/usr/bin/env bash
# Offline evolution of the CUDA tunable program on a GPU machine from poor knobs (the H200 run in docs/evolve.md):
# 30 iterations under a 420 s hard limit, then a resume that writes the report, then both ends re-evaluated.
# Carry a gqa-evolve built with CUDA (scripts/gpu_check.sh build) in build-evolve-gpu-bin/ (or set BIN); results in $OUT.
set -u
BIN=${BIN:-$PWD/build-evolve-gpu-bin/gqa-evolve}
export GQA_CACHE_DIR=/tmp/gqa-cache
nvidia-smi -L; ldd $BIN | grep -i "not found"
R=/tmp/run; mkdir -p $R
sed -e 's/^constexpr int THREADS = [0-9]*;/constexpr int THREADS = 64;/' -e 's/^constexpr int DECODE_SPLITS = [0-9]*;/constexpr int DECODE_SPLITS = 1;/' -e 's/^constexpr int MIN_KEYS_PER_SPLIT = [0-9]*;/constexpr int MIN_KEYS_PER_SPLIT = 512;/' examples/qwen3_gqa/tunable_program.cu > $R/start_program.cu
grep EVOLVE-KNOB $R/start_program.cu | tail -3
( time timeout -s KILL 420 $BIN evolve $R/start_program.cu --config examples/qwen3_gqa/config_cuda.yaml --output $R --iterations 30 ) > $OUT/evolve_stdout.txt 2>&1
echo "first exit: $?" >> $OUT/evolve_stdout.txt
$BIN evolve $R/start_program.cu --config examples/qwen3_gqa/config_cuda.yaml --output $R --resume --iterations 0 >> $OUT/evolve_stdout.txt 2>&1
tail -5 $OUT/evolve_stdout.txt
cp $R/report.md $R/evolve.log $R/best/best_program.cu $R/best/best_program_info.json $OUT/ 2>/dev/null
for p in $R/start_program.cu $R/best/best_program.cu; do timeout 60 $BIN evaluate $p --target cuda --no-e2e --bench-seconds 0.3 | grep -E "combined_score|correct"; done
