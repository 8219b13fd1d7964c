#!/usr/bin/env bash
# Checks scripts/convert_to_gguf.py against llama.cpp on the CPU: for each preset, makes a random Qwen3 with
# `gqa-evolve make-model`, converts it to GGUF as bf16, f16 and f32, serves each with llama-server on the
# loopback, and compares (scripts/gguf_compare.py) llama.cpp's tokenizer, its greedy continuations of three
# token-id prompts (16 tokens) and its top-5 probabilities with `gqa-evolve generate --device cpu` and with a
# pure-Python reference forward pass. Exits 1 on a mismatch beyond what rounding explains. Not part of CI
# (scripts/test.sh): llama-server takes about 20 minutes to build on 2 cores.
#
#   scripts/gguf_check.sh [--cache DIR] [--build DIR] [--port N] [--presets "tiny tiny-gqa4"] [--seed N]
#
# --cache: where llama.cpp was built (default ~/.cache/gqa-evolve; scripts/llama_server_check.sh builds it there
# once); --build: the gqa-evolve build folder (default build, else build-gpu). Needs the Qwen3 tokenizer in
# assets/qwen3-tokenizer (scripts/setup.sh). Tolerances on |p(llama.cpp) - p(reference)|: bf16 0.03 and f16 0.01
# with llama-server's defaults (they round activations to the weight type and K/V to f16), f32 0.002 with an f32
# K/V cache and flash attention off. About 2 minutes for the two default presets, most of it the Python reference
# (presets above 30 M parameters, such as qwen3-0.6b, are compared on tokens only). docs/model-files.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="$HOME/.cache/gqa-evolve"
BUILD=
PORT=8097
PRESETS="tiny tiny-gqa4"
SEED=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --presets) PRESETS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    *) echo "gguf_check.sh: unknown argument '$1' (see the comment at the top)" >&2; exit 2 ;;
  esac
done
if [[ -z "$BUILD" ]]; then
  BUILD=build
  [[ ! -x build/gqa-evolve && -x build-gpu/gqa-evolve ]] && BUILD=build-gpu
fi
GQA="$BUILD/gqa-evolve"
[[ -x "$GQA" ]] || { echo "gguf_check.sh: $GQA is missing: build gqa-evolve first (or pass --build)" >&2; exit 1; }
SERVER="$CACHE/llama.cpp/build/bin/llama-server"
[[ -x "$SERVER" ]] ||
  { echo "gguf_check.sh: $SERVER is missing: run scripts/llama_server_check.sh once to build it" >&2; exit 1; }
[[ -f assets/qwen3-tokenizer/tokenizer.json ]] ||
  { echo "gguf_check.sh: assets/qwen3-tokenizer/tokenizer.json is missing: run scripts/setup.sh" >&2; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT

start_server() {  # GGUF [extra llama-server arguments]
  local gguf=$1
  shift
  "$SERVER" -m "$gguf" --host 127.0.0.1 --port "$PORT" -c 1024 -np 1 -t 2 "$@" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.5
  done
  tail -30 "$WORK/server.log"
  echo "gguf_check.sh: llama-server did not come up with $gguf" >&2
  exit 1
}

failed=()
for preset in $PRESETS; do
  model="$WORK/$preset"
  "$GQA" make-model --preset "$preset" --seed "$SEED" --out "$model" --tokenizer-dir assets/qwen3-tokenizer
  for type in bf16 f16 f32; do
    echo "== $preset, $type"
    python3 scripts/convert_to_gguf.py "$model" "$WORK/$preset-$type.gguf" --type "$type" | sed 's/^/   /'
    case $type in
      bf16) tol=0.03; extra=() ;;
      f16) tol=0.01; extra=() ;;
      f32) tol=0.002; extra=(-ctk f32 -ctv f32 -fa off) ;;
    esac
    start_server "$WORK/$preset-$type.gguf" "${extra[@]}"
    if ! python3 scripts/gguf_compare.py --server "http://127.0.0.1:$PORT" --model "$model" --gqa "$GQA" \
      --label "$preset $type" --tol-prob "$tol" --ref-cache "$WORK/$preset-reference.json" | sed 's/^/   /'; then
      failed+=("$preset $type")
    fi
    stop_server
    rm -f "$WORK/$preset-$type.gguf"
  done
  rm -rf "$model"
done

rev=$(git -C "$CACHE/llama.cpp" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAIL: llama.cpp $rev disagrees with gqa-evolve beyond rounding for: ${failed[*]}" >&2
  exit 1
fi
echo "OK: llama.cpp $rev agrees with gqa-evolve's CPU engine on presets $PRESETS as bf16, f16 and f32 GGUF"
