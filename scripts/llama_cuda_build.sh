#!/usr/bin/env bash
# Builds llama.cpp's llama-bench with CUDA for Hopper (sm_90) from the same pinned source as the CPU checks
# (scripts/llama_source.sh), once, into ~/.cache/gqa-evolve/llama.cpp/build-cuda, and packs it with its shared
# libraries as .llama-cuda.tgz in the repository root, and the tokenizer (assets/qwen3-tokenizer) as
# .qwen3-tokenizer.tgz, for `scripts/gpu.sh llamacpp` on a GPU machine (carry both with the device tool). Runs on a
# machine without a GPU; needs the CUDA toolkit, cmake, ninja, g++, npm (first run). About 45 minutes on 2 cores
# (2,640 s on 2026-12-07); --jobs N for more.
#
#   scripts/llama_cuda_build.sh [--jobs N] [--cache DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="$HOME/.cache/gqa-evolve"
JOBS=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) JOBS="$2"; shift 2 ;;
    --cache) CACHE="$2"; shift 2 ;;
    *) echo "llama_cuda_build.sh: unknown argument '$1' (see the comment at the top)" >&2; exit 2 ;;
  esac
done
SRC="$CACHE/llama.cpp"
BUILD="$SRC/build-cuda"
scripts/llama_source.sh "$SRC"
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[[ -x "$NVCC" ]] || { echo "llama_cuda_build.sh: nvcc not found (PATH, /usr/local/cuda/bin)" >&2; exit 1; }
# Flash attention kernels for f16 K/V only (GGML_CUDA_FA_ALL_QUANTS off), no curl, no web UI, portable host code;
# the driver library (libcuda.so.1) is not here: executables link with its symbols left to the GPU machine.
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DCMAKE_CUDA_ARCHITECTURES=90-real -DGGML_NATIVE=OFF -DGGML_CUDA_FA_ALL_QUANTS=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DBUILD_SHARED_LIBS=ON \
  -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined >"$BUILD.configure.log" 2>&1 ||
  { tail -30 "$BUILD.configure.log"; exit 1; }
start=$SECONDS
nice cmake --build "$BUILD" --target llama-bench -j"$JOBS" >"$BUILD.log" 2>&1 || { tail -30 "$BUILD.log"; exit 1; }
echo "built llama-bench (CUDA, sm_90) in $((SECONDS - start)) s"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/llama-cuda"
cp "$BUILD/bin/llama-bench" "$stage/llama-cuda/"
find "$BUILD/bin" -name '*.so*' -exec cp -P {} "$stage/llama-cuda/" \;
strip --strip-unneeded "$stage/llama-cuda/"* 2>/dev/null || true
echo "llama.cpp $(git -C "$SRC" rev-parse --short HEAD), CUDA sm_90, built $(date -u +%FT%TZ)" >"$stage/llama-cuda/BUILD_INFO"
tar czf .llama-cuda.tgz -C "$stage" llama-cuda
du -h .llama-cuda.tgz
# The tokenizer that gpu.sh llamacpp's GGUF conversion reads, packed (2 MB, the folder 11 MB): a device call carries
# at most 64 MiB, which both bundles and the folder overflow.
if [[ -f assets/qwen3-tokenizer/tokenizer.json ]]; then
  tar czf .qwen3-tokenizer.tgz -C assets qwen3-tokenizer && du -h .qwen3-tokenizer.tgz
else
  echo "llama_cuda_build.sh: no assets/qwen3-tokenizer (scripts/setup.sh fetches it): .qwen3-tokenizer.tgz not written" >&2
fi
