#!/usr/bin/env bash
# The main job on a fresh machine: set up (packages, tokenizer, build), generate text with the default
# random Qwen3-0.6B on the CPU (written on first use) and print its speed, then evolve the CPU attention
# program for a few minutes with the offline mutator (scripts/evolve_demo.sh) and say where the best
# program and the report are. Arguments go to the evolution (e.g. --workers 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
build/gqa-evolve generate --device cpu --prompt "Explain grouped-query attention in one paragraph." --chat --max-tokens 48
GQA_SKIP_SETUP=1 scripts/evolve_demo.sh "$@"
