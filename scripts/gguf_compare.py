#!/usr/bin/env python3
"""Compares a llama-server serving a converted GGUF with gqa-evolve's CPU engine on the same model directory.

    gguf_compare.py --server URL --model DIR --gqa BIN [--label NAME] [--steps N] [--ref-cache FILE]
                    [--tol-prob P] [--reference-max-params N] [--prompt IDS]...

Used by scripts/gguf_check.sh. For each prompt (comma-separated token ids) it asks llama-server's /completion
for a greedy continuation of N tokens with the top-5 probabilities of every step, and runs
`gqa-evolve generate --device cpu --temperature 0 --ignore-eos --json` for the same ids. The engine prints
tokens only, so the probabilities are checked against a reference forward pass in pure Python (float64 on
the checkpoint's weights; small models only: about 25 s for preset tiny; skipped above
--reference-max-params), run along the engine's own token sequence, cached in --ref-cache. It also compares llama.cpp's tokenizer (/tokenize) with
`gqa-evolve tokenize` on a few texts.

Mismatches that rounding cannot explain, and so exit 1:
- a text tokenized differently;
- a token of the engine that is not the reference's argmax, unless within --tol-prob of it;
- at a step where llama.cpp and the engine share the context, their greedy tokens differ and the engine's
  token is not within --tol-prob of llama.cpp's top probability (a near tie flips through rounding;
  after the first such flip the contexts differ and the comparison of that prompt ends);
- a top-5 probability of llama.cpp differs from the reference by more than --tol-prob at a shared-context step,
  or llama.cpp's top-5 lacks one of the reference's top-5 that is above its fifth probability by more than
  --tol-prob.
Prints one line per prompt and a summary; the last line starts with OK or FAIL.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import urllib.request
from array import array
from operator import mul

DEFAULT_PROMPTS = ["785,3974,13876,38835,34208,916,279,15678,5562,13",  # "The quick brown fox jumps over the lazy dog."
                   "151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198",  # a ChatML turn
                   "40,1075"]  # "I like"
TEXTS = ["Hello, world! The quick brown fox.", "<|im_start|>user\nhéllo 12345 中文 ok<|im_end|>\n",
         "  leading spaces,\ttabs\n\nand newlines; émojis 🦙🚀 and code: for (int i = 0; i < n; ++i) {}",
         "I've been 'told he's there, 3333333 3.14 ------======="]


# ---------------------------------------------------------------------------------------------- reference

def load_weights(model_dir):
    """name -> (shape, flat list of floats) from model.safetensors or the shards of its index (small models)."""
    single = os.path.join(model_dir, "model.safetensors")
    files = [single] if os.path.isfile(single) else sorted(
        {os.path.join(model_dir, s) for s in json.load(open(os.path.join(model_dir, "model.safetensors.index.json")))
         ["weight_map"].values()})
    out = {}
    for path in files:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            for name, e in header.items():
                if name == "__metadata__":
                    continue
                b, en = e["data_offsets"]
                f.seek(8 + n + b)
                raw = f.read(en - b)
                if e["dtype"] == "BF16":
                    f32 = bytearray(len(raw) * 2)
                    f32[2::4] = raw[0::2]
                    f32[3::4] = raw[1::2]
                    vals = array("f", bytes(f32)).tolist()
                elif e["dtype"] == "F16":
                    vals = list(struct.unpack(f"<{len(raw) // 2}e", raw))
                else:
                    vals = array("f", raw).tolist()
                out[name] = (e["shape"], vals)
    return out


class Reference:
    """Qwen3 forward pass in float64, one token at a time with a KV cache (HF Qwen3ForCausalLM semantics)."""

    def __init__(self, model_dir):
        c = json.load(open(os.path.join(model_dir, "config.json")))
        self.hidden, self.layers = c["hidden_size"], c["num_hidden_layers"]
        self.heads, self.kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.eps = c["rms_norm_eps"]
        theta = (c.get("rope_parameters") or {}).get("rope_theta", c.get("rope_theta"))
        half = self.head_dim // 2
        self.inv_freq = [theta ** (-2.0 * i / self.head_dim) for i in range(half)]
        w = load_weights(model_dir)

        def rows(name):
            shape, vals = w[name]
            cols = shape[1]
            return [vals[r * cols:(r + 1) * cols] for r in range(shape[0])]

        def vec(name):
            return w[name][1]

        self.embed = rows("model.embed_tokens.weight")
        self.lm_head = self.embed if c.get("tie_word_embeddings", False) else rows("lm_head.weight")
        self.norm = vec("model.norm.weight")
        self.L = []
        for i in range(self.layers):
            p = f"model.layers.{i}."
            self.L.append({k: (rows(p + v) if v.endswith("proj.weight") else vec(p + v)) for k, v in {
                "in": "input_layernorm.weight", "post": "post_attention_layernorm.weight",
                "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight", "v": "self_attn.v_proj.weight",
                "o": "self_attn.o_proj.weight", "qn": "self_attn.q_norm.weight", "kn": "self_attn.k_norm.weight",
                "gate": "mlp.gate_proj.weight", "up": "mlp.up_proj.weight", "down": "mlp.down_proj.weight"}.items()})
        self.cache = [([], []) for _ in range(self.layers)]
        self.pos = 0

    def rmsnorm(self, x, w):
        s = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + self.eps)
        return [v * s * g for v, g in zip(x, w)]

    @staticmethod
    def matvec(m, x):
        return [sum(map(mul, row, x)) for row in m]

    def rope(self, x, pos):
        half = self.head_dim // 2
        out = x[:]
        for i, f in enumerate(self.inv_freq):  # NEOX / rotate-half pairing: (i, i + d/2)
            c, s = math.cos(pos * f), math.sin(pos * f)
            a, b = x[i], x[i + half]
            out[i], out[i + half] = a * c - b * s, b * c + a * s
        return out

    def step(self, token, want_logits):
        d, pos = self.head_dim, self.pos
        x = self.embed[token][:]
        for li, L in enumerate(self.L):
            h = self.rmsnorm(x, L["in"])
            q, k, v = self.matvec(L["q"], h), self.matvec(L["k"], h), self.matvec(L["v"], h)
            qs = [self.rope(self.rmsnorm(q[i * d:(i + 1) * d], L["qn"]), pos) for i in range(self.heads)]
            ks = [self.rope(self.rmsnorm(k[i * d:(i + 1) * d], L["kn"]), pos) for i in range(self.kv_heads)]
            vs = [v[i * d:(i + 1) * d] for i in range(self.kv_heads)]
            kc, vc = self.cache[li]
            kc.append(ks)
            vc.append(vs)
            group, scale, att = self.heads // self.kv_heads, 1.0 / math.sqrt(d), []
            for hq in range(self.heads):
                g = hq // group
                scores = [sum(map(mul, qs[hq], kk[g])) * scale for kk in kc]
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                z = sum(e)
                o = [0.0] * d
                for wgt, vv in zip(e, vc):
                    vg, a = vv[g], wgt / z
                    for j in range(d):
                        o[j] += a * vg[j]
                att += o
            x = [a + b for a, b in zip(x, self.matvec(L["o"], att))]
            h = self.rmsnorm(x, L["post"])
            gate, up = self.matvec(L["gate"], h), self.matvec(L["up"], h)
            act = [gg / (1.0 + math.exp(-gg)) * u for gg, u in zip(gate, up)]
            x = [a + b for a, b in zip(x, self.matvec(L["down"], act))]
        self.pos += 1
        if not want_logits:
            return None
        return self.matvec(self.lm_head, self.rmsnorm(x, self.norm))


def parameter_count(model_dir):
    c = json.load(open(os.path.join(model_dir, "config.json")))
    h, v, ff, n = c["hidden_size"], c["vocab_size"], c["intermediate_size"], c["num_hidden_layers"]
    d = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    tied = c.get("tie_word_embeddings", False)
    return v * h * (1 if tied else 2) + n * (2 * h * q + 2 * h * kv + 3 * h * ff)


def top5(logits):
    m = max(logits)
    z = sum(math.exp(v - m) for v in logits)
    best = sorted(range(len(logits)), key=lambda i: -logits[i])[:5]
    return [[i, math.exp(logits[i] - m) / z] for i in best]


def reference_top5(model_dir, prompt, tokens):
    """Top-5 (id, probability) after the prompt and after each of tokens[:-1] (teacher-forced)."""
    ref = Reference(model_dir)
    seq = prompt + tokens[:-1]
    out = []
    for i, t in enumerate(seq):
        logits = ref.step(t, i >= len(prompt) - 1)
        if logits is not None:
            out.append(top5(logits))
    return out


# ---------------------------------------------------------------------------------------------- comparison

def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)


def llama_generate(server, prompt, steps):
    r = post(server + "/completion", {"prompt": prompt, "n_predict": steps, "temperature": 0, "n_probs": 5,
                                      "cache_prompt": False, "ignore_eos": True,
                                      "return_tokens": True})
    probs = [[[t["id"], math.exp(t["logprob"])] for t in p["top_logprobs"]] for p in r["completion_probabilities"]]
    return r["tokens"], probs


def engine_generate(gqa, model, prompt, steps):
    out = subprocess.run([gqa, "generate", "--device", "cpu", "--model", model, "--prompt-ids",
                          ",".join(map(str, prompt)), "--max-tokens", str(steps), "--temperature", "0",
                          "--ignore-eos", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["token_ids"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--gqa", required=True)
    ap.add_argument("--label", default="gguf")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--tol-prob", type=float, default=0.01)
    ap.add_argument("--ref-cache")
    ap.add_argument("--reference-max-params", type=float, default=30e6,
                    help="skip the pure-Python reference above this many parameters (default 30e6)")
    ap.add_argument("--prompt", action="append")
    a = ap.parse_args()
    prompts = [[int(t) for t in p.split(",")] for p in (a.prompt or DEFAULT_PROMPTS)]
    failures = []

    tok_ok = 0
    for text in TEXTS:
        ours = json.loads(subprocess.run([a.gqa, "tokenize", "--model", a.model, "--text", text, "--json"],
                                         check=True, capture_output=True, text=True).stdout)["ids"]
        theirs = post(a.server + "/tokenize", {"content": text, "add_special": False, "parse_special": True})["tokens"]
        if ours == theirs:
            tok_ok += 1
        else:
            failures.append(f"tokenizer: {text!r}: gqa-evolve {ours} vs llama.cpp {theirs}")
    print(f"[{a.label}] tokenizer: {tok_ok}/{len(TEXTS)} texts tokenized identically")

    params = parameter_count(a.model)
    use_ref = params <= a.reference_max_params
    cache = {}
    if a.ref_cache and os.path.isfile(a.ref_cache):
        cache = json.load(open(a.ref_cache))
    same_total = steps_total = engine_argmax = engine_steps = 0
    max_dp_first = max_dp_all = 0.0
    for n, prompt in enumerate(prompts):
        ours = engine_generate(a.gqa, a.model, prompt, a.steps)
        theirs, probs = llama_generate(a.server, prompt, a.steps)
        key = ",".join(map(str, prompt + ours))
        if key not in cache and use_ref:
            cache[key] = reference_top5(a.model, prompt, ours)
        ref = cache.get(key)
        if ref:  # the engine's own greedy choice against the reference's argmax, step by step
            for i, t in enumerate(ours):
                rp = dict((x, p) for x, p in ref[i])
                if t == ref[i][0][0]:
                    engine_argmax += 1
                elif ref[i][0][1] - rp.get(t, 0.0) > a.tol_prob:
                    failures.append(f"prompt {n + 1} step {i + 1}: gqa-evolve chose {t} (reference p="
                                    f"{rp.get(t, 0.0):.5f}), the reference's argmax is {ref[i][0][0]} "
                                    f"(p={ref[i][0][1]:.5f})")
            engine_steps += len(ours)
        shared = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y), len(ours))
        same = sum(x == y for x, y in zip(ours, theirs))
        same_total += same
        steps_total += len(ours)
        # Steps whose context is the same for both: all up to and including the first disagreement.
        for i in range(min(shared + 1, len(ours)) if ref else 0):
            lp, rp = dict((t, p) for t, p in probs[i]), ref[i]
            fifth = min(lp.values())
            for t, p in rp:
                if t in lp:
                    dp = abs(lp[t] - p)
                elif p > fifth + a.tol_prob:
                    dp = p  # llama.cpp's top-5 misses a clearly more probable token of the reference
                else:
                    continue  # a near tie at the fifth place
                max_dp_all = max(max_dp_all, dp)
                if i == 0:
                    max_dp_first = max(max_dp_first, dp)
                if dp > a.tol_prob:
                    failures.append(f"prompt {n + 1} step {i + 1}: token {t}: llama.cpp p={lp.get(t, 0):.5f}, "
                                    f"reference p={p:.5f}")
        if shared < len(ours):
            i = shared
            lp = dict((t, p) for t, p in probs[i])
            gap = lp[theirs[i]] - lp.get(ours[i], 0.0)
            note = f"first disagreement at step {i + 1}: llama.cpp {theirs[i]} p={lp[theirs[i]]:.5f}, " \
                   f"gqa-evolve {ours[i]} p={lp.get(ours[i], 0.0):.5f}"
            if ref:
                note += f" (reference top-2 {ref[i][0][0]}:{ref[i][0][1]:.5f} {ref[i][1][0]}:{ref[i][1][1]:.5f})"
            if ours[i] not in lp or gap > a.tol_prob:
                failures.append(f"prompt {n + 1}: {note}: not a near tie")
        else:
            note = "no disagreement"
        print(f"[{a.label}] prompt {n + 1} ({len(prompt)} ids): greedy tokens identical {same}/{len(ours)}, "
              f"common prefix {shared}; {note}")
        print(f"[{a.label}]   step 1 top-5 llama.cpp {', '.join(f'{t}:{p:.4f}' for t, p in probs[0])}")
        if ref:
            print(f"[{a.label}]   step 1 top-5 reference {', '.join(f'{t}:{p:.4f}' for t, p in ref[0])}")
    if a.ref_cache:
        json.dump(cache, open(a.ref_cache, "w"))
    if use_ref:
        probs_note = (f"max |p(llama.cpp) - p(reference)| over the reference's top-5: step 1 {max_dp_first:.2e}, "
                      f"all shared-context steps {max_dp_all:.2e} (tolerance {a.tol_prob}); gqa-evolve's token is "
                      f"the reference's argmax at {engine_argmax}/{engine_steps} steps")
    else:
        probs_note = f"no reference probabilities ({params / 1e6:.0f} M parameters: too slow in pure Python)"
    print(f"[{a.label}] summary: {same_total}/{steps_total} greedy tokens identical; {probs_note}")
    if failures:
        for f in failures:
            print(f"[{a.label}] mismatch: {f}")
        print(f"FAIL [{a.label}]: {len(failures)} mismatch(es) beyond rounding")
        sys.exit(1)
    print(f"OK [{a.label}]")


if __name__ == "__main__":
    main()
