#!/usr/bin/env bash
# The main job on a fresh machine: set up (packages, tokenizer, build), generate text with the default
# random Qwen3-0.6B (written on first use) and print its speed, then evolve the attention program for a few
# minutes with the offline mutator (scripts/evolve_demo.sh) and say where the best program and the report
# are. Without a GPU both run on the CPU (tunable_program.cpp); with one (nvidia-smi lists a GPU and the
# build has CUDA) on the GPU (tunable_program.cu). GQA_EVOLVE_TARGET=cpu|cuda overrides. Arguments go to
# the evolution (e.g. --workers 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
if [[ -z ${GQA_EVOLVE_TARGET:-} ]]; then
  GQA_EVOLVE_TARGET=cpu
  if nvidia-smi -L >/dev/null 2>&1 && ldd build/gqa-evolve | grep -q libcublas; then GQA_EVOLVE_TARGET=cuda; fi
fi
export GQA_EVOLVE_TARGET
build/gqa-evolve generate --device "$GQA_EVOLVE_TARGET" --prompt "Explain grouped-query attention in one paragraph." --chat --max-tokens 48
GQA_SKIP_SETUP=1 scripts/evolve_demo.sh "$@"
