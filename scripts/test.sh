#!/usr/bin/env bash
# Runs every test: sets up (packages, tokenizer, build), runs ctest on the main build, then builds the
# libFuzzer targets with clang and fuzzes each for a bounded time (GQA_FUZZ_SECONDS, default 20).
# GPU tests (ctest label "gpu") skip themselves on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j2 --timeout 900 --no-tests=error

cmake -S . -B build-fuzz -G Ninja -DGQA_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DGQA_FUZZ_SECONDS="${GQA_FUZZ_SECONDS:-20}" >/dev/null
cmake --build build-fuzz
ctest --test-dir build-fuzz --output-on-failure --no-tests=error
