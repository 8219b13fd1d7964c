#!/usr/bin/env bash
# Stock attention kernels on a GPU machine: correctness, sanitizers, and the benchmark beside PyTorch SDPA.
#   scripts/gpu_attention.sh build   # here (dev machine): build-attn/ for x86-64-v3 + sm_90a, then the two
#                                    # binaries the GPU machine needs, stripped, into .gpu-bin/attention/
#   scripts/gpu_attention.sh run     # there (CUDA 13, PyTorch; .gpu-bin/attention carried): everything else
# Environment for `run`: OUT (default out/gpu-attention), GQA_SKIP_TORCH=1 (no PyTorch run),
# GQA_SKIP_SANITIZER=1, GQA_ATTN_MODES (default cold,hot), GQA_ATTN_ARGS (extra attention_bench arguments,
# e.g. "--batches 1 --contexts 8192").
# At most 8 files come back from the device machine, so $OUT gets exactly these 7:
#   env.log (GPU, ldd), ours.json, torch.json, bench.log (benchmark and correctness output), tests.log (GPU
#   attention tests), sanitizer.log (memcheck + racecheck), summary.txt (the table printed last).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.gpu-bin/attention

if [[ "${1:-run}" == build ]]; then
  set -e
  cmake -S . -B build-attn -G Ninja -DGQA_BUILD_TESTS=ON -DGQA_CPU_ARCH=x86-64-v3 -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-attn -j2 --target attention_bench test_engine_cuda
  mkdir -p "$BIN"
  cp build-attn/tests/engine_cuda/attention_bench build-attn/tests/engine_cuda/test_engine_cuda "$BIN/"
  strip "$BIN"/*
  ls -la "$BIN"
  exit 0
fi
if [[ "${1:-run}" != run ]]; then echo "usage: $0 build|run" >&2; exit 2; fi

OUT=${OUT:-out/gpu-attention}
MODES=${GQA_ATTN_MODES:-cold,hot}
mkdir -p "$OUT"
ENV="$OUT/env.log" LOG="$OUT/bench.log"
: > "$LOG"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv | tee "$ENV"
ldd "$BIN/attention_bench" | tee -a "$ENV"
if grep -q "not found" "$ENV"; then echo "missing shared libraries"; exit 1; fi
status=0

echo "== correctness: ragged decode batches and odd lengths (float64 reference, poisoned outputs)" | tee -a "$LOG"
timeout 600 "$BIN/attention_bench" --no-time --check --ragged --batches 1,3,8,32,64 --contexts 1,17,100,1000,4099,32768 \
  --prefill 1,37,64,200,1000 --chunked 100@400,63@192,512@4096 2>&1 | tee -a "$LOG"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

echo "== GPU attention tests" | tee -a "$LOG"
timeout 300 "$BIN/test_engine_cuda" --gtest_filter='*Attention*' 2>&1 | tee "$OUT/tests.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) " | tee -a "$LOG"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

if [[ -z "${GQA_SKIP_SANITIZER:-}" ]]; then
  echo "== compute-sanitizer (small decode, prefill and chunked prefill)" | tee -a "$LOG"
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  : > "$OUT/sanitizer.log"
  for tool in memcheck racecheck; do
    echo "-- $tool" >> "$OUT/sanitizer.log"
    timeout 300 "$SAN" --tool "$tool" --error-exitcode 9 "$BIN/attention_bench" --no-time --check --ragged \
      --batches 3 --contexts 300 --prefill 200 --chunked 70@300 >> "$OUT/sanitizer.log" 2>&1
    rc=$?
    echo "$tool exit $rc" | tee -a "$OUT/sanitizer.log" "$LOG"
    [[ $rc -eq 0 ]] || status=1
  done
fi

echo "== benchmark: stock kernels (with a correctness check at every shape)" | tee -a "$LOG"
timeout 900 "$BIN/attention_bench" --check --modes "$MODES" --json "$OUT/ours.json" ${GQA_ATTN_ARGS:-} 2>&1 | tee -a "$LOG"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

if [[ -z "${GQA_SKIP_TORCH:-}" ]]; then
  echo "== benchmark: PyTorch SDPA flash / cuDNN" | tee -a "$LOG"
  PYTHONUNBUFFERED=1 timeout 900 python3 scripts/bench_attention_torch.py --modes "$MODES" --json "$OUT/torch.json" \
    2>&1 | grep -v -i "warn" | tee -a "$LOG"
fi

python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception:
        return None
ours, torch = load("ours.json"), load("torch.json") or {"decode": [], "prefill": []}
if not ours:
    print("no ours.json: the benchmark did not finish (see bench.log)")
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
echo "== status $status (0: correctness, tests and sanitizers clean)"
exit $status
