#!/usr/bin/env bash
# The CUDA engine's check on a GPU machine: engine tests, the engine-hook tests (stock kernels through the
# attention ABI), benchmark, HF transformers baseline, summary table.
#   scripts/gpu_check.sh build   # here (dev machine, which has the libraries): build-gpu/ for x86-64-v3 + sm_90a,
#                                # then the four binaries the GPU machine needs, stripped, into .gpu-bin/, and
#                                # .gpu-bin/ packed as .gpu-bin.tgz (carry that: the binaries alone pass the
#                                # device tool's 64 MiB; run unpacks it)
#   scripts/gpu_check.sh run     # there (Ubuntu 24.04, CUDA 13, PyTorch; .gpu-bin carried): everything else
#                                # (GQA_SKIP_HF=1: without the HF transformers baseline; GQA_BENCH_QUICK=1:
#                                # decode layouts x contexts only; GQA_TEST_FILTER: a gtest filter; GQA_TRACE=1:
#                                # the persistent step's trace at ctx 128 and 8192, summarised in trace.log;
#                                # GQA_PROBES=1: the latency probes, into trace.log; GQA_SKIP_HOOK=1: no
#                                # engine-hook tests; GQA_NCU: Nsight Compute on one step; GQA_SASS=1: the
#                                # kernel's SASS with source lines; GQA_AB_BINS: A/B against other builds; see below)
# Logs and JSON go to $OUT (default out/gpu-check); the summary table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.gpu-bin

if [[ "${1:-run}" == build ]]; then
  set -e
  cmake -S . -B build-gpu -G Ninja -DGQA_CPU_ARCH=x86-64-v3 -DGQA_CUDA_PTX=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-gpu -j2 --target gqa-evolve test_engine_cuda cuda_bench test_adversarial_cuda
  mkdir -p "$BIN"
  cp build-gpu/gqa-evolve build-gpu/tests/engine_cuda/test_engine_cuda build-gpu/tests/engine_cuda/cuda_bench \
    build-gpu/tests/evaluate/test_adversarial_cuda "$BIN/"
  strip "$BIN"/gqa-evolve "$BIN"/test_engine_cuda "$BIN"/cuda_bench "$BIN"/test_adversarial_cuda
  # gqa-evolve links OpenMPI, which the GPU machine lacks: a copy of it travels along (scripts/mpi_bundle.sh).
  [[ -f "$BIN/evolve/openmpi/env.sh" ]] || scripts/mpi_bundle.sh "$BIN/evolve/openmpi"
  ls -la "$BIN"
  tar czf .gpu-bin.tgz "$BIN"
  ls -la .gpu-bin.tgz
  exit 0
fi
# Carried packed (see build): unpack unless the binaries are already here.
if [[ -f .gpu-bin.tgz && ! -x "$BIN/gqa-evolve" ]]; then tar xzf .gpu-bin.tgz; fi

OUT=${OUT:-out/gpu-check}
MODEL=${GQA_BENCH_MODEL:-/tmp/m}
mkdir -p "$OUT"
# At most 8 files come back from the device machine: env.log gathers the small ones.
ENV="$OUT/env.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$ENV"
# gqa-evolve links OpenMPI when the build found it, and the GPU machine has none: carry the copy that
# scripts/gpu_evolve.sh build makes (scripts/mpi_bundle.sh).
if [[ -f .gpu-bin/evolve/openmpi/env.sh ]]; then source .gpu-bin/evolve/openmpi/env.sh; fi
ldd "$BIN/gqa-evolve" | tee -a "$ENV"
if grep -q "not found" "$ENV"; then echo "missing shared libraries"; exit 1; fi

echo "== tests"
# Bounded: a kernel that hangs (a grid barrier whose blocks are not all resident) must not eat the lease.
GQA_FIXTURES_DIR="$PWD/tests/fixtures" timeout "${GQA_TEST_TIMEOUT:-300}" "$BIN/test_engine_cuda" --gtest_filter="${GQA_TEST_FILTER:-*}" --gtest_output="xml:$OUT/tests.xml" 2>&1 | tee "$OUT/tests.log"
tests_rc=${PIPESTATUS[0]}
# The engine through the attention-program hook (the stock kernels via the ABI) must give the engine's own
# logits, whatever decode layout is the default: the evaluator's GPU suite holds that test.
hook_rc=0
if [[ -z "${GQA_SKIP_HOOK:-}" ]]; then  # GQA_SKIP_HOOK=1: not these (for runs that only measure)
  echo "== engine hook (test_adversarial_cuda: stock ABI, hook)"
  GQA_SOURCE_DIR=$PWD GQA_TEST_CACHE_DIR=/tmp/gqa-test-cache timeout 300 "$BIN/test_adversarial_cuda" \
    --gtest_filter='*StockAbi*:*Hook*' 2>&1 | tee "$OUT/hook.log"
  hook_rc=${PIPESTATUS[0]}
fi
if [[ $hook_rc -ne 0 && $tests_rc -eq 0 ]]; then tests_rc=$hook_rc; fi

echo "== model"
if [[ ! -f "$MODEL/model.safetensors" ]]; then
  "$BIN/gqa-evolve" make-model --preset qwen3-0.6b --seed 0 --out "$MODEL" --tokenizer-dir "" 2>&1 | tee -a "$ENV"
fi

echo "== benchmark"
timeout "${GQA_BENCH_TIMEOUT:-300}" "$BIN/cuda_bench" --model "$MODEL" --contexts 128,2048,8192 --tokens 256 --json "$OUT/bench.json" ${GQA_BENCH_QUICK:+--quick} 2>&1 | tee "$OUT/bench.log"

echo "== gqa-evolve generate --device cuda"
ids=$(python3 -c "print(','.join(str((i * 7919 + 13) % 151000) for i in range(128)))")
"$BIN/gqa-evolve" generate --model "$MODEL" --device cuda --prompt-ids "$ids" --max-tokens 256 --ignore-eos --json \
  > "$OUT/generate.json" 2> >(tee -a "$ENV" >&2)

# The persistent step's trace at ctx 128 and 8192 under extra environment settings ($1: "VAR=val ..."),
# summarised into trace.log.
trace_run() {
  for n in 128 8192; do
    local tids
    tids=$(python3 -c "print(','.join(str((i * 7919 + 13) % 151000) for i in range($n)))")
    env $1 GQA_CUDA_TRACE=/tmp/trace-$n.csv timeout 120 "$BIN/gqa-evolve" generate --model "$MODEL" --device cuda \
      --prompt-ids "$tids" --max-tokens 64 --ignore-eos > /dev/null 2>> "$ENV"
    { echo "-- ctx $n ${1:-(defaults)}"; python3 scripts/persistent_trace.py /tmp/trace-$n.csv --layers 14; } 2>&1 |
      tee -a "$OUT/trace.log"
  done
}
if [[ -n "${GQA_TRACE:-}" ]]; then  # GQA_TRACE=1: the persistent step's trace, summarised in trace.log
  echo "== persistent decode trace"
  trace_run ""
fi
# GQA_VARIANTS="name:VAR=val,VAR=val name2:...": the persistent layout (GQA_VARIANT_LAYOUT: another one) again
# under each setting (quick bench at ctx 128 and 8192, alternated with the defaults twice), into variants.log;
# GQA_TRACE_VARIANTS="name ..." also traces those.
if [[ -n "${GQA_VARIANTS:-}" ]]; then
  echo "== persistent variants"
  for rep in 1 2; do
    for v in "default:" $GQA_VARIANTS; do
      name=${v%%:*} envs=${v#*:}
      echo "-- $name (${envs//,/ }) rep $rep" | tee -a "$OUT/variants.log"
      layout=${GQA_VARIANT_LAYOUT:-persistent}
      env ${envs//,/ } timeout "${GQA_VARIANT_TIMEOUT:-120}" "$BIN/cuda_bench" --model "$MODEL" --contexts 128,8192 --layouts "$layout" --quick 2>&1 |
        grep "^$layout" | tee -a "$OUT/variants.log"
    done
  done
  for v in $GQA_VARIANTS; do  # GQA_TRACE_VARIANTS="name ...": the variants traced too
    if [[ " ${GQA_TRACE_VARIANTS:-} " == *" ${v%%:*} "* ]]; then trace_run "$(echo "${v#*:}" | tr , ' ')"; fi
  done
fi

# GQA_AB_BINS="a.tgz b.tgz ...": other builds' packed binaries (scripts/gpu_check.sh build's .gpu-bin.tgz, renamed
# and carried), the persistent layout of each alternated with this build's twice (quick bench at ctx 128 and
# 8192), into ab.log: how code changes that no runtime switch selects are compared within one run.
if [[ -n "${GQA_AB_BINS:-}" ]]; then
  echo "== A/B against other builds"
  for t in $GQA_AB_BINS; do mkdir -p "/tmp/ab/$t" && tar xzf "$t" -C "/tmp/ab/$t"; done
  for rep in 1 2; do
    for b in "$BIN" $(for t in $GQA_AB_BINS; do echo "/tmp/ab/$t/.gpu-bin"; done); do
      echo "-- $b rep $rep" | tee -a "$OUT/ab.log"
      timeout "${GQA_VARIANT_TIMEOUT:-120}" "$b/cuda_bench" --model "$MODEL" --contexts 128,8192 --layouts persistent \
        --quick 2>&1 | grep "^persistent" | tee -a "$OUT/ab.log"
    done
  done
fi

# GQA_NCU="VAR=val,... ...": Nsight Compute on one persistent step at ctx 128 under each setting ("-" alone: the
# defaults): the scheduler's issue rate, instruction counts and the warps' stall reasons, into ncu.log.
if [[ -n "${GQA_NCU:-}" ]]; then
  echo "== ncu"
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  nids=$(python3 -c "print(','.join(str((i * 7919 + 13) % 151000) for i in range(128)))")
  for v in $GQA_NCU; do
    envs=${v#-}
    echo "-- ncu ${envs:-(defaults)}" | tee -a "$OUT/ncu.log"
    env ${envs//,/ } timeout 300 "$NCU" --kernel-name regex:persistent_decode --launch-skip 40 --launch-count 1 \
      --section SchedulerStats --section InstructionStats \
      --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
      "$BIN/gqa-evolve" generate --model "$MODEL" --device cuda --prompt-ids "$nids" --max-tokens 64 --ignore-eos \
      2>&1 | grep -v "^==PROF==" | tee -a "$OUT/ncu.log" | tail -60
  done
fi

# GQA_SASS=1: the SASS of the persistent kernel for Qwen3-0.6B's shape (head_dim 128, 2 query heads per KV
# head, CUDA-core attention), with source lines (the build has -lineinfo), into sass-persistent.txt.gz.
if [[ -n "${GQA_SASS:-}" ]]; then
  echo "== sass"
  sdir=$(mktemp -d)
  (cd "$sdir" && cuobjdump -xelf all "$OLDPWD/$BIN/gqa-evolve" > /dev/null)
  for f in "$sdir"/*.cubin; do
    if grep -q "persistent_decode_kernelILi128ELi2ELb0E" "$f"; then
      nvdisasm -g -c "$f" | python3 -c '
import sys
keep = False
for line in sys.stdin:
    if line.lstrip().startswith(".text.") or line.startswith("\t.section"):
        keep = "persistent_decode_kernelILi128ELi2ELb0E" in line
    if keep:
        sys.stdout.write(line)' | gzip > "$OUT/sass-persistent.txt.gz"
    fi
  done
  rm -rf "$sdir"
  ls -la "$OUT/sass-persistent.txt.gz" 2>&1 | tee -a "$ENV"
fi

# GQA_PROBES=1: the latency probes (built here with nvcc), into trace.log; or GQA_PROBES="name ...": those.
# tile_latency runs once per compute-warp count of the decode step's code (GQA_PROBE_WARPS, default "8 11 15").
if [[ -n "${GQA_PROBES:-}" ]]; then
  probes=$GQA_PROBES
  [[ $probes == 1 ]] && probes="sync_latency cluster_latency tile_latency mma_rate"
  for probe in $probes; do
    echo "== probe $probe" | tee -a "$OUT/trace.log"
    if [[ $probe == tile_latency ]]; then
      for w in ${GQA_PROBE_WARPS:-8 11 15}; do
        nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I src -I include -DGQA_DECODE_CONSUMER_WARPS="$w" \
          -o "/tmp/$probe-$w" "tests/engine_cuda/probes/$probe.cu" &&
          timeout 120 "/tmp/$probe-$w" 2>&1 | tee -a "$OUT/trace.log"
      done
      continue
    fi
    nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I src -I include -o /tmp/$probe \
      tests/engine_cuda/probes/$probe.cu &&
      timeout 120 /tmp/$probe 2>&1 | tee -a "$OUT/trace.log"
  done
fi

if [[ -z "${GQA_SKIP_HF:-}" ]]; then  # GQA_SKIP_HF=1 saves ~1 min of device time when only the engine changed
  echo "== HF transformers"
  PYTHONUNBUFFERED=1 python3 scripts/bench_hf.py --model "$MODEL" --prompt-tokens 128 --new-tokens 64 \
    --json "$OUT/hf.json" 2>&1 | grep -v -i warn | tee -a "$ENV"
fi

python3 - "$OUT" "$tests_rc" <<'PY'
import json, os, sys, xml.etree.ElementTree as ET
out, tests_rc = sys.argv[1], int(sys.argv[2])
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception as e:
        return None
rows = []
try:
    t = ET.parse(os.path.join(out, "tests.xml")).getroot()
    rows.append(("GPU tests", f"{int(t.get('tests')) - int(t.get('failures')) - int(t.get('disabled', 0))} run, "
                 f"{t.get('failures')} failed, {t.get('skipped', '?')} skipped (exit {tests_rc})"))
except Exception:
    rows.append(("GPU tests", f"no report (exit {tests_rc})"))
b = load("bench.json")
if b:
    rows.append(("GPU", b["device"]))
    rows.append(("read bandwidth", f"{b['read_bandwidth_bytes_per_second'] / 1e9:.0f} GB/s"))
    for r in b["runs"] + b.get("sweep", []):
        ok = "ok" if r["peak_device_memory_bytes"] <= r["memory_budget_bytes"] else "OVER"
        ran = "" if r.get("layout") == r.get("requested_layout") else f" (ran {r.get('layout')})"
        rows.append((f"decode {r['variant']} ctx {r['context']}{ran}",
                     f"{r['decode_tokens_per_second']:.0f} tok/s = {r['percent_of_roofline']:.1f}% of roofline "
                     f"{r['roofline_tokens_per_second']:.0f} | prefill {r['prefill_tokens_per_second']:.0f} tok/s | "
                     f"peak {r['peak_device_memory_bytes'] / 1e9:.3f} GB <= {r['memory_budget_bytes'] / 1e9:.3f} {ok}"))
    lk = b.get("layer_kernel")
    if lk:
        rows.append(("fused layer kernel", f"{lk['us_per_layer']:.2f} us/layer for {lk['bytes_per_layer'] / 1e6:.1f} MB "
                     f"({lk['bytes_per_layer'] / lk['us_per_layer'] / 1e3:.0f} GB/s)"))
    for g in b.get("gemv", []):  # absent with GQA_BENCH_QUICK=1
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
w = max(len(k) for k, _ in rows)
print("\n== summary")
for k, v in rows:
    print(f"{k:<{w}} | {v}")
PY
exit "$tests_rc"
