#!/usr/bin/env python3
"""PyTorch SDPA (flash and cuDNN backends) at the shapes of attention_bench, timed the same way.

    python3 scripts/bench_attention_torch.py --json torch.json [--batches 1,8,32] [--contexts 512,2048,8192,32768]
        [--prefill 512,2048,8192,16384] [--chunked 512@4096] [--modes cold,hot] [--rotate-mib 256]

Qwen3-0.6B's head layout (16 query heads, 8 KV heads, head_dim 128), bf16, KV as [batch][kv_head][pos][dim]
(the engine's layout). Each backend is forced with torch.nn.attention.sdpa_kernel; GQA via enable_gqa=True,
or, where a backend refuses it, K/V expanded to 16 heads beforehand (outside the timed graph; the JSON says
"gqa": "expanded", and that backend then reads twice the bytes). Every measurement captures `calls` SDPA calls
into one CUDA graph (call i on copy i % sets of K/V: "cold" = copies covering --rotate-mib, at most 64, so L2
never holds the cache; "hot" = one copy), 3 warm-up replays, then the median of 15 replays timed with CUDA
events. The same rule as tests/engine_cuda/attention_bench.cpp, so the numbers sit side by side.
Chunked prefill (Q queries at the end of a KV-long cache) uses causal_lower_right; a backend that refuses a
shape gets an "error" entry instead of a time.
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HEADS, KV_HEADS, DIM = 16, 8, 128
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def sets_for(mode, kv_bytes, rotate_mib):
    if mode == "hot" or rotate_mib <= 0:
        return 1
    return max(1, min(64, -(-(rotate_mib << 20) // kv_bytes)))


def calls_for(sets):
    return sets * (-(-20 // sets))


def time_graph(fn, calls):
    """Microseconds per call of fn(i), i < calls, captured into one graph (median of 15 replays)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(min(calls, 3)):
            fn(i)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(calls):
            fn(i)
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms = []
    for r in range(18):
        t0.record()
        g.replay()
        t1.record()
        t1.synchronize()
        if r >= 3:
            ms.append(t0.elapsed_time(t1))
    del g
    ms.sort()
    return ms[len(ms) // 2] * 1e3 / calls


def measure(backend, q, k, v, sets, calls, causal, lower_right):
    """(us, gqa path) for one backend, or raises the backend's error."""
    mask = None
    if lower_right:
        from torch.nn.attention.bias import causal_lower_right
        mask = causal_lower_right(q.shape[-2], k.shape[-2])

    def run(kk, vv, gqa):
        def fn(i):
            kw = {"enable_gqa": True} if gqa else {}
            if mask is not None:
                return F.scaled_dot_product_attention(q, kk[i % sets], vv[i % sets], attn_mask=mask, **kw)
            return F.scaled_dot_product_attention(q, kk[i % sets], vv[i % sets], is_causal=causal, **kw)
        return fn

    with sdpa_kernel([BACKENDS[backend]]):
        try:
            run(k, v, True)(0)
            torch.cuda.synchronize()
            return time_graph(run(k, v, True), calls), "enable_gqa"
        except RuntimeError as e:
            first_error = e
        torch.cuda.synchronize()
        # Expanded K/V (16 heads): only when the cold copies still fit comfortably.
        if k.numel() * 2 * 2 * 2 > torch.cuda.mem_get_info()[0] * 0.8:
            raise first_error
        ke = k.repeat_interleave(HEADS // KV_HEADS, dim=2)
        ve = v.repeat_interleave(HEADS // KV_HEADS, dim=2)
        try:
            run(ke, ve, False)(0)
            torch.cuda.synchronize()
            return time_graph(run(ke, ve, False), calls), "expanded"
        except RuntimeError:
            raise first_error
        finally:
            del ke, ve


def shape_rows(kind, shape, batch, q_len, kv_len, modes, rotate_mib, causal, lower_right):
    kv_bytes = batch * kv_len * KV_HEADS * DIM * 2 * 2
    rows = []
    for mode in modes:
        sets = sets_for(mode, kv_bytes, rotate_mib)
        calls = calls_for(sets)
        gen = torch.Generator(device="cuda").manual_seed(1234)
        q = (torch.rand(batch, HEADS, q_len, DIM, device="cuda", generator=gen, dtype=torch.float32) * 10 - 5).bfloat16()
        k = (torch.rand(sets, batch, KV_HEADS, kv_len, DIM, device="cuda", generator=gen, dtype=torch.float32) * 3.4 - 1.7).bfloat16()
        v = (torch.rand(sets, batch, KV_HEADS, kv_len, DIM, device="cuda", generator=gen, dtype=torch.float32) * 3.4 - 1.7).bfloat16()
        row = dict(shape, kind=kind, mode=mode, sets=sets, calls_per_graph=calls, kv_bytes=kv_bytes)
        for name in BACKENDS:
            try:
                us, path = measure(name, q, k, v, sets, calls, causal, lower_right)
                row[f"{name}_us"], row[f"{name}_gqa"] = us, path
            except Exception as e:  # a backend that refuses the shape: recorded, not fatal
                row[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            torch.cuda.synchronize()
        if kind != "decode":
            flops = sum(4.0 * DIM * HEADS * (kv_len - q_len + t + 1) for t in range(q_len))
            for name in BACKENDS:
                if f"{name}_us" in row:
                    row[f"{name}_tflops"] = flops / (row[f"{name}_us"] * 1e-6) / 1e12
        print(f"  {kind:8} {mode:4} {json.dumps(shape)}: " +
              ", ".join(f"{n} {row[n + '_us']:.2f} us" if n + "_us" in row else f"{n} error" for n in BACKENDS),
              flush=True)
        rows.append(row)
        del q, k, v
        torch.cuda.empty_cache()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--batches", type=int_list, default=[1, 8, 32])
    ap.add_argument("--contexts", type=int_list, default=[512, 2048, 8192, 32768])
    ap.add_argument("--prefill", type=int_list, default=[512, 2048, 8192, 16384])
    ap.add_argument("--chunked", default="512@4096", help="Q@KV items, comma separated ('' for none)")
    ap.add_argument("--modes", default="cold,hot")
    ap.add_argument("--rotate-mib", type=int, default=256)
    a = ap.parse_args()
    modes = [m for m in a.modes.split(",") if m]
    if any(m not in ("cold", "hot") for m in modes):
        sys.exit("--modes: cold and/or hot")
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    decode, prefill = [], []
    for b in a.batches:
        for ctx in a.contexts:
            decode += shape_rows("decode", {"batch": b, "context": ctx}, b, 1, ctx, modes, a.rotate_mib, False, False)
    for L in a.prefill:
        prefill += shape_rows("prefill", {"L": L, "cached": 0}, 1, L, L, modes, a.rotate_mib, True, False)
    for item in [x for x in a.chunked.split(",") if x]:
        ql, kvl = (int(x) for x in item.split("@"))
        prefill += shape_rows("chunked", {"L": ql, "cached": kvl - ql}, 1, ql, kvl, modes, a.rotate_mib, True, True)
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(), "modes": modes, "rotate_mib": a.rotate_mib,
           "decode": decode, "prefill": prefill}
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
