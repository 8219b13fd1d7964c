#!/usr/bin/env bash
# The main job on a fresh machine: set up, write the default random Qwen3-0.6B (first run only), and
# generate text with it on the CPU, printing the prompt and generation speed and the peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build/gqa-evolve generate --prompt "Explain grouped-query attention in one paragraph." --chat --max-tokens 64 "$@"
