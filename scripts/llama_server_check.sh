#!/usr/bin/env bash
# Checks the LLM mutator against llama.cpp's llama-server, a server no one here wrote: builds llama-server
# (CPU) from the llama.cpp git bundle that the npm package node-llama-cpp ships, once, into a cache; writes
# a tiny random-weight Qwen3 GGUF; serves it on loopback behind --api-key; runs `gqa-evolve evolve` with
# examples/qwen3_gqa/config_llama_server.yaml and checks that the run completes with every child a recorded
# diff_failed (the answers are noise); then runs with a wrong key and checks that the run stops at once with
# a clear error (HTTP 401, the model, the URL) that does not show the key.
#
#   scripts/llama_server_check.sh [--cache DIR] [--build DIR] [--port N] [--iterations N]
#
# --cache: where llama.cpp is cloned and built (default ~/.cache/gqa-evolve, as for the evaluator cache); --build: the
# gqa-evolve build folder (default build). Needs git, cmake, ninja, a C++ compiler, npm (first run only),
# python3. The first run builds llama-server: about 20 minutes on 2 busy cores (docs/evolve.md).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="$HOME/.cache/gqa-evolve"
BUILD=build
PORT=8080
ITERATIONS=4
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --iterations) ITERATIONS="$2"; shift 2 ;;
    *) echo "llama_server_check.sh: unknown argument '$1' (see the comment at the top)" >&2; exit 2 ;;
  esac
done
GQA="$BUILD/gqa-evolve"
[[ -x "$GQA" ]] || { echo "llama_server_check.sh: $GQA is missing: build gqa-evolve first (or pass --build)" >&2; exit 1; }

SERVER="$CACHE/llama.cpp/build/bin/llama-server"
if [[ ! -x "$SERVER" ]]; then
  echo "== building llama-server (CPU) into $CACHE/llama.cpp/build (once)"
  scripts/llama_source.sh "$CACHE/llama.cpp"
  # CPU only, no network at build time (no prebuilt web UI download, no HTTPS).
  cmake -S "$CACHE/llama.cpp" -B "$CACHE/llama.cpp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=OFF \
    -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF >/dev/null
  start=$SECONDS
  cmake --build "$CACHE/llama.cpp/build" --target llama-server -j2 >"$CACHE/llama.cpp/build.log" 2>&1 ||
    { tail -30 "$CACHE/llama.cpp/build.log"; exit 1; }
  echo "   built in $((SECONDS - start)) s"
fi

MODEL="$CACHE/tiny-qwen3.gguf"
python3 scripts/write_tiny_qwen3_gguf.py "$MODEL"

WORK=$(mktemp -d)
KEY="gqa-check-$RANDOM$RANDOM"
SERVER_PID=
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== llama-server on 127.0.0.1:$PORT"
"$SERVER" -m "$MODEL" --host 127.0.0.1 --port "$PORT" --api-key "$KEY" --alias local-model -c 32768 -np 1 \
  -t 2 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -30 "$WORK/server.log"; echo "llama-server exited" >&2; exit 1; }
  sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { tail -30 "$WORK/server.log"; echo "llama-server is not up" >&2; exit 1; }

CONFIG=examples/qwen3_gqa/config_llama_server.yaml
if [[ "$PORT" != 8080 ]]; then
  sed "s#http://127.0.0.1:8080/v1#http://127.0.0.1:$PORT/v1#" "$CONFIG" >"$WORK/config.yaml"
  CONFIG="$WORK/config.yaml"
fi

echo "== evolve, $ITERATIONS iterations, the right key"
start=$SECONDS
GQA_LLAMA_KEY="$KEY" "$GQA" evolve examples/qwen3_gqa/tunable_program.cpp --config "$CONFIG" \
  --output "$WORK/run" --iterations "$ITERATIONS" --quiet
outcomes=$(sqlite3 "$WORK/run/evolve.db" "SELECT outcome, COUNT(*) FROM attempts WHERE iteration > 0 GROUP BY outcome")
echo "   $((SECONDS - start)) s; outcomes: ${outcomes//$'\n'/, }"
if [[ "$outcomes" != "diff_failed|$ITERATIONS" ]]; then
  sqlite3 "$WORK/run/evolve.db" "SELECT iteration, outcome, reason FROM attempts"
  echo "FAIL: expected every one of $ITERATIONS children to be a recorded diff_failed" >&2
  exit 1
fi
grep -q "tokens: " "$WORK/run/evolve.log" || { echo "FAIL: no token counts in evolve.log" >&2; exit 1; }
grep "local-model: " "$WORK/run/evolve.log" | tail -1 | sed 's/^ */   /'

echo "== evolve, 20 iterations, a wrong key"
set +e
GQA_LLAMA_KEY="wrong-$KEY" "$GQA" evolve examples/qwen3_gqa/tunable_program.cpp --config "$CONFIG" \
  --output "$WORK/wrong" --iterations 20 --quiet >"$WORK/wrong.out" 2>&1
rc=$?
set -e
error=$(tail -1 "$WORK/wrong.out")
echo "   exit $rc: $error"
tried=$(sqlite3 "$WORK/wrong/evolve.db" "SELECT COUNT(*) FROM attempts WHERE iteration > 0")
[[ $rc -ne 0 ]] || { echo "FAIL: the run with a wrong key exited 0" >&2; exit 1; }
[[ "$error" == *"model 'local-model' at http://127.0.0.1:$PORT/v1/chat/completions: HTTP 401"* ]] ||
  { echo "FAIL: the error does not name the model, the URL and HTTP 401" >&2; exit 1; }
if grep -q -- "$KEY" "$WORK/wrong.out" "$WORK/wrong/evolve.log"; then
  echo "FAIL: the key appears in the output or the log" >&2
  exit 1
fi
[[ "$tried" -le 2 ]] || { echo "FAIL: $tried iterations were spent on a wrong key" >&2; exit 1; }
echo "OK: llama-server ($NODE_LLAMA_CPP's llama.cpp $(git -C "$CACHE/llama.cpp" rev-parse --short HEAD)): $ITERATIONS iterations all diff_failed; a wrong key stopped the run after $tried iterations"
