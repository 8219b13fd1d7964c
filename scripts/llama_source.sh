#!/usr/bin/env bash
# Puts llama.cpp's source tree at DIR (default ~/.cache/gqa-evolve/llama.cpp), once: a clone of the git bundle
# that the npm package node-llama-cpp ships (pinned below: the bundle fixes the llama.cpp revision we compare
# with). Needs npm and git; does nothing when DIR already holds a clone.
#
#   scripts/llama_source.sh [DIR]
set -euo pipefail
NODE_LLAMA_CPP=node-llama-cpp@3.22.1
DIR="${1:-$HOME/.cache/gqa-evolve/llama.cpp}"
[[ -d "$DIR/.git" ]] && exit 0
echo "== cloning llama.cpp from $NODE_LLAMA_CPP's git bundle into $DIR (once)"
mkdir -p "$(dirname "$DIR")"
pack=$(mktemp -d)
trap 'rm -rf "$pack"' EXIT
(cd "$pack" && npm pack --silent "$NODE_LLAMA_CPP" >/dev/null && tar xzf node-llama-cpp-*.tgz package/llama)
bundle=$(find "$pack/package/llama" -name '*.bundle' | head -1)
[[ -n "$bundle" ]] || { echo "llama_source.sh: no git bundle in $NODE_LLAMA_CPP's llama/ folder" >&2; exit 1; }
rm -rf "$DIR"
git clone -q "$bundle" "$DIR"
