#!/usr/bin/env bash
# scripts/gpu.sh: the GPU workflow in one script. It builds the GPU binaries once (build-gpu/, copied stripped
# into .gpu-bin/ and packed as .gpu-bin.tgz) and runs the GPU tests, benchmarks and evolution with them.
#
# On a machine with a GPU (H100/H200, sm_90a; newer GPUs: build --ptx), the CUDA toolkit and apt:
#   scripts/setup.sh && scripts/gpu.sh all
# On a machine without a GPU that builds for one (it needs scripts/setup.sh's packages and the CUDA toolkit):
#   scripts/gpu.sh build                 # here: build-gpu/ -> .gpu-bin/ -> .gpu-bin.tgz
#   then copy the repository and .gpu-bin.tgz to the GPU machine and run scripts/gpu.sh all there. That machine
#   needs the NVIDIA driver, CUDA 13's cuBLAS, python3, nvcc (evaluator tests, evolve, probes) and, for --hf and
#   --attention, PyTorch + transformers. OpenMPI travels in .gpu-bin/openmpi/ when gqa-evolve links it.
#   With the device tool: run(command="scripts/gpu.sh all", carry=[".gpu-bin.tgz"]) (add "assets" for --suite).
#
# Usage: scripts/gpu.sh SUBCOMMAND [FLAGS]                 (scripts/gpu.sh --help prints this)
#   build [--jobs N] [--ptx]   configure and build build-gpu/ (Ninja, Release, x86-64-v3 host code, sm_90a; --ptx:
#                              also compute_90 PTX for GPUs newer than Hopper), copy gqa-evolve, test_engine_cuda,
#                              cuda_bench, attention_bench, test_adversarial_cuda, test_decode_entry stripped into .gpu-bin/ (plus
#                              OpenMPI's runtime via scripts/mpi_bundle.sh if gqa-evolve links it), pack .gpu-bin.tgz
#   test [--filter GTEST_FILTER] [--sanitizer]
#                              engine GPU tests (test_engine_cuda) and the evaluator's (test_adversarial_cuda: the
#                              adversarial suite, the stock kernels through the ABI, the engine hook; test_decode_entry:
#                              programs' device entries and their cheats) -> tests.xml
#                              (JUnit, both), tests.log; --sanitizer: compute-sanitizer memcheck and racecheck on
#                              small attention_bench shapes
#   bench [--quick] [--contexts 128,2048,8192] [--layouts persistent,fused,...] [--cuda-option KEY=VALUE]...
#         [--hf] [--attention] [--evaluate] [--suite] [--suite-steps full,compare,microbench] [--program P]
#                              cuda_bench -> bench.json, one `gqa-evolve generate --device cuda` -> generate.json
#                              (both with the --cuda-option knobs);
#                              --hf: HF transformers baseline (scripts/bench_hf.py) -> hf.json; --attention: stock
#                              attention kernels, correctness and benchmark beside PyTorch SDPA
#                              (scripts/bench_attention_torch.py) -> attention.json; --evaluate: timed
#                              `gqa-evolve evaluate` of the examples (tunable uncached + cached, initial) ->
#                              evaluate.json; --suite:
#                              `gqa-evolve bench` steps (quick|full|extended|compare|microbench; compare and
#                              microbench on --program, default examples/qwen3_gqa/tunable_program.cu) -> suite.tgz;
#                              all logs -> bench.log
#   all [test and bench flags] test, then bench, then the summary table
#   ab OTHER.tgz... [--contexts 128,2048,8192] [--layout persistent] [--cuda-option KEY=VALUE]...
#                              A/B of other builds (their .gpu-bin.tgz, renamed): the layout of each (with the same
#                              options) alternated with this build's, twice (cuda_bench --quick) -> ab.log, table at the end
#   variants 'NAME:--cuda-option KEY=VALUE ...'... [--contexts 128,2048,8192] [--layout persistent]
#                              the same alternation for option variants of this build -> variants.log
#   trace [--contexts 128,8192] [--layers 14] [--cuda-option KEY=VALUE]...
#                              the persistent decode step's trace (generate --trace), summarised by
#                              scripts/persistent_trace.py -> trace.log, trace-ctxN.csv.gz
#   evolve [--minutes 8] [--iterations 30] [--program P] [--config C] [--mpi K] [--keep-run] [--resume-from RUN.tgz]
#                              offline evolution of P (default: examples/qwen3_gqa/tunable_program.cu with poor
#                              knobs) with config C (default examples/qwen3_gqa/config_cuda.yaml), one worker on the
#                              GPU, or --mpi K: mpirun with K evaluator ranks; killed after --minutes (the report
#                              is still written); start and best re-evaluated -> evolve-stdout.txt, report.md,
#                              evolve.log, best_program.*. A run longer than one call: --keep-run packs the run
#                              folder as evolve-run.tgz (no re-evaluation), and the next call's --resume-from
#                              evolve-run.tgz (copied into the repository as .evolve-run.tgz and carried)
#                              continues it (--iterations counts the whole run)
#   ncu [--cuda-option KEY=VALUE]...
#                              Nsight Compute on one persistent decode step at ctx 128 (scheduler, instructions,
#                              stall reasons) -> ncu.log
#   sass [--kernel SUBSTRING]  SASS with source lines of gqa-evolve's kernel(s) whose name holds SUBSTRING
#                              (default persistent_decode_kernelILi128ELi2E: Qwen3-0.6B's shape) -> sass.txt.gz
#   sizes [PRESET...] [--contexts 128,8192]
#                              decode speed of every dense Qwen3 size that fits (default qwen3-0.6b qwen3-1.7b
#                              qwen3-4b qwen3-8b): each random model made in /tmp, cuda_bench --quick of the
#                              default step at --contexts, the model deleted -> sizes.log, a table at the end
#   program [--program P] [--contexts 128,8192,32768] [--rounds 3] [--cuda-option KEY=VALUE]...
#                              P's device entry (include/gqa/decode_abi.cuh; default the stock program
#                              examples/qwen3_gqa/persistent_program.cu) linked into the persistent step against the
#                              built-in step, alternated --rounds times per context (cuda_bench --decode-program):
#                              compile and link times, median ratio per context -> program.log, program.json
#   llamacpp [PRESET...] [--contexts 128,8192] [--layouts persistent]
#                              our engine against llama.cpp on the same weights, per size (default qwen3-0.6b
#                              qwen3-1.7b qwen3-4b qwen3-8b): the random model (make-model), its F16 GGUF
#                              (scripts/convert_to_gguf.py), cuda_bench --quick of our default step (--layouts:
#                              these layouts, a table row each; persistent: the default step) and llama-bench
#                              (-fa 1 -ngl 99, tg 256 at depth = context, 3 repetitions) from .llama-cuda.tgz
#                              (scripts/llama_cuda_build.sh; needs assets/qwen3-tokenizer or its pack
#                              .qwen3-tokenizer.tgz, which llama_cuda_build.sh writes) -> llamacpp.log,
#                              llamacpp.json, a table at the end; the model in /dev/shm when it has 32 GiB free
#                              (qwen3-14b: its model and GGUF do not fit the disk together), else /tmp
#   probes [NAME...] [--define KEY=VALUE]...
#                              build (nvcc -O2, sm_90a) and run the probes dev/cuda/NAME.cu (default: all)
#                              -> probes.log
# Every subcommand but build and probes also takes --model DIR (default /tmp/gqa-model; made with
# `gqa-evolve make-model --preset qwen3-0.6b --seed 0` when missing) or --preset NAME (the random model of that
# make-model preset, seed 0, in /tmp/gqa-model-NAME, made when missing), and --rebuild (build first).
# Binaries: .gpu-bin/; .gpu-bin.tgz is unpacked when .gpu-bin/ is missing or holds another build (BUILD_INFO);
# with neither, build runs first when nvcc and cmake are here.
# Environment: only OUT (output folder, default out/gpu); GQA_* variables are cleared. $OUT/env.log (the GPU, the
# build, ldd) is appended to; a subcommand's other files are replaced. The device tool brings back 8 files and
# runs a call for at most 10 minutes: every step runs under a timeout, `all` writes 6 files (--hf, --attention,
# --evaluate, --suite: one more each) and fits one call; bench --attention, --suite and evolve want a call each.
# Exit status: 0 when every step passed.
set -uo pipefail
CALLER_DIR=$PWD
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
SELF=scripts/gpu.sh
BIN=.gpu-bin
BIN_NAMES=(gqa-evolve test_engine_cuda cuda_bench attention_bench test_adversarial_cuda test_decode_entry)

usage() { sed -n '2,/^[^#]/{/^#/!d;s/^# \{0,1\}//;p}' "$SELF"; }
die() { echo "gpu.sh: $*" >&2; exit 2; }
abspath() { if [[ $1 == /* ]]; then echo "$1"; else echo "$CALLER_DIR/$1"; fi; }

OUT=$(abspath "${OUT:-$REPO/out/gpu}")
# Only OUT is honoured: engine and evaluator switches from the caller's environment would change what is measured.
dropped_env=$(compgen -e | grep '^GQA_' | tr '\n' ' ')
for v in $dropped_env; do unset "$v"; done
export GQA_CACHE_DIR=/tmp/gqa-cache OMP_WAIT_POLICY=passive
# nvcc, cuobjdump, nvdisasm, compute-sanitizer and ncu where the CUDA toolkit installs them.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH=/usr/local/cuda/bin:$PATH; fi

# ---------------------------------------------------------------------------------------------- arguments
SUB=${1:-}
case $SUB in
  "") usage >&2; exit 2 ;;
  -h|--help|help) usage; exit 0 ;;
esac
shift
ARGS=("$@")
F_RUN="--model --preset --rebuild"
F_TEST="--filter --sanitizer"
F_BENCH="--quick --contexts --layouts --cuda-option --hf --attention --evaluate --suite --suite-steps --program"
case $SUB in
  build) FLAGS="--jobs --ptx" ;;
  test) FLAGS="$F_RUN $F_TEST" ;;
  bench) FLAGS="$F_RUN $F_BENCH" ;;
  all) FLAGS="$F_RUN $F_TEST $F_BENCH" ;;
  ab) FLAGS="$F_RUN --contexts --layout --cuda-option" ;;
  variants) FLAGS="$F_RUN --contexts --layout" ;;
  trace) FLAGS="$F_RUN --contexts --layers --cuda-option" ;;
  evolve) FLAGS="$F_RUN --minutes --iterations --program --config --mpi --resume-from --keep-run" ;;
  ncu) FLAGS="$F_RUN --cuda-option" ;;
  sass) FLAGS="$F_RUN --kernel" ;;
  probes) FLAGS="--define" ;;
  sizes) FLAGS="--rebuild --contexts" ;;
  program) FLAGS="$F_RUN --contexts --program --rounds --cuda-option" ;;
  llamacpp) FLAGS="--rebuild --contexts --layouts" ;;
  *) die "unknown subcommand '$SUB' (known: build test bench all ab variants trace evolve ncu sass probes sizes program llamacpp; --help)" ;;
esac

MODEL=/tmp/gqa-model PRESET=qwen3-0.6b REBUILD=0 JOBS=$(nproc) PTX=OFF FILTER='*' SANITIZER=0 QUICK=0 CONTEXTS="" LAYOUTS=""
HF=0 ATTENTION=0 EVALUATE=0 SUITE=0 SUITE_STEPS=full,compare,microbench PROGRAM="" LAYOUT=persistent LAYERS=14
MINUTES=8 ITERATIONS=30 CONFIG=$REPO/examples/qwen3_gqa/config_cuda.yaml MPI_RANKS=0 ROUNDS=3 RESUME_FROM="" KEEP_RUN=0
KERNEL=persistent_decode_kernelILi128ELi2E
CUDA_OPTS=() DEFINES=() POSITIONAL=()
int_re='^[0-9]+$' list_re='^[0-9]+(,[0-9]+)*$'
while [[ $# -gt 0 ]]; do
  arg=$1 shift_by=1 val=""
  if [[ $arg == -h || $arg == --help ]]; then usage; exit 0; fi
  if [[ $arg != -* ]]; then
    [[ $SUB == ab || $SUB == variants || $SUB == probes || $SUB == sizes || $SUB == llamacpp ]] ||
      die "unexpected argument '$arg' for '$SUB' (see --help)"
    POSITIONAL+=("$arg"); shift; continue
  fi
  if [[ $arg == --*=* ]]; then val=${arg#*=} arg=${arg%%=*} has_val=1; else has_val=0; fi
  [[ " $FLAGS " == *" $arg "* ]] || die "unknown flag '$arg' for '$SUB' (known: $FLAGS)"
  case $arg in  # flags without a value
    --rebuild|--ptx|--sanitizer|--quick|--hf|--attention|--evaluate|--suite|--keep-run)
      [[ $has_val == 0 ]] || die "$arg takes no value" ;;
    *) if [[ $has_val == 0 ]]; then
         [[ $# -ge 2 ]] || die "$arg needs a value"
         val=$2 shift_by=2
       fi ;;
  esac
  case $arg in
    --model) MODEL=$(abspath "$val") ;;
    --preset) [[ $val =~ ^[a-z0-9.x-]+$ ]] || die "--preset: not a preset name: '$val'"
              PRESET=$val MODEL=/tmp/gqa-model-$val ;;
    --rebuild) REBUILD=1 ;;
    --jobs) [[ $val =~ $int_re ]] || die "--jobs: not a number: '$val'"; JOBS=$val ;;
    --ptx) PTX=ON ;;
    --filter) FILTER=$val ;;
    --sanitizer) SANITIZER=1 ;;
    --quick) QUICK=1 ;;
    --contexts) [[ $val =~ $list_re ]] || die "--contexts: expected numbers separated by commas, got '$val'"
                CONTEXTS=$val ;;
    --layouts) LAYOUTS=$val ;;
    --layout) LAYOUT=$val ;;
    --cuda-option) [[ $val == *=* ]] || die "--cuda-option: expected KEY=VALUE, got '$val'"
                   CUDA_OPTS+=(--cuda-option "$val") ;;
    --hf) HF=1 ;;
    --attention) ATTENTION=1 ;;
    --evaluate) EVALUATE=1 ;;
    --suite) SUITE=1 ;;
    --suite-steps) SUITE_STEPS=$val SUITE=1
                   for s in ${val//,/ }; do
                     [[ $s =~ ^(quick|full|extended|compare|microbench)$ ]] ||
                       die "--suite-steps: unknown step '$s' (quick, full, extended, compare, microbench)"
                   done ;;
    --program) PROGRAM=$(abspath "$val"); [[ -f $PROGRAM ]] || die "--program: no file '$val'" ;;
    --config) CONFIG=$(abspath "$val"); [[ -f $CONFIG ]] || die "--config: no file '$val'" ;;
    --layers) LAYERS=$val ;;
    --rounds) [[ $val =~ ^[1-9][0-9]*$ ]] || die "--rounds: expected a positive number, got '$val'"; ROUNDS=$val ;;
    --minutes) [[ $val =~ $int_re && $val -gt 0 ]] || die "--minutes: not a positive number: '$val'"; MINUTES=$val ;;
    --iterations) [[ $val =~ $int_re ]] || die "--iterations: not a number: '$val'"; ITERATIONS=$val ;;
    --mpi) [[ $val =~ $int_re && $val -gt 0 ]] || die "--mpi: not a positive number: '$val'"; MPI_RANKS=$val ;;
    --resume-from) RESUME_FROM=$(abspath "$val"); [[ -f $RESUME_FROM ]] || die "--resume-from: no file '$val'" ;;
    --keep-run) KEEP_RUN=1 ;;
    --kernel) KERNEL=$val ;;
    --define) [[ $val =~ ^[A-Za-z_][A-Za-z0-9_]*(=.*)?$ ]] || die "--define: expected NAME[=VALUE], got '$val'"
              DEFINES+=("-D$val") ;;
  esac
  shift "$shift_by"
done
[[ $SUB != ab || ${#POSITIONAL[@]} -gt 0 ]] || die "ab needs at least one OTHER.tgz (another build's .gpu-bin.tgz)"
[[ $SUB != variants || ${#POSITIONAL[@]} -gt 0 ]] || die "variants needs at least one 'NAME:--cuda-option KEY=VALUE ...'"
if [[ $SUB == variants ]]; then
  for spec in "${POSITIONAL[@]}"; do
    [[ $spec =~ ^[^:[:space:]]+: ]] || die "variants: expected 'NAME:--cuda-option KEY=VALUE ...', got '$spec'"
  done
fi

mkdir -p "$OUT" || die "cannot make $OUT"
TMPD=$(mktemp -d -t gqa-gpu.XXXXXX) || die "mktemp failed"
trap 'rm -rf "$TMPD"' EXIT
FAILS=()

# ---------------------------------------------------------------------------------------------- helpers
section() { echo "== $2" | tee -a "$1"; }  # LOG TITLE
failed() { FAILS+=("$1 (exit $2)"); echo "gpu.sh: FAILED: $1 (exit $2)" >&2; }
# step LOG SECONDS COMMAND...: runs COMMAND under a timeout, its output appended to LOG and shown; its status.
step() {
  local log=$1 limit=$2; shift 2
  timeout -k 15 "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then echo "gpu.sh: timed out after ${limit} s: $*" | tee -a "$log"; fi
  return "$rc"
}
prompt_ids() {  # N: a fixed prompt of N token ids
  local i s=""
  for ((i = 0; i < $1; i++)); do s+="${s:+,}$(((i * 7919 + 13) % 151000))"; done
  echo "$s"
}
have() { command -v "$1" >/dev/null 2>&1; }

# The GPU first, then the invocation, into env.log.
env_header() {
  local gpu
  if have nvidia-smi &&
     gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>&1)
  then
    echo "GPU: $gpu" | tee -a "$OUT/env.log"
  else
    echo "GPU: none (nvidia-smi: ${gpu:-not found})" | tee -a "$OUT/env.log"
    [[ $SUB == build ]] || die "'$SUB' needs a GPU, and nvidia-smi found none (build one elsewhere: scripts/gpu.sh build)"
  fi
  {
    echo "== scripts/gpu.sh $SUB${ARGS[*]:+ ${ARGS[*]}} ($(date -u +%FT%TZ) on $(uname -n); OUT=$OUT)"
    if have nvcc; then echo "nvcc: $(nvcc --version | tail -1)"; else echo "nvcc: not found"; fi
    if [[ -n $dropped_env ]]; then echo "ignored environment: $dropped_env"; fi
  } | tee -a "$OUT/env.log"
}

# ---------------------------------------------------------------------------------------------- build
cmd_build() {
  local log=$OUT/env.log
  have cmake || die "build needs cmake (scripts/setup.sh installs it)"
  have ninja || die "build needs ninja (scripts/setup.sh installs ninja-build)"
  have nvcc || die "build needs the CUDA toolkit's nvcc (on PATH or in /usr/local/cuda/bin)"
  section "$log" "build: cmake build-gpu (x86-64-v3, sm_90a, PTX $PTX, Release)"
  local conf
  conf=$(cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DGQA_BUILD_TESTS=ON \
           -DGQA_CPU_ARCH=x86-64-v3 -DGQA_CUDA_PTX="$PTX" 2>&1) || { echo "$conf" | tail -30; die "cmake configure failed"; }
  grep -q "gqa-evolve: CUDA ON" <<< "$conf" ||
    die "cmake found no CUDA compiler in build-gpu/ (nvcc: $(command -v nvcc)); remove build-gpu/ and retry"
  grep "gqa-evolve: \(CUDA\|MPI\)" <<< "$conf" | tee -a "$log"
  cmake --build build-gpu -j "$JOBS" --target "${BIN_NAMES[@]}" || die "build failed"
  rm -rf "$BIN" && mkdir -p "$BIN" || die "cannot make $BIN"
  cp build-gpu/gqa-evolve build-gpu/tests/engine_cuda/{test_engine_cuda,cuda_bench,attention_bench} \
     build-gpu/tests/evaluate/{test_adversarial_cuda,test_decode_entry} "$BIN/" || die "copying the binaries failed"
  strip "${BIN_NAMES[@]/#/$BIN/}" || die "strip failed"
  # gqa-evolve links OpenMPI when the build found it; GPU machines may have none: a copy of it travels along.
  if ldd "$BIN/gqa-evolve" | grep -q libmpi; then
    scripts/mpi_bundle.sh "$BIN/openmpi" ||
      echo "gpu.sh: warning: no OpenMPI bundle; .gpu-bin runs only where OpenMPI is installed" | tee -a "$log"
  fi
  local dirty=""
  [[ -n $(git --no-optional-locks status --porcelain -uno 2>/dev/null) ]] && dirty=" with uncommitted changes"
  echo "$(git rev-parse --short HEAD 2>/dev/null || echo "no git")$dirty, PTX $PTX, built $(date -u +%FT%TZ)" \
       "on $(uname -n)" > "$BIN/BUILD_INFO"
  tar czf .gpu-bin.tgz "$BIN" || die "packing .gpu-bin.tgz failed"
  { echo "build: $(cat "$BIN/BUILD_INFO")"; du -sh "$BIN" .gpu-bin.tgz; } | tee -a "$log"
  if [[ $(stat -c %s .gpu-bin.tgz) -gt $((64 << 20)) ]]; then
    echo "gpu.sh: warning: .gpu-bin.tgz is over the device tool's 64 MiB carry limit" | tee -a "$log"
  fi
  if ldd "${BIN_NAMES[@]/#/$BIN/}" 2>&1 | grep "not found"; then die "the built binaries miss shared libraries"; fi
}

# .gpu-bin/ ready: unpacked, or built when possible; OpenMPI's bundle sourced; ldd checked.
ensure_bin() {
  if [[ $REBUILD == 1 ]]; then cmd_build; fi
  if [[ -f .gpu-bin.tgz ]]; then
    local packed
    packed=$(tar xzf .gpu-bin.tgz -O "$BIN/BUILD_INFO" 2>/dev/null)
    if [[ ! -x $BIN/gqa-evolve || $packed != "$(cat "$BIN/BUILD_INFO" 2>/dev/null)" ]]; then
      echo "unpacking .gpu-bin.tgz" | tee -a "$OUT/env.log"
      rm -rf "$BIN" && tar xzf .gpu-bin.tgz || die "unpacking .gpu-bin.tgz failed"
    fi
  fi
  if [[ ! -x $BIN/gqa-evolve ]]; then
    if have nvcc && have cmake; then
      # Built for this GPU: PTX too unless it is a Hopper (the machine code is sm_90a only).
      [[ $(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1) == 9.0 ]] || PTX=ON
      echo "no $BIN/ or .gpu-bin.tgz: building them first (PTX $PTX)" | tee -a "$OUT/env.log"
      cmd_build
    else
      die "no $BIN/ or .gpu-bin.tgz, and no nvcc + cmake here to build them: run scripts/gpu.sh build (after" \
          "scripts/setup.sh) here or on a build machine, and bring .gpu-bin.tgz"
    fi
  fi
  echo "build: $(cat "$BIN/BUILD_INFO" 2>/dev/null || echo "unknown (no $BIN/BUILD_INFO)")" | tee -a "$OUT/env.log"
  # shellcheck disable=SC1091
  if [[ -f $BIN/openmpi/env.sh ]]; then source "$BIN/openmpi/env.sh"; fi
  local b missing=0
  { echo "ldd $BIN/gqa-evolve:"; ldd "$BIN/gqa-evolve"; } >> "$OUT/env.log" 2>&1
  for b in "${BIN_NAMES[@]}"; do
    if [[ ! -x $BIN/$b ]]; then echo "note: $BIN/$b is missing (an older build?)" | tee -a "$OUT/env.log"; continue; fi
    if ldd "$BIN/$b" 2>&1 | grep "not found" | sed "s|^|$b: |" | tee -a "$OUT/env.log" | grep -q .; then missing=1; fi
  done
  [[ $missing == 0 ]] || die "missing shared libraries (see above and $OUT/env.log)"
}
need_bin() { [[ -x $BIN/$1 ]] || die "$BIN/$1 is missing: rebuild (scripts/gpu.sh build) or add --rebuild"; }

ensure_model() {
  [[ -f $MODEL/model.safetensors ]] && return 0
  section "$OUT/env.log" "make-model $PRESET (random weights, seed 0) -> $MODEL"
  step "$OUT/env.log" 300 "$BIN/gqa-evolve" make-model --preset "$PRESET" --seed 0 --out "$MODEL"
  [[ -f $MODEL/model.safetensors ]] || die "could not make the model in $MODEL"
}

# ---------------------------------------------------------------------------------------------- test
merge_junit() {  # OUT_XML PART.xml...: one <testsuites> of every part's suites, counts recomputed
  python3 - "$@" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.Element("testsuites", name="gpu")
for p in sys.argv[2:]:
    try:
        part = ET.parse(p).getroot()
    except Exception:
        continue
    suites = [part] if part.tag == "testsuite" else list(part.iter("testsuite"))
    for s in suites:
        root.append(s)
cases = list(root.iter("testcase"))
failures = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
skipped = sum(1 for c in cases if c.get("result") == "skipped" or c.find("skipped") is not None)
disabled = sum(1 for c in cases if c.get("status") == "notrun")
root.set("tests", str(len(cases)))
root.set("failures", str(failures))
root.set("skipped", str(skipped))
root.set("disabled", str(disabled))
root.set("errors", "0")
root.set("time", f"{sum(float(c.get('time', 0) or 0) for c in cases):.3f}")
ET.ElementTree(root).write(sys.argv[1], encoding="utf-8", xml_declaration=True)
PY
}

cmd_test() {
  local log=$OUT/tests.log rc
  rm -f "$log" "$OUT/tests.xml"
  need_bin test_engine_cuda
  # Bounded: a kernel that hangs (a grid barrier whose blocks are not all resident) must not eat the lease.
  section "$log" "engine GPU tests (test_engine_cuda --gtest_filter=$FILTER)"
  step "$log" 300 env GQA_FIXTURES_DIR="$REPO/tests/fixtures" "$BIN/test_engine_cuda" --gtest_filter="$FILTER" \
    --gtest_output="xml:$TMPD/engine.xml"
  rc=$?; [[ $rc -eq 0 ]] || failed "engine GPU tests" "$rc"
  need_bin test_adversarial_cuda
  section "$log" "evaluator GPU tests (test_adversarial_cuda: adversarial suite, stock ABI, engine hook)"
  step "$log" 400 env GQA_SOURCE_DIR="$REPO" GQA_EVOLVE_BINARY="$REPO/$BIN/gqa-evolve" \
    GQA_TEST_CACHE_DIR=/tmp/gqa-test-cache "$BIN/test_adversarial_cuda" --gtest_filter="$FILTER" \
    --gtest_output="xml:$TMPD/evaluator.xml"
  rc=$?; [[ $rc -eq 0 ]] || failed "evaluator GPU tests" "$rc"
  need_bin test_decode_entry
  section "$log" "device-entry GPU tests (test_decode_entry: the stock program and the contract's cheats)"
  step "$log" 300 env "$BIN/test_decode_entry" --gtest_filter="$FILTER" --gtest_output="xml:$TMPD/decode_entry.xml"
  rc=$?; [[ $rc -eq 0 ]] || failed "device-entry GPU tests" "$rc"
  merge_junit "$OUT/tests.xml" "$TMPD/engine.xml" "$TMPD/evaluator.xml" "$TMPD/decode_entry.xml" ||
    failed "merging the JUnit reports" $?
  if [[ $SANITIZER == 1 ]]; then
    need_bin attention_bench
    local san tool
    san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for tool in memcheck racecheck; do
      section "$log" "compute-sanitizer $tool (attention_bench: small decode, prefill and chunked prefill)"
      step "$log" 300 "$san" --tool "$tool" --error-exitcode 9 "$BIN/attention_bench" --no-time --check --ragged \
        --batches 3 --contexts 300 --prefill 200 --chunked 70@300
      rc=$?; [[ $rc -eq 0 ]] || failed "compute-sanitizer $tool" "$rc"
    done
  fi
}

# ---------------------------------------------------------------------------------------------- bench
attention_summary() {  # attention.json -> the tables of ours beside PyTorch, and the targets
  python3 - "$OUT/attention.json" <<'PY'
import json, sys
try:
    both = json.load(open(sys.argv[1]))
except Exception:
    both = {}
ours, torch = both.get("ours"), both.get("torch") or {"decode": [], "prefill": []}
if not ours:
    print("no attention_bench JSON: the benchmark did not finish (see bench.log)")
    sys.exit(0)
bw = ours["read_bandwidth_bytes_per_second"]
print(f"GPU {ours['device']}, {ours['sms']} SMs, read bandwidth {bw / 1e9:.0f} GB/s; "
      f"correctness at every benchmarked shape: {'ok' if ours['all_checks_ok'] else 'FAILED'}")
def key(r):
    return (r["kind"], r.get("mode"), r.get("batch"), r.get("context"), r.get("L"), r.get("cached"))
tmap = {key(r): r for r in torch["decode"] + torch["prefill"]}
def fmt(x, f="{:.2f}"):
    return f.format(x) if isinstance(x, (int, float)) else "-"
def rows_of(kind, mode):  # (our row, PyTorch's row of the same shape, our check) of one table
    for r in ours[kind]:
        if r.get("mode") == mode:
            yield r, tmap.get(key(r), {}), r.get("check", {})
def check_col(chk):
    return f"{'ok' if chk.get('ok') else 'FAIL' if chk else '-'} {fmt(chk.get('max_row_rel_l2'), '{:.1e}')}"
targets = []
for mode in ours["modes"]:
    print(f"\n== decode ({mode}; us per call; % = K+V bytes / time / read bandwidth)")
    print(f"{'batch':>5} {'ctx':>6} | {'ours':>8} {'kern':>8} | {'flash':>8} {'cuDNN':>8} | {'ours/best':>9} | "
          f"{'ours %BW':>8} {'cuDNN %BW':>9} | check")
    for r, t, chk in rows_of("decode", mode):
        best = min([t[k] for k in ("flash_us", "cudnn_us") if k in t], default=None)
        ratio = r["us"] / best if best else None
        cudnn_bw = 100 * r["kv_bytes"] / (t["cudnn_us"] * 1e-6) / bw if "cudnn_us" in t else None
        print(f"{r['batch']:>5} {r['context']:>6} | {r['us']:>8.2f} {r['us_kernels_only']:>8.2f} | "
              f"{fmt(t.get('flash_us')):>8} {fmt(t.get('cudnn_us')):>8} | {fmt(ratio, '{:.2f}x'):>9} | "
              f"{r['percent_of_read_bandwidth']:>7.1f}% {fmt(cudnn_bw, '{:.1f}%'):>9} | {check_col(chk)}")
        if ratio is not None:
            targets.append((f"{mode} decode b{r['batch']} ctx {r['context']}: ours <= best PyTorch", ratio <= 1.0,
                            f"{ratio:.2f}x"))
        if r["batch"] == 1 and r["context"] in (8192, 32768):
            need = 90 if r["context"] == 32768 else 80
            targets.append((f"{mode} decode b1 ctx {r['context']}: >= {need}% of read bandwidth",
                            r["percent_of_read_bandwidth"] >= need, f"{r['percent_of_read_bandwidth']:.1f}%"))
    print(f"\n== prefill ({mode}; causal, TFLOP/s counted as 4·q·k·d·heads over the causal keys)")
    print(f"{'L':>6} {'cached':>6} | {'ours us':>9} {'ours TF':>8} | {'flash TF':>8} {'cuDNN TF':>8} | "
          f"{'ours/best':>9} | check")
    for r, t, chk in rows_of("prefill", mode):
        best = max([t[k] for k in ("flash_tflops", "cudnn_tflops") if k in t], default=None)
        print(f"{r['L']:>6} {r['cached']:>6} | {r['us']:>9.1f} {r['tflops']:>8.1f} | "
              f"{fmt(t.get('flash_tflops'), '{:.1f}'):>8} {fmt(t.get('cudnn_tflops'), '{:.1f}'):>8} | "
              f"{fmt(r['tflops'] / best if best else None, '{:.2f}x'):>9} | {check_col(chk)}")
        if r["kind"] == "prefill" and r["L"] == 8192 and "cudnn_tflops" in t:
            targets.append((f"{mode} prefill L 8192: >= 0.8x cuDNN TFLOP/s", r["tflops"] >= 0.8 * t["cudnn_tflops"],
                            f"{r['tflops'] / t['cudnn_tflops']:.2f}x"))
errs = [f"{r['kind']} {r.get('mode')} {k}: {v}" for r in torch["decode"] + torch["prefill"] for k, v in r.items()
        if k.endswith("_error")]
if errs:
    print("\nPyTorch backends that refused a shape:\n  " + "\n  ".join(sorted(set(errs))))
exp = sorted({f"{k[:-4]}" for r in torch["decode"] + torch["prefill"] for k, v in r.items()
              if k.endswith("_gqa") and v == "expanded"})
if exp:
    print(f"\nPyTorch backends that needed K/V expanded to 16 heads (read 2x the bytes): {', '.join(exp)}")
print("\n== targets (issue 7)")
for name, ok, val in targets:
    print(f"{'MET ' if ok else 'MISS'} {name} ({val})")
PY
}

bench_attention() {
  local log=$OUT/bench.log rc
  need_bin attention_bench
  section "$log" "stock attention: correctness (ragged decode batches, odd lengths; float64 reference, poisoned outputs)"
  step "$log" 300 "$BIN/attention_bench" --no-time --check --ragged --batches 1,3,8,32,64 \
    --contexts 1,17,100,1000,4099,32768 --prefill 1,37,64,200,1000 --chunked 100@400,63@192,512@4096
  rc=$?; [[ $rc -eq 0 ]] || failed "attention_bench correctness" "$rc"
  section "$log" "stock attention: benchmark (cold and hot L2; checked at every shape)"
  step "$log" 300 "$BIN/attention_bench" --check --modes cold,hot --json "$TMPD/attention-ours.json"
  rc=$?; [[ $rc -eq 0 ]] || failed "attention_bench benchmark" "$rc"
  section "$log" "PyTorch SDPA flash / cuDNN at the same shapes (scripts/bench_attention_torch.py)"
  PYTHONUNBUFFERED=1 timeout -k 15 300 python3 scripts/bench_attention_torch.py --modes cold,hot \
    --json "$TMPD/attention-torch.json" 2>&1 | grep --line-buffered -v -i "warn" | tee -a "$log"
  rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] || failed "PyTorch SDPA benchmark" "$rc"
  python3 - "$TMPD/attention-ours.json" "$TMPD/attention-torch.json" "$OUT/attention.json" <<'PY'
import json, sys
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return None
json.dump({"ours": load(sys.argv[1]), "torch": load(sys.argv[2])}, open(sys.argv[3], "w"), indent=1)
PY
  attention_summary | tee -a "$log"
}

bench_evaluate() {  # timed evaluations of the examples: tunable uncached (compile + end-to-end model), cached
  local log=$OUT/bench.log name t0 t1 rc
  local cache=$TMPD/eval-cache
  section "$log" "timed gqa-evolve evaluate (empty cache $cache, then cached)"
  for spec in "tunable_uncached:tunable_program.cu" "tunable_cached:tunable_program.cu" \
              "initial:initial_program.cu:--no-e2e"; do
    IFS=: read -r name prog extra <<< "$spec"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    timeout -k 15 300 env GQA_CACHE_DIR="$cache" "$BIN/gqa-evolve" evaluate "examples/qwen3_gqa/$prog" $extra \
      --json > "$TMPD/eval-$name.json" 2>> "$log"
    rc=$?; [[ $rc -eq 0 ]] || failed "evaluate $name" "$rc"
    t1=$(date +%s.%N)
    python3 - "$TMPD/eval-$name.json" "$name" "$t0" "$t1" "$OUT/evaluate.json" <<'PY' | tee -a "$log"
import json, os, sys
path, name, t0, t1, out = sys.argv[1:]
wall = float(t1) - float(t0)
try:
    r = json.load(open(path))
except Exception as e:
    print(f"== {name}: wall {wall:.1f} s, no JSON ({e})")
    r = None
if r:
    m = r["metrics"]
    print(f"== {name}: wall {wall:.1f} s, evaluation_seconds {m['evaluation_seconds']:.1f}, "
          f"compile cached {m.get('compile_cached')}, correct {m['correct']}, score {m['combined_score']:.4f}, "
          f"failed {m['failed_stage']}: {m.get('failure', '')[:200]}")
    for k in ("e2e_token_agreement", "e2e_decode_tps_ratio", "e2e_program_calls", "e2e_skipped"):
        if k in m:
            print(f"   {k}: {m[k]}")
    print(r["artifacts"].get("benchmark_table", ""))
all_ = json.load(open(out)) if os.path.exists(out) else {}
all_[name] = {"wall_seconds": wall, "result": r}
json.dump(all_, open(out, "w"), indent=1)
PY
  done
}

bench_suite() {
  local log=$OUT/bench.log program=${PROGRAM:-$REPO/examples/qwen3_gqa/tunable_program.cu} step_name rc
  if [[ ! -f $MODEL/tokenizer.json ]]; then  # the suite's scenarios are text
    if [[ -f assets/qwen3-tokenizer/tokenizer.json ]]; then
      cp assets/qwen3-tokenizer/tokenizer.json assets/qwen3-tokenizer/tokenizer_config.json "$MODEL/"
    else
      failed "bench suite: no tokenizer in $MODEL or assets/qwen3-tokenizer (scripts/setup.sh fetches it)" 2
      return
    fi
  fi
  for step_name in ${SUITE_STEPS//,/ }; do
    section "$log" "bench suite: $step_name"
    case $step_name in
      quick|full|extended)
        step "$log" 1800 "$BIN/gqa-evolve" bench --mode "$step_name" --device cuda --model "$MODEL" \
          --output-dir "$TMPD/suite/$step_name" ;;
      compare)
        step "$log" 1800 "$BIN/gqa-evolve" bench --mode compare --device cuda --model "$MODEL" --program "$program" \
          --output-dir "$TMPD/suite/compare" ;;
      microbench)
        step "$log" 600 "$BIN/gqa-evolve" microbench "$program" --target cuda ;;
    esac
    rc=$?; [[ $rc -eq 0 ]] || failed "bench suite $step_name" "$rc"
    # Packed after every step: a call that runs out of time still brings back the steps before.
    if [[ -d $TMPD/suite ]]; then tar czf "$OUT/suite.tgz" -C "$TMPD" suite; fi
  done
}

cmd_bench() {
  local log=$OUT/bench.log rc ids
  rm -f "$log" "$OUT"/{bench.json,generate.json,hf.json,attention.json,evaluate.json,suite.tgz}
  ensure_model
  need_bin cuda_bench
  local ctx=${CONTEXTS:-128,2048,8192} extra=()
  [[ $QUICK == 1 ]] && extra+=(--quick)
  [[ -n $LAYOUTS ]] && extra+=(--layouts "$LAYOUTS")
  section "$log" "cuda_bench (contexts $ctx, 256 tokens${extra[*]:+, ${extra[*]}}${CUDA_OPTS[*]:+, ${CUDA_OPTS[*]}})"
  step "$log" 300 "$BIN/cuda_bench" --model "$MODEL" --contexts "$ctx" --tokens 256 --json "$OUT/bench.json" \
    "${extra[@]}" "${CUDA_OPTS[@]}"
  rc=$?; [[ $rc -eq 0 ]] || failed "cuda_bench" "$rc"
  section "$log" "gqa-evolve generate --device cuda (128-token prompt, 256 new tokens)"
  ids=$(prompt_ids 128)
  timeout -k 15 120 "$BIN/gqa-evolve" generate --model "$MODEL" --device cuda --prompt-ids "$ids" --max-tokens 256 \
    --ignore-eos --json "${CUDA_OPTS[@]}" > "$OUT/generate.json" 2>> "$log"
  rc=$?; [[ $rc -eq 0 ]] || failed "generate --device cuda" "$rc"
  if [[ $HF == 1 ]]; then
    section "$log" "HF transformers baseline (scripts/bench_hf.py: bf16, eager and sdpa, 128-token prompt, 64 new)"
    PYTHONUNBUFFERED=1 timeout -k 15 300 python3 scripts/bench_hf.py --model "$MODEL" --prompt-tokens 128 \
      --new-tokens 64 --json "$OUT/hf.json" 2>&1 | grep --line-buffered -v -i warn | tee -a "$log"
    rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] || failed "HF transformers baseline" "$rc"
  fi
  [[ $ATTENTION == 1 ]] && bench_attention
  [[ $EVALUATE == 1 ]] && bench_evaluate
  [[ $SUITE == 1 ]] && bench_suite
  return 0
}

# ---------------------------------------------------------------------------------------------- summary
summary() {  # MODE (test, bench or all): the table of what this invocation wrote to $OUT
  python3 - "$1" "$OUT" "$REPO/$BIN/BUILD_INFO" "${FAILS[@]}" <<'PY'
import json, os, sys, xml.etree.ElementTree as ET
mode, out, build_info, fails = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def load(name):
    if mode == "test":
        return None
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception:
        return None
rows = []
try:
    rows.append(("build", open(build_info).read().strip()))
except OSError:
    pass
if mode != "bench" and os.path.exists(os.path.join(out, "tests.xml")):
    try:
        t = ET.parse(os.path.join(out, "tests.xml")).getroot()
        n, f, s, d = (int(t.get(k, 0)) for k in ("tests", "failures", "skipped", "disabled"))
        rows.append(("GPU tests", f"{n - f - s - d} passed, {f} failed, {s} skipped, {d} disabled"))
    except Exception as e:
        rows.append(("GPU tests", f"unreadable tests.xml ({e})"))
b = load("bench.json")
if b:
    rows.append(("GPU", b["device"]))
    rows.append(("read bandwidth", f"{b['read_bandwidth_bytes_per_second'] / 1e9:.0f} GB/s"))
    for r in b.get("runs", []) + b.get("sweep", []):
        ok = "ok" if r["peak_device_memory_bytes"] <= r["memory_budget_bytes"] else "OVER"
        ran = "" if r.get("layout") == r.get("requested_layout") else f" (ran {r.get('layout')})"
        rows.append((f"decode {r['variant']} ctx {r['context']}{ran}",
                     f"{r['decode_tokens_per_second']:.0f} tok/s = {r['percent_of_roofline']:.1f}% of roofline "
                     f"{r['roofline_tokens_per_second']:.0f} | prefill {r['prefill_tokens_per_second']:.0f} tok/s | "
                     f"peak {r['peak_device_memory_bytes'] / 1e9:.3f} GB <= {r['memory_budget_bytes'] / 1e9:.3f} {ok}"))
    lk = b.get("layer_kernel")  # optional: older cuda_bench builds, and not with --quick
    if lk:
        rows.append(("fused layer kernel", f"{lk['us_per_layer']:.2f} us/layer for {lk['bytes_per_layer'] / 1e6:.1f} MB "
                     f"({lk['bytes_per_layer'] / lk['us_per_layer'] / 1e3:.0f} GB/s)"))
    for g in b.get("gemv", []):  # optional likewise
        rows.append((f"gemv {g['matrix']} {g['n']}x{g['k']}",
                     f"own+pdl {g['own_pdl_us']:.2f} us, own {g['own_us']:.2f} us, cuBLAS {g['cublas_us']:.2f} us"))
g = load("generate.json")
if g:
    rows.append(("generate --device cuda", f"{g['decode_tokens_per_second']:.0f} tok/s decode ({g['decode_path']}), "
                 f"prefill {g['prefill_tokens_per_second']:.0f} tok/s, peak GPU {g['peak_device_memory_bytes'] / 1e9:.3f} GB"))
h = load("hf.json")
if h:
    for r in h["runs"]:
        rows.append((f"HF transformers {r['attn_implementation']}", f"{r['decode_tokens_per_second']:.1f} tok/s "
                     f"(bf16, {r['prompt_tokens']}-token prompt, {r['new_tokens']} new)"))
a = load("attention.json")
if a:
    o = a.get("ours")
    rows.append(("stock attention kernels", "no benchmark JSON" if not o else
                 f"{len(o['decode'])} decode + {len(o['prefill'])} prefill shapes, checks "
                 f"{'ok' if o['all_checks_ok'] else 'FAILED'} (tables in bench.log)"))
e = load("evaluate.json")
for name, v in (e or {}).items():
    m = (v.get("result") or {}).get("metrics")
    rows.append((f"evaluate {name}", f"wall {v['wall_seconds']:.1f} s" + (
        f", correct {m['correct']}, score {m['combined_score']:.4f}" if m else ", no result")))
if mode != "test" and os.path.exists(os.path.join(out, "suite.tgz")):
    rows.append(("bench suite", "suite.tgz (JSON, CSV, Markdown, chart data per step)"))
rows.append(("failed steps", "; ".join(fails) if fails else "none"))
w = max(len(k) for k, _ in rows)
print("\n== summary")
for k, v in rows:
    print(f"{k:<{w}} | {v}")
PY
}

# ---------------------------------------------------------------------------------------------- ab, variants
# alternate LOG: cuda_bench --quick of ALT_LABELS[i] (ALT_BINS[i], extra args ALT_OPTS[i]) at $ALT_CTX, layout
# $ALT_LAYOUT, all of them in turn, twice; then a table of decode tok/s per label and context.
alternate() {
  local log=$1 rep i rc extra
  for rep in 1 2; do
    for i in "${!ALT_LABELS[@]}"; do
      echo "-- ${ALT_LABELS[$i]} ${ALT_OPTS[$i]} rep $rep" | tee -a "$log"
      read -ra extra <<< "${ALT_OPTS[$i]}"
      timeout -k 15 180 "${ALT_BINS[$i]}/cuda_bench" --model "$MODEL" --contexts "$ALT_CTX" --layouts "$ALT_LAYOUT" \
        --quick --json "$TMPD/alt-$i-$rep.json" "${extra[@]}" 2>&1 | grep -E "^($ALT_LAYOUT|error)" | tee -a "$log"
      rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] || failed "cuda_bench of ${ALT_LABELS[$i]} rep $rep" "$rc"
    done
  done
  python3 - "$TMPD" "$ALT_LAYOUT" "${ALT_LABELS[@]}" <<'PY' | tee -a "$log"
import json, sys
d, layout, labels = sys.argv[1], sys.argv[2], sys.argv[3:]
tps = {}  # (label index, context) -> [tok/s per rep]
for i in range(len(labels)):
    for rep in (1, 2):
        try:
            runs = json.load(open(f"{d}/alt-{i}-{rep}.json"))["runs"]
        except Exception:
            continue
        for r in runs:
            if r.get("variant") == layout:
                tps.setdefault((i, r["context"]), []).append(r["decode_tokens_per_second"])
ctxs = sorted({c for _, c in tps})
print(f"\n== decode tok/s, {layout} layout (each rep; mean; vs {labels[0]})")
w = max(len(l) for l in labels)
print(f"{'':<{w}} | " + " | ".join(f"{'ctx ' + str(c):<32}" for c in ctxs))
for i, label in enumerate(labels):
    cells = []
    for c in ctxs:
        v, base = tps.get((i, c), []), tps.get((0, c), [])
        if not v:
            cells.append(f"{'-':<32}")
            continue
        mean = sum(v) / len(v)
        rel = f"{100 * (mean / (sum(base) / len(base)) - 1):+.1f}%" if base and i else ""
        cells.append(f"{' '.join(f'{x:.0f}' for x in v) + f' = {mean:.0f} ' + rel:<32}")
    print(f"{label:<{w}} | " + " | ".join(cells))
PY
}

cmd_ab() {
  local log=$OUT/ab.log i t d
  rm -f "$log"
  ensure_model
  need_bin cuda_bench
  ALT_LABELS=(this) ALT_BINS=("$BIN") ALT_OPTS=("${CUDA_OPTS[*]}") ALT_CTX=${CONTEXTS:-128,2048,8192} ALT_LAYOUT=$LAYOUT
  for i in "${!POSITIONAL[@]}"; do
    t=$(abspath "${POSITIONAL[$i]}") d=$TMPD/ab/$i
    [[ -f $t ]] || die "ab: no file '${POSITIONAL[$i]}'"
    mkdir -p "$d" && tar xzf "$t" -C "$d" || die "ab: cannot unpack '$t'"
    [[ -x $d/$BIN/cuda_bench ]] || die "ab: '$t' holds no $BIN/cuda_bench"
    if ldd "$d/$BIN/cuda_bench" | grep "not found"; then die "ab: $t's cuda_bench misses shared libraries"; fi
    echo "ab: $(basename "$t"): $(cat "$d/$BIN/BUILD_INFO" 2>/dev/null || echo "no BUILD_INFO")" | tee -a "$OUT/env.log"
    ALT_LABELS+=("$(basename "$t" .tgz)") ALT_BINS+=("$d/$BIN") ALT_OPTS+=("${CUDA_OPTS[*]}")
  done
  section "$log" "A/B: $ALT_LAYOUT layout, contexts $ALT_CTX, each build in turn, twice"
  alternate "$log"
}

cmd_variants() {
  local log=$OUT/variants.log spec
  rm -f "$log"
  ensure_model
  need_bin cuda_bench
  ALT_LABELS=(default) ALT_BINS=("$BIN") ALT_OPTS=("") ALT_CTX=${CONTEXTS:-128,2048,8192} ALT_LAYOUT=$LAYOUT
  for spec in "${POSITIONAL[@]}"; do
    ALT_LABELS+=("${spec%%:*}") ALT_BINS+=("$BIN") ALT_OPTS+=("${spec#*:}")
  done
  section "$log" "variants: $ALT_LAYOUT layout, contexts $ALT_CTX, each variant in turn, twice"
  alternate "$log"
}

# ---------------------------------------------------------------------------------------------- trace
cmd_trace() {
  local log=$OUT/trace.log n rc
  rm -f "$log" "$OUT"/trace-ctx*.csv.gz
  ensure_model
  for n in $(tr , ' ' <<< "${CONTEXTS:-128,8192}"); do
    section "$log" "persistent decode trace, ctx $n (64 tokens) ${CUDA_OPTS[*]:-(default options)}"
    timeout -k 15 120 "$BIN/gqa-evolve" generate --model "$MODEL" --device cuda --prompt-ids "$(prompt_ids "$n")" \
      --max-tokens 64 --ignore-eos --trace "$TMPD/trace-$n.csv" "${CUDA_OPTS[@]}" > /dev/null 2>> "$log"
    rc=$?; [[ $rc -eq 0 ]] || { failed "generate --trace at ctx $n" "$rc"; continue; }
    python3 scripts/persistent_trace.py "$TMPD/trace-$n.csv" --layers "$LAYERS" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] || failed "persistent_trace.py at ctx $n" "$rc"
    gzip -c "$TMPD/trace-$n.csv" > "$OUT/trace-ctx$n.csv.gz"
  done
}

# ---------------------------------------------------------------------------------------------- evolve
cmd_evolve() {
  local run=/tmp/gqa-evolve-run log=$OUT/evolve-stdout.txt ext rc start end deadline p
  rm -f "$log" "$OUT"/{report.md,evolve.log,best_program.*,best_program_info.json}
  rm -rf "$run" && mkdir -p "$run"
  if [[ -n $RESUME_FROM ]]; then  # a run packed by an earlier call (--keep-run): its start program and run folder
    tar xzf "$RESUME_FROM" -C "$run" || die "evolve --resume-from: cannot unpack $RESUME_FROM"
    ext=$(find "$run" -maxdepth 1 -name 'start_program.*' | head -1); ext=${ext##*.}
    [[ -n $ext && -d $run/run ]] || die "evolve --resume-from: $RESUME_FROM holds no start_program.* and run/"
  elif [[ -n $PROGRAM ]]; then
    ext=${PROGRAM##*.}
    cp "$PROGRAM" "$run/start_program.$ext"
  else  # poor starting knobs, so that there is something to find
    ext=cu
    sed -e 's/^constexpr int THREADS = [0-9]*;/constexpr int THREADS = 64;/' \
        -e 's/^constexpr int DECODE_SPLITS = [0-9]*;/constexpr int DECODE_SPLITS = 1;/' \
        -e 's/^constexpr int MIN_KEYS_PER_SPLIT = [0-9]*;/constexpr int MIN_KEYS_PER_SPLIT = 512;/' \
        examples/qwen3_gqa/tunable_program.cu > "$run/start_program.cu"
  fi
  local evargs=("$run/start_program.$ext" --config "$CONFIG" --output "$run/run") cmd
  [[ -n $RESUME_FROM ]] && evargs+=(--resume)
  if [[ $MPI_RANKS -gt 0 ]]; then
    have mpirun || die "evolve --mpi: no mpirun (no OpenMPI here and none in $BIN/openmpi)"
    cmd=(mpirun -n $((MPI_RANKS + 1)) --allow-run-as-root --oversubscribe --bind-to none "$BIN/gqa-evolve" evolve
         "${evargs[@]}" --workers mpi --iterations "$ITERATIONS")
  else
    cmd=("$BIN/gqa-evolve" evolve "${evargs[@]}" --workers 1 --iterations "$ITERATIONS")
  fi
  echo "+ ${cmd[*]} (killed after $MINUTES min; run folder $run)" | tee -a "$log"
  start=$(date +%s.%N)
  # Killed hard at the limit, as a lost lease would (bash's "Killed" notice silenced).
  rc=$( { timeout -s KILL "$((MINUTES * 60))" "${cmd[@]}" >> "$log" 2>&1; echo $?; } 2>/dev/null )
  end=$(date +%s.%N)
  echo "exit $rc after $(python3 -c "print(f'{$end - $start:.1f}')") s" | tee -a "$log"
  if [[ $rc -ne 0 ]]; then  # killed at the limit (or failed): the report of what was committed
    [[ $rc -eq 137 ]] || failed "evolve" "$rc"
    timeout -k 15 120 "$BIN/gqa-evolve" evolve "${evargs[@]:0:5}" --resume --iterations 0 >> "$log" 2>&1 ||
      failed "evolve --resume --iterations 0 (report)" $?
  fi
  tail -4 "$log"
  cp "$run/run/report.md" "$run/run/evolve.log" "$run/run/best/best_program.$ext" \
     "$run/run/best/best_program_info.json" "$OUT/" 2>/dev/null
  if [[ $KEEP_RUN == 1 ]]; then  # for the next call's --resume-from; the re-evaluation waits for the last call
    tar czf "$OUT/evolve-run.tgz" -C "$run" "start_program.$ext" run || failed "pack evolve-run.tgz" $?
    echo "run folder packed: $OUT/evolve-run.tgz ($(du -h "$OUT/evolve-run.tgz" | cut -f1))" | tee -a "$log"
    return
  fi
  # Scores during a run are single noisy measurements: the start and the best program once more, one after the
  # other, within 100 s. A device entry's score is its end-to-end stage; a host entry's its microbenchmark.
  deadline=$(($(date +%s) + 100))
  for p in "$run/start_program.$ext" "$run/run/best/best_program.$ext"; do
    (($(date +%s) + 30 < deadline)) || { echo "== re-evaluation skipped (100 s budget)" | tee -a "$log"; break; }
    echo "== re-evaluated: $p" | tee -a "$log"
    local e2e=--no-e2e
    grep -q gqa_decode_attend_v2 "$p" && e2e=""
    timeout -k 15 120 "$BIN/gqa-evolve" evaluate "$p" --target cuda $e2e --bench-seconds 0.3 2>&1 |
      grep -E "combined_score|correct|e2e_decode_ratio" | tee -a "$log"
  done
}

# ---------------------------------------------------------------------------------------------- ncu, sass, probes
cmd_ncu() {
  local log=$OUT/ncu.log ncu rc
  rm -f "$log"
  ensure_model
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  [[ -n $ncu ]] || die "ncu: Nsight Compute not found"
  section "$log" "ncu: one persistent decode step at ctx 128 ${CUDA_OPTS[*]:-(default options)}"
  timeout -k 15 300 "$ncu" --kernel-name regex:persistent_decode --launch-skip 40 --launch-count 1 \
    --section SchedulerStats --section InstructionStats \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
    "$BIN/gqa-evolve" generate --model "$MODEL" --device cuda --prompt-ids "$(prompt_ids 128)" --max-tokens 64 \
    --ignore-eos "${CUDA_OPTS[@]}" 2>&1 | grep -v "^==PROF==" >> "$log"
  rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] || failed "ncu" "$rc"
  tail -60 "$log"
}

cmd_sass() {
  local sdir=$TMPD/sass f found=0
  have cuobjdump && have nvdisasm || die "sass: needs cuobjdump and nvdisasm (CUDA toolkit)"
  mkdir -p "$sdir" && rm -f "$OUT/sass.txt.gz"
  (cd "$sdir" && cuobjdump -xelf all "$REPO/$BIN/gqa-evolve" > /dev/null) || die "cuobjdump failed"
  for f in "$sdir"/*.cubin; do
    [[ -f $f ]] && grep -qF "$KERNEL" "$f" || continue
    found=1
    nvdisasm -g -c "$f" | python3 -c '
import sys
kernel, keep = sys.argv[1], False
for line in sys.stdin:
    if line.lstrip().startswith(".text.") or line.startswith("\t.section"):
        keep = kernel in line
    if keep:
        sys.stdout.write(line)' "$KERNEL" >> "$sdir/sass.txt"
  done
  if [[ $found == 1 ]]; then gzip -c "$sdir/sass.txt" > "$OUT/sass.txt.gz"; fi
  [[ $found == 1 ]] || { failed "sass: no kernel of gqa-evolve holds '$KERNEL'" 1; return; }
  ls -la "$OUT/sass.txt.gz" | tee -a "$OUT/env.log"
}

cmd_probes() {
  local log=$OUT/probes.log names=() p rc
  rm -f "$log"
  have nvcc || die "probes: needs nvcc"
  if [[ ${#POSITIONAL[@]} -gt 0 ]]; then
    names=("${POSITIONAL[@]}")
  else
    for p in dev/cuda/*.cu; do [[ -f $p ]] && names+=("$(basename "$p" .cu)"); done
    [[ ${#names[@]} -gt 0 ]] || die "probes: no dev/cuda/*.cu"
  fi
  for p in "${names[@]}"; do
    p=${p%.cu} p=${p##*/}
    [[ -f dev/cuda/$p.cu ]] || { failed "probe $p: no dev/cuda/$p.cu" 2; continue; }
    section "$log" "probe $p${DEFINES[*]:+ ${DEFINES[*]}}"
    step "$log" 300 nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I src -I include "${DEFINES[@]}" \
      -o "$TMPD/$p" "dev/cuda/$p.cu"
    rc=$?; [[ $rc -eq 0 ]] || { failed "probe $p: nvcc" "$rc"; continue; }
    step "$log" 120 "$TMPD/$p"
    rc=$?; [[ $rc -eq 0 ]] || failed "probe $p" "$rc"
  done
}

# ---------------------------------------------------------------------------------------------- sizes
# size_model PRESET DIR LOG: the random model of PRESET in DIR (seed 0, no tokenizer files) unless there; 1 on failure.
size_model() {
  local rc
  [[ -f $2/model.safetensors ]] && return 0
  timeout -k 15 300 "$BIN/gqa-evolve" make-model --preset "$1" --seed 0 --out "$2" --tokenizer-dir "" 2>&1 | tee -a "$3"
  rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] && return 0
  failed "make-model $1" "$rc"; rm -rf "$2"; return 1
}

cmd_sizes() {
  local log=$OUT/sizes.log preset dir rc
  local presets=("${POSITIONAL[@]}")
  [[ ${#presets[@]} -gt 0 ]] || presets=(qwen3-0.6b qwen3-1.7b qwen3-4b qwen3-8b)
  rm -f "$log"
  need_bin cuda_bench
  for preset in "${presets[@]}"; do
    dir=/tmp/gqa-size-$preset
    section "$log" "$preset"
    size_model "$preset" "$dir" "$log" || continue
    timeout -k 15 300 "$BIN/cuda_bench" --model "$dir" --contexts "${CONTEXTS:-128,8192}" --layouts persistent --quick \
      --json "$TMPD/size-$preset.json" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] || failed "cuda_bench $preset" "$rc"
    rm -rf "$dir"
  done
  python3 - "$TMPD" "${presets[@]}" <<'PY' | tee -a "$log"
import json, sys
d, presets = sys.argv[1], sys.argv[2:]
print("\n== decode tok/s per size (default step; the layout that ran; % of the measured-bandwidth roofline)")
for p in presets:
    try:
        j = json.load(open(f"{d}/size-{p}.json"))
    except Exception:
        print(f"{p:<12} | no result")
        continue
    cells = [f"ctx {r['context']}: {r['decode_tokens_per_second']:.0f} tok/s ({r['layout']}, "
             f"{r['percent_of_roofline']:.1f}%)" for r in j["runs"]]
    print(f"{p:<12} | " + " | ".join(cells))
PY
}

# ---------------------------------------------------------------------------------------------- program
# A program's device entry in the persistent step against the built-in step (cuda_bench --decode-program).
cmd_program() {
  local log=$OUT/program.log rc
  rm -f "$log"
  need_bin cuda_bench
  ensure_model
  local prog=${PROGRAM:-$REPO/examples/qwen3_gqa/persistent_program.cu}
  section "$log" "device entry of $prog vs the built-in persistent step, $ROUNDS rounds${CUDA_OPTS[*]:+, ${CUDA_OPTS[*]}}"
  timeout -k 15 500 "$BIN/cuda_bench" --model "$MODEL" --decode-program "$prog" --rounds "$ROUNDS" \
    --contexts "${CONTEXTS:-128,8192,32768}" --json "$OUT/program.json" "${CUDA_OPTS[@]}" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] || failed "cuda_bench --decode-program" "$rc"
}

# ---------------------------------------------------------------------------------------------- llamacpp
# Our default decode step against llama.cpp's llama-bench on the same random weights (F16 GGUF), per size.
cmd_llamacpp() {
  local log=$OUT/llamacpp.log preset dir gguf rc lb=$TMPD/llama-cuda
  local presets=("${POSITIONAL[@]}")
  [[ ${#presets[@]} -gt 0 ]] || presets=(qwen3-0.6b qwen3-1.7b qwen3-4b qwen3-8b)
  rm -f "$log"
  need_bin cuda_bench
  [[ -f $REPO/.llama-cuda.tgz ]] || die "llamacpp: .llama-cuda.tgz is missing: scripts/llama_cuda_build.sh makes it"
  # The tokenizer's folder (11 MB), or its pack (2 MB) where a device call's 64 MiB do not hold the folder beside
  # both bundles; scripts/llama_cuda_build.sh writes the pack.
  local tok=$REPO/assets/qwen3-tokenizer
  if [[ ! -f $tok/tokenizer.json && -f $REPO/.qwen3-tokenizer.tgz ]]; then
    tar xzf "$REPO/.qwen3-tokenizer.tgz" -C "$TMPD" || die "llamacpp: cannot unpack .qwen3-tokenizer.tgz"
    tok=$TMPD/qwen3-tokenizer
  fi
  [[ -f $tok/tokenizer.json ]] || die "llamacpp: neither assets/qwen3-tokenizer nor .qwen3-tokenizer.tgz is here" \
    "(scripts/setup.sh fetches the folder, scripts/llama_cuda_build.sh packs it; carry one to a GPU machine)"
  tar xzf "$REPO/.llama-cuda.tgz" -C "$TMPD" || die "llamacpp: cannot unpack .llama-cuda.tgz"
  echo "llamacpp: $(cat "$lb/BUILD_INFO")" | tee -a "$OUT/env.log"
  local ctx=${CONTEXTS:-128,8192} root=/tmp avail
  # A model and its GGUF live together until the conversion ends: 14B's two copies (59 GB) do not fit the GPU
  # machine's 64 GB disk, so the model goes to /dev/shm (memory) when that has room for 14B's.
  avail=$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 | tr -d ' ')
  [[ $avail =~ ^[0-9]+$ && $avail -ge 32 ]] && root=/dev/shm
  echo "llamacpp: models in $root (/dev/shm: ${avail:-?} GiB free), GGUFs in /tmp" | tee -a "$OUT/env.log"
  for preset in "${presets[@]}"; do
    dir=$root/gqa-size-$preset gguf=/tmp/gqa-size-$preset.gguf
    section "$log" "$preset"
    size_model "$preset" "$dir" "$log" || continue
    timeout -k 15 300 "$BIN/cuda_bench" --model "$dir" --contexts "$ctx" --layouts "${LAYOUTS:-persistent}" --quick \
      --json "$TMPD/ours-$preset.json" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}; [[ $rc -eq 0 ]] || failed "cuda_bench $preset" "$rc"
    timeout -k 15 300 python3 "$REPO/scripts/convert_to_gguf.py" "$dir" "$gguf" --type f16 \
      --tokenizer-dir "$tok" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    rm -rf "$dir"
    [[ $rc -eq 0 ]] || { failed "convert_to_gguf $preset" "$rc"; rm -f "$gguf"; continue; }
    LD_LIBRARY_PATH=$lb timeout -k 15 300 "$lb/llama-bench" -m "$gguf" -ngl 99 -fa 1 -p 0 -n 256 -d "$ctx" -r 3 \
      -o json > "$TMPD/llama-$preset.json" 2>> "$log"
    rc=$?; [[ $rc -eq 0 ]] || failed "llama-bench $preset" "$rc"
    rm -f "$gguf"
  done
  python3 - "$TMPD" "$OUT/llamacpp.json" "${presets[@]}" <<'PY' | tee -a "$log"
import json, sys
d, out, presets = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for p in presets:
    try:
        ours = json.load(open(f"{d}/ours-{p}.json"))["runs"]
        llama = {r["n_depth"]: r for r in json.load(open(f"{d}/llama-{p}.json"))}
    except Exception as e:
        print(f"{p:<12} | no result ({e})")
        continue
    for o in sorted(ours, key=lambda r: r["context"]):
        ctx, l = o["context"], llama.get(o["context"])
        rows.append({"model": p, "context": ctx, "ours_tokens_per_second": o["decode_tokens_per_second"],
                     "ours_layout": o["layout"], "ours_percent_of_roofline": o["percent_of_roofline"],
                     "llama_tokens_per_second": l["avg_ts"] if l else None,
                     "llama_stddev": l["stddev_ts"] if l else None, "gpu": l["gpu_info"] if l else None})
json.dump(rows, open(out, "w"), indent=1)
print("\n== decode tok/s, batch 1, 256 tokens after `context` tokens: ours (default step) vs llama.cpp (F16, -fa 1)")
print("| model | ctx | ours tok/s (layout, % of roofline) | llama.cpp tok/s (mean ± sd of 3) | ours / llama.cpp |")
print("|---|---|---|---|---|")
for r in rows:
    l = r["llama_tokens_per_second"]
    print(f"| {r['model']} | {r['context']} | {r['ours_tokens_per_second']:,.0f} ({r['ours_layout']}, "
          f"{r['ours_percent_of_roofline']:.1f}%) | " + (f"{l:,.0f} ± {r['llama_stddev']:.0f} | "
          f"{r['ours_tokens_per_second'] / l:.2f}x |" if l else "no result | |"))
PY
}

# ---------------------------------------------------------------------------------------------- main
env_header
case $SUB in
  build) cmd_build ;;
  probes) cmd_probes ;;
  *)
    ensure_bin
    case $SUB in
      test) cmd_test; summary test ;;
      bench) cmd_bench; summary bench ;;
      all) cmd_test; cmd_bench; summary all ;;
      ab) cmd_ab ;;
      variants) cmd_variants ;;
      trace) cmd_trace ;;
      evolve) cmd_evolve ;;
      ncu) cmd_ncu ;;
      sass) cmd_sass ;;
      sizes) cmd_sizes ;;
      program) cmd_program ;;
      llamacpp) cmd_llamacpp ;;
    esac ;;
esac
if [[ ${#FAILS[@]} -gt 0 ]]; then
  echo "gpu.sh $SUB: ${#FAILS[@]} step(s) failed: ${FAILS[*]}" >&2
  exit 1
fi
exit 0
