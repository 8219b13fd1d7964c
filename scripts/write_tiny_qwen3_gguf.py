#!/usr/bin/env python3
# Writes a tiny random-weight Qwen3 (2 layers, GQA 4:2 heads) as a GGUF file that llama.cpp loads, with a
# byte-level BPE vocabulary and a ChatML template, for testing the LLM mutator against a real llama-server.
# Standard library only. Usage: write_tiny_qwen3_gguf.py OUT.gguf [--seed N]
#
# GGUF v3 as documented in ggml's docs/gguf.md: header, key/value metadata, tensor infos, then tensor data,
# each piece aligned to general.alignment (32). The keys and tensor names are those llama.cpp reads for the
# "qwen3" architecture (src/llama-arch.cpp, src/models/qwen3.cpp of the llama.cpp tree).
import argparse
import random
import sys
from array import array

from gguf_format import ALIGN, BOOL, F32, I32, STRING, U32, MetaBuffer

GGML_F32 = 0
# llama.cpp token types
NORMAL, CONTROL = 1, 3

N_EMBD, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF, N_LAYER, N_CTX = 64, 4, 2, 16, 192, 2, 32768

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_symbols():
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest map to U+0100 onwards."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def vocabulary():
    tokens = byte_symbols()
    space = tokens[ord(" ")]
    merges = [(space, "t"), ("h", "e"), ("i", "n"), ("e", "r"), ("o", "n")]
    tokens += [a + b for a, b in merges]
    types = [NORMAL] * len(tokens)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens += specials
    types += [CONTROL] * len(specials)
    return tokens, types, [f"{a} {b}" for a, b in merges], {s: tokens.index(s) for s in specials}


def tensors(seed):
    """(name, dims innermost first, float data) in llama.cpp's layout: a {n_in, n_out} weight is n_out rows."""
    rng = random.Random(seed)

    def rand(*dims, scale=0.02):
        n = 1
        for d in dims:
            n *= d
        return array("f", (rng.uniform(-scale, scale) for _ in range(n)))

    def ones(n):
        return array("f", [1.0] * n)

    n_vocab = len(vocabulary()[0])
    q, kv = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    out = [("token_embd.weight", [N_EMBD, n_vocab], rand(N_EMBD, n_vocab)),
           ("output_norm.weight", [N_EMBD], ones(N_EMBD))]
    for i in range(N_LAYER):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", [N_EMBD], ones(N_EMBD)),
                (b + "attn_q.weight", [N_EMBD, q], rand(N_EMBD, q)),
                (b + "attn_k.weight", [N_EMBD, kv], rand(N_EMBD, kv)),
                (b + "attn_v.weight", [N_EMBD, kv], rand(N_EMBD, kv)),
                (b + "attn_output.weight", [q, N_EMBD], rand(q, N_EMBD)),
                (b + "attn_q_norm.weight", [HEAD_DIM], ones(HEAD_DIM)),
                (b + "attn_k_norm.weight", [HEAD_DIM], ones(HEAD_DIM)),
                (b + "ffn_norm.weight", [N_EMBD], ones(N_EMBD)),
                (b + "ffn_gate.weight", [N_EMBD, N_FF], rand(N_EMBD, N_FF)),
                (b + "ffn_up.weight", [N_EMBD, N_FF], rand(N_EMBD, N_FF)),
                (b + "ffn_down.weight", [N_FF, N_EMBD], rand(N_FF, N_EMBD))]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if sys.byteorder != "little":
        sys.exit("write_tiny_qwen3_gguf.py: GGUF data is little-endian; this machine is not")

    tokens, types, merges, special = vocabulary()
    arch = "qwen3"
    meta = [
        ("general.architecture", STRING, arch), ("general.name", STRING, "tiny-random-qwen3"),
        ("general.alignment", U32, ALIGN),
        (f"{arch}.context_length", U32, N_CTX), (f"{arch}.embedding_length", U32, N_EMBD),
        (f"{arch}.block_count", U32, N_LAYER), (f"{arch}.feed_forward_length", U32, N_FF),
        (f"{arch}.attention.head_count", U32, N_HEAD), (f"{arch}.attention.head_count_kv", U32, N_HEAD_KV),
        (f"{arch}.attention.key_length", U32, HEAD_DIM), (f"{arch}.attention.value_length", U32, HEAD_DIM),
        (f"{arch}.attention.layer_norm_rms_epsilon", F32, 1e-6), (f"{arch}.rope.freq_base", F32, 1000000.0),
        ("tokenizer.ggml.model", STRING, "gpt2"), ("tokenizer.ggml.pre", STRING, "qwen2"),
        ("tokenizer.ggml.eos_token_id", U32, special["<|im_end|>"]),
        ("tokenizer.ggml.padding_token_id", U32, special["<|endoftext|>"]),
        ("tokenizer.ggml.bos_token_id", U32, special["<|endoftext|>"]),
        ("tokenizer.ggml.add_bos_token", BOOL, False),
        ("tokenizer.chat_template", STRING, CHAT_TEMPLATE),
    ]
    arrays = [("tokenizer.ggml.tokens", STRING, tokens), ("tokenizer.ggml.token_type", I32, types),
              ("tokenizer.ggml.merges", STRING, merges)]
    ts = tensors(args.seed)

    w = MetaBuffer()
    w.header(meta, arrays, [(name, dims, GGML_F32, len(data) * 4) for name, dims, data in ts])
    for _, _, data in ts:
        w.buf += data.tobytes()
        w.pad()
    with open(args.out, "wb") as f:
        f.write(w.buf)
    print(f"{args.out}: {len(ts)} tensors, {len(tokens)} tokens (<|im_end|> = {special['<|im_end|>']}), {len(w.buf)} bytes")


if __name__ == "__main__":
    main()
