#!/usr/bin/env python3
"""Reference fixtures from HF transformers for the engine tests (tests/fixtures/hf/*.json).

For each small random model written by `gqa-evolve make-model` (same preset and seed as the tests use),
runs transformers' Qwen3ForCausalLM in float32 (TF32 off, eager attention) on fixed prompts and records:
logits at several positions on a fixed subset of the vocabulary plus the top-20, and a 48-token greedy
continuation computed without a cache. Run on a machine with PyTorch and transformers (the GPU machine):

  scripts/make_hf_fixtures.py --binary build/gqa-evolve --out tests/fixtures/hf
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import AutoConfig, Qwen3ForCausalLM

# (preset, seed): the tests rebuild the same models with make_random_model.
MODELS = [("tiny", 1), ("tiny-gqa4", 2), ("tiny-32x8", 3)]
PROMPTS = {
    # "Hello world" style short prompt and a longer one crossing no special structure; ids < 151643.
    "short": [9707, 1879, 11, 419, 374, 264, 1273, 315, 279, 42648, 1614, 13],
    "long": [(i * 7919 + 13) % 151000 for i in range(300)],
}
GREEDY_TOKENS = 48
SUBSET = list(range(0, 151936, 997))  # ~153 fixed vocabulary entries


def greedy(model, ids, n):
    seq = list(ids)
    out, margins = [], []
    for _ in range(n):
        logits = model(torch.tensor([seq], device=model.device)).logits[0, -1].float()
        top2 = torch.topk(logits, 2)
        tok = int(top2.indices[0])
        margins.append(float(top2.values[0] - top2.values[1]))
        out.append(tok)
        seq.append(tok)
    return out, margins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(args.out, exist_ok=True)
    for preset, seed in MODELS:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([args.binary, "make-model", "--preset", preset, "--seed", str(seed), "--out", d,
                            "--tokenizer-dir", ""], check=True)
            model = Qwen3ForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
            model = model.to(device).eval()
            cfg = AutoConfig.from_pretrained(d)
            fixture = {
                "preset": preset, "seed": seed, "dtype": "float32", "device": device,
                "torch": torch.__version__, "transformers": transformers.__version__,
                "tie_word_embeddings": bool(cfg.tie_word_embeddings),
                "vocab_subset": SUBSET, "prompts": {},
            }
            with torch.no_grad():
                for name, ids in PROMPTS.items():
                    logits = model(torch.tensor([ids], device=device)).logits[0].float().cpu()
                    positions = sorted({0, 1, len(ids) // 2, len(ids) - 2, len(ids) - 1})
                    entry = {"ids": ids, "positions": {}}
                    for p in positions:
                        row = logits[p]
                        top = torch.topk(row, 20)
                        entry["positions"][str(p)] = {
                            "subset": [float(row[i]) for i in SUBSET],
                            "top_ids": [int(i) for i in top.indices],
                            "top_values": [float(v) for v in top.values],
                            "std": float(row.std()),
                        }
                    g, margins = greedy(model, ids, GREEDY_TOKENS)
                    entry["greedy"] = g
                    entry["greedy_margins"] = margins
                    fixture["prompts"][name] = entry
            path = os.path.join(args.out, f"{preset}-seed{seed}.json")
            with open(path, "w") as f:
                json.dump(fixture, f)
            print(f"wrote {path}: logits std {fixture['prompts']['short']['positions']['0']['std']:.3f}, "
                  f"min greedy margin {min(fixture['prompts']['short']['greedy_margins']):.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
