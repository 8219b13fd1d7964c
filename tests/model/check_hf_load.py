#!/usr/bin/env python3
# Manual check (needs torch + transformers, e.g. on the GPU machine) that a directory written by
# make_random_model loads with Qwen3ForCausalLM.from_pretrained without missing or unexpected keys,
# and that its logits are meaningful (spread of a few units, softmax neither flat nor one-hot).
#   python3 tests/model/check_hf_load.py MODEL_DIR [MODEL_DIR...]
import json
import sys
import time

import torch
import transformers
from transformers import AutoConfig, Qwen3ForCausalLM


def check(model_dir: str) -> None:
    cfg_file = json.load(open(f"{model_dir}/config.json"))
    cfg = AutoConfig.from_pretrained(model_dir)
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", None))
    assert theta == cfg_file["rope_theta"], (theta, cfg_file["rope_theta"])
    assert cfg.tie_word_embeddings == cfg_file["tie_word_embeddings"]
    assert cfg.head_dim == cfg_file["head_dim"]

    t0 = time.time()
    model, info = Qwen3ForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, output_loading_info=True)
    load_s = time.time() - t0
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"loading info not clean: {bad}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device).eval()
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head not tied"

    torch.manual_seed(0)
    ids = torch.randint(0, 151000, (1, 64), device=device)
    with torch.no_grad():
        logits = model(ids).logits.float()[0]
    std = logits.std(dim=-1)
    top = logits.softmax(dim=-1).max(dim=-1).values
    out = model.generate(ids[:, :8], max_new_tokens=16, do_sample=False)
    gen = out[0, 8:].tolist()
    print(f"{model_dir}: transformers {transformers.__version__}, load {load_s:.1f} s, "
          f"params {sum(p.numel() for p in model.parameters()):,}")
    print(f"  logits std per position: mean {std.mean():.2f} min {std.min():.2f} max {std.max():.2f}")
    print(f"  top-1 prob: mean {top.mean():.3f} min {top.min():.3f} max {top.max():.3f}")
    print(f"  greedy continuation: {gen} ({len(set(gen))} distinct)")
    assert 1.0 < std.mean() < 10.0 and top.max() < 0.999


if __name__ == "__main__":
    for d in sys.argv[1:]:
        check(d)
    print("OK")
