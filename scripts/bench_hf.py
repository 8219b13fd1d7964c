#!/usr/bin/env python3
"""HF transformers batch-1 decode speed on a model directory: bf16 weights on CUDA, eager and sdpa attention,
greedy, a random prompt. The baseline the CUDA engine is compared with (scripts/gpu.sh bench --hf runs it).

  python3 scripts/bench_hf.py --model /tmp/m [--prompt-tokens 128] [--new-tokens 64] [--json hf.json]

Decode tok/s = (new tokens - 1) / (generate() time - one prefill forward's time), after a warm-up.
"""
import argparse
import json
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def bench(model_dir, attn, prompt_tokens, new_tokens):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation=attn)
    model = model.to("cuda").eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 151000, (1, prompt_tokens), generator=gen).to("cuda")
    kw = dict(do_sample=False, pad_token_id=0)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, **kw)  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(ids)
        torch.cuda.synchronize()
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
    n = out.shape[1] - prompt_tokens
    del model
    torch.cuda.empty_cache()
    return {"attn_implementation": attn, "prompt_tokens": prompt_tokens, "new_tokens": int(n),
            "prefill_seconds": prefill, "generate_seconds": total,
            "decode_tokens_per_second": (n - 1) / (total - prefill)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "transformers": transformers.__version__, "runs": []}
    for attn in ("eager", "sdpa"):
        r = bench(args.model, attn, args.prompt_tokens, args.new_tokens)
        results["runs"].append(r)
        print(f"HF transformers {attn:5s}: {r['decode_tokens_per_second']:.1f} tok/s decode "
              f"({r['new_tokens']} new tokens after a {r['prompt_tokens']}-token prompt, bf16, batch 1)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
