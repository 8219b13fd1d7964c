#!/usr/bin/env python3
"""Converts a Qwen3 model directory (the Hugging Face layout gqa-evolve reads) to a GGUF v3 file for llama.cpp.

    convert_to_gguf.py MODEL_DIR OUT.gguf [--type bf16|f16|f32] [--tokenizer-dir DIR]

Reads config.json, model.safetensors (or model.safetensors.index.json and its shards) and the tokenizer
(MODEL_DIR/tokenizer.json and tokenizer_config.json; else --tokenizer-dir, $GQA_TOKENIZER_DIR or
assets/qwen3-tokenizer). Writes llama.cpp's "qwen3" architecture: the hyperparameter keys, a "gpt2" (byte-level
BPE) tokenizer with the "qwen2" pre-tokenizer, and every tensor under its llama.cpp name. Matrices are stored
as --type (bf16 default: bf16 checkpoints are copied byte for byte); 1-D norm weights always as F32. No output
tensor when the embeddings are tied (llama.cpp then reuses token_embd). Tensors are streamed in chunks, so
memory stays small whatever the model size. Standard library only; numpy, where installed, converts f16/f32
much faster with the same bytes (--no-numpy: without it) (docs/model-files.md, "GGUF for llama.cpp").
"""
import argparse
import json
import math
import os
import re
import struct
import sys
import time
from array import array

from gguf_format import ALIGN, BOOL, F32, I32, STRING, U32, MetaBuffer

try:  # optional: f16/f32 conversion 3-4x faster than the standard-library path, with the same bytes
    import numpy
except ImportError:
    numpy = None

# ggml tensor types and llama.cpp file types (general.file_type)
GGML = {"f32": 0, "f16": 1, "bf16": 30}
FILE_TYPE = {"f32": 0, "f16": 1, "bf16": 32}
ELEM = {"f32": 4, "f16": 2, "bf16": 2}
# llama.cpp token types
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5
SAFETENSORS_DTYPE = {"BF16": "bf16", "F16": "f16", "F32": "f32"}
# The Split pattern of Qwen2/Qwen3's tokenizer.json: what llama.cpp's "qwen2" pre-tokenizer implements.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
CHUNK = 1 << 20  # elements converted at a time
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConvertError(Exception):
    pass


def read_json(path, what):
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: missing ({what})")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: cannot read as JSON: {e}") from None


# ---------------------------------------------------------------------------------------------- config

class Config:
    """The config.json fields the conversion needs, checked as src/model/config.cpp checks them."""

    def __init__(self, path):
        j = read_json(path, "the model's config.json")
        if not isinstance(j, dict):
            raise ConvertError(f"{path}: must be a JSON object")

        def bad(field, problem):
            return ConvertError(f"{path}: field '{field}' {problem}")

        def size(field, value=None):
            v = j.get(field) if value is None else value
            if v is None:
                raise bad(field, "is missing")
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise bad(field, f"must be a positive integer, got {v!r}")
            return v

        mt = j.get("model_type")
        if mt != "qwen3":
            raise bad("model_type", f"is {mt!r}; only 'qwen3' (dense Qwen3) is supported")
        self.vocab = size("vocab_size")
        self.hidden = size("hidden_size")
        self.ff = size("intermediate_size")
        self.layers = size("num_hidden_layers")
        self.heads = size("num_attention_heads")
        self.kv_heads = size("num_key_value_heads")
        self.ctx = size("max_position_embeddings")
        if self.heads % self.kv_heads:
            raise bad("num_key_value_heads", f"({self.kv_heads}) must divide num_attention_heads ({self.heads})")
        if j.get("head_dim") is not None:
            self.head_dim = size("head_dim")
        elif self.hidden % self.heads == 0:
            self.head_dim = self.hidden // self.heads
        else:
            raise bad("head_dim", "is absent and hidden_size is not a multiple of num_attention_heads")
        eps = j.get("rms_norm_eps")
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
            raise bad("rms_norm_eps", f"must be a positive number, got {eps!r}")
        self.eps = float(eps)
        self.rope_theta = self._rope_theta(j, bad)
        self.tied = j.get("tie_word_embeddings", False)
        if not isinstance(self.tied, bool):
            raise bad("tie_word_embeddings", f"must be a boolean, got {self.tied!r}")
        if j.get("hidden_act", "silu") != "silu":
            raise bad("hidden_act", f"is {j['hidden_act']!r}; only 'silu' is supported")
        if j.get("attention_bias"):
            raise bad("attention_bias", "is true; Qwen3 projections have no biases")
        if j.get("use_sliding_window"):
            raise bad("use_sliding_window", "is true; sliding-window attention is not supported")
        self.token_ids = {t: j.get(f"{t}_token_id") for t in ("bos", "eos", "pad", "unk")}
        self.name = j.get("_name_or_path") or ""

    @staticmethod
    def _rope_theta(j, bad):
        for field in ("rope_parameters", "rope_scaling"):
            obj = j.get(field)
            if obj is None:
                continue
            if not isinstance(obj, dict):
                raise bad(field, "must be an object or null")
            for key in ("rope_type", "type"):
                if key in obj and obj[key] != "default":
                    raise bad(f"{field}.{key}", f"is {obj[key]!r}; only 'default' RoPE is supported")
        top = j.get("rope_theta")
        nested = (j.get("rope_parameters") or {}).get("rope_theta")
        if top is not None and nested is not None and top != nested:
            raise bad("rope_theta", f"({top}) disagrees with rope_parameters.rope_theta ({nested})")
        theta = nested if nested is not None else top
        if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not theta > 0:
            raise bad("rope_theta", f"is missing or not a positive number ({theta!r})")
        return float(theta)


# ---------------------------------------------------------------------------------------------- safetensors

class Tensor:
    def __init__(self, path, name, dtype, shape, begin, end):
        self.path, self.name, self.dtype, self.shape, self.begin, self.end = path, name, dtype, shape, begin, end


def read_safetensors_header(path):
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ConvertError(f"{path}: too short for the 8-byte safetensors header length")
            n = struct.unpack("<Q", head)[0]
            if n > 100_000_000 or 8 + n > size:
                raise ConvertError(f"{path}: header length {n} is invalid for a {size}-byte file")
            header = json.loads(f.read(n))
    except OSError as e:
        raise ConvertError(f"{path}: cannot read: {e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: safetensors header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ConvertError(f"{path}: safetensors header must be a JSON object")
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (b, en) = e["dtype"], e["shape"], e["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ConvertError(f"{path}: tensor '{name}': malformed entry {e!r}") from None
        if dtype not in SAFETENSORS_DTYPE:
            raise ConvertError(f"{path}: tensor '{name}' has unsupported dtype '{dtype}' (supported: BF16, F16, F32)")
        count = 1
        for d in shape:
            count *= d
        if en - b != count * ELEM[SAFETENSORS_DTYPE[dtype]] or b < 0 or 8 + n + en > size:
            raise ConvertError(f"{path}: tensor '{name}': data_offsets [{b}, {en}] do not fit {dtype} {shape}")
        out[name] = Tensor(path, name, SAFETENSORS_DTYPE[dtype], list(shape), 8 + n + b, 8 + n + en)
    return out


def open_weights(model_dir):
    """tensor name -> Tensor over model.safetensors, or the shards of model.safetensors.index.json."""
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.isfile(single):  # transformers prefers the single file when both exist
        return read_safetensors_header(single)
    if not os.path.isfile(index):
        raise ConvertError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")
    wm = read_json(index, "the shard index").get("weight_map")
    if not isinstance(wm, dict) or not wm:
        raise ConvertError(f"{index}: 'weight_map' is missing or empty")
    tensors = {}
    for shard in sorted(set(wm.values())):
        if not isinstance(shard, str) or "/" in shard or shard in ("", ".", ".."):
            raise ConvertError(f"{index}: weight_map names {shard!r}, not a plain file name")
        path = os.path.join(model_dir, shard)
        if not os.path.isfile(path):
            raise ConvertError(f"{path}: shard listed in model.safetensors.index.json does not exist")
        for name, t in read_safetensors_header(path).items():
            if name in tensors:
                raise ConvertError(f"{model_dir}: tensor '{name}' is in two shards: {tensors[name].path} and {path}")
            tensors[name] = t
    for name, shard in wm.items():
        if name not in tensors:
            raise ConvertError(f"{os.path.join(model_dir, shard)}: tensor '{name}' is listed in the index but absent")
    return tensors


# ---------------------------------------------------------------------------------------------- tensors

def tensor_plan(cfg, weights, model_dir, out_type):
    """[(gguf name, source Tensor, ggml type name)] in llama.cpp's naming, every shape checked."""
    q, kv = cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    want = [("model.embed_tokens.weight", "token_embd.weight", [cfg.vocab, cfg.hidden]),
            ("model.norm.weight", "output_norm.weight", [cfg.hidden])]
    if not cfg.tied:
        want.append(("lm_head.weight", "output.weight", [cfg.vocab, cfg.hidden]))
    for i in range(cfg.layers):
        hf, gg = f"model.layers.{i}.", f"blk.{i}."
        want += [(hf + "input_layernorm.weight", gg + "attn_norm.weight", [cfg.hidden]),
                 (hf + "self_attn.q_proj.weight", gg + "attn_q.weight", [q, cfg.hidden]),
                 (hf + "self_attn.k_proj.weight", gg + "attn_k.weight", [kv, cfg.hidden]),
                 (hf + "self_attn.v_proj.weight", gg + "attn_v.weight", [kv, cfg.hidden]),
                 (hf + "self_attn.o_proj.weight", gg + "attn_output.weight", [cfg.hidden, q]),
                 (hf + "self_attn.q_norm.weight", gg + "attn_q_norm.weight", [cfg.head_dim]),
                 (hf + "self_attn.k_norm.weight", gg + "attn_k_norm.weight", [cfg.head_dim]),
                 (hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", [cfg.hidden]),
                 (hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", [cfg.ff, cfg.hidden]),
                 (hf + "mlp.up_proj.weight", gg + "ffn_up.weight", [cfg.ff, cfg.hidden]),
                 (hf + "mlp.down_proj.weight", gg + "ffn_down.weight", [cfg.hidden, cfg.ff])]
    known = {hf for hf, _, _ in want}
    for name in weights:
        if name in known or name.endswith(".rotary_emb.inv_freq") or (cfg.tied and name == "lm_head.weight"):
            continue
        raise ConvertError(f"{model_dir}: unexpected tensor '{name}' (not part of a Qwen3 checkpoint with this config)")
    plan = []
    for hf, gg, shape in want:
        t = weights.get(hf)
        if t is None:
            extra = " (config.json says tie_word_embeddings is false)" if hf == "lm_head.weight" else ""
            raise ConvertError(f"{model_dir}: missing tensor '{hf}'{extra}")
        if t.shape != shape:
            raise ConvertError(f"{t.path}: tensor '{hf}' has shape {t.shape}, expected {shape}")
        plan.append((gg, t, "f32" if len(shape) == 1 else out_type))
    return plan


def f32_to_f16(raw):
    floats = array("f")
    floats.frombytes(raw)
    vals = floats.tolist()
    try:
        return struct.pack(f"<{len(vals)}e", *vals)
    except OverflowError:  # some value rounds beyond the f16 range: +-inf for those, as a numpy cast gives
        return b"".join(half_or_inf(v) for v in vals)


def half_or_inf(v):
    try:
        return struct.pack("<e", v)
    except OverflowError:
        return struct.pack("<e", math.copysign(math.inf, v))


def f32_to_bf16(raw):
    bits = array("I")
    bits.frombytes(raw)
    out = array("H", ((((x >> 16) | 0x40) if (x & 0x7FFFFFFF) > 0x7F800000  # NaN stays NaN
                       else (x + 0x7FFF + ((x >> 16) & 1)) >> 16) for x in bits))  # round to nearest even
    return out.tobytes()


def convert_numpy(raw, src, dst):
    """convert() with numpy: the same roundings (to nearest even; +-inf past the f16 range; NaN stays NaN)."""
    if src == "bf16":
        f32 = (numpy.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4")
    else:
        f32 = numpy.frombuffer(raw, dtype="<f2" if src == "f16" else "<f4").astype("<f4")
    if dst == "f32":
        return f32.tobytes()
    if dst == "f16":
        with numpy.errstate(over="ignore"):
            return f32.astype("<f2").tobytes()
    bits = f32.view("<u4")
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # wraps only for NaN, replaced below
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    return numpy.where(nan, (bits >> 16) | 0x40, rounded).astype("<u2").tobytes()


def convert(raw, src, dst, use_numpy=True):
    """Little-endian raw elements of dtype src -> bytes of dtype dst."""
    if src == dst:
        return raw
    if use_numpy and numpy is not None:
        return convert_numpy(raw, src, dst)
    if src == "bf16":  # a bf16 is the upper half of an f32: interleave with zero low halves
        f32 = bytearray(len(raw) * 2)
        f32[2::4] = raw[0::2]
        f32[3::4] = raw[1::2]
    elif src == "f16":
        vals = struct.unpack(f"<{len(raw) // 2}e", raw)
        f32 = array("f", vals).tobytes()
    else:
        f32 = raw
    if dst == "f32":
        return bytes(f32)
    return f32_to_f16(f32) if dst == "f16" else f32_to_bf16(f32)


# ---------------------------------------------------------------------------------------------- tokenizer

def find_tokenizer_dir(model_dir, explicit):
    candidates = [model_dir] if os.path.isfile(os.path.join(model_dir, "tokenizer.json")) else []
    if explicit:
        candidates = [explicit]  # an explicit directory wins over the model's own files
    elif not candidates:
        candidates = [os.environ.get("GQA_TOKENIZER_DIR") or os.path.join(REPO, "assets", "qwen3-tokenizer")]
    d = candidates[0]
    if not os.path.isfile(os.path.join(d, "tokenizer.json")):
        why = "--tokenizer-dir" if explicit else \
            "the model directory has none; run scripts/setup.sh for assets/qwen3-tokenizer or pass --tokenizer-dir"
        raise ConvertError(f"{os.path.join(d, 'tokenizer.json')}: missing ({why})")
    return d


def looks_special(text):
    return text.startswith("<|") and text.endswith("|>")


def tokenizer_metadata(tok_dir, cfg):
    """The tokenizer.* GGUF keys: [(key, type, value)] and [(key, element type, list)]."""
    tj_path = os.path.join(tok_dir, "tokenizer.json")
    tj = read_json(tj_path, "the tokenizer")
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ConvertError(f"{tj_path}: field 'model.type' is {model.get('type')!r}; only a byte-level BPE is supported")
    split = [p.get("pattern", {}).get("Regex") for p in (tj.get("pre_tokenizer") or {}).get("pretokenizers", [])
             if p.get("type") == "Split"]
    if split != [QWEN2_SPLIT]:
        print(f"convert_to_gguf.py: warning: {tj_path}: the pre-tokenizer is not Qwen2/Qwen3's; llama.cpp will "
              "pre-tokenize with its 'qwen2' rules anyway", file=sys.stderr)
    tc_path = os.path.join(tok_dir, "tokenizer_config.json")
    tc = read_json(tc_path, "the tokenizer") if os.path.isfile(tc_path) else {}

    tokens = [None] * cfg.vocab
    types = [UNUSED] * cfg.vocab

    def place(tid, text, kind, source):
        if not isinstance(tid, int) or not 0 <= tid < cfg.vocab:
            raise ConvertError(f"{tj_path}: token {text!r} has id {tid!r}, outside the model's vocabulary "
                               f"[0, {cfg.vocab}) from {source}")
        tokens[tid], types[tid] = text, kind

    for text, tid in model["vocab"].items():
        place(tid, text, NORMAL, "config.json vocab_size")
    added = tj.get("added_tokens") or []
    for a in added:
        kind = CONTROL if a.get("special") or looks_special(a["content"]) else USER_DEFINED
        place(a.get("id"), a["content"], kind, "config.json vocab_size")
    for i in range(cfg.vocab):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"  # ids the embedding has but the tokenizer never produces

    merges = model.get("merges") or []
    if merges and isinstance(merges[0], list):  # transformers >= 4.45 writes pairs; GGUF wants "a b"
        merges = [" ".join(p.replace(" ", "\u0120") for p in pair) for pair in merges]
    if not merges or not all(isinstance(m, str) for m in merges):
        raise ConvertError(f"{tj_path}: field 'model.merges' is missing or not a list of merges")

    # Special ids: tokenizer_config.json's token strings first, then config.json's *_token_id.
    by_content = {a["content"]: a["id"] for a in added}
    special = {}
    for typ in ("bos", "eos", "pad", "unk"):
        entry = tc.get(f"{typ}_token")
        if isinstance(entry, dict):
            entry = entry.get("content")
        if isinstance(entry, str) and entry in by_content:
            special[typ] = by_content[entry]
    for typ, tid in cfg.token_ids.items():
        if isinstance(tid, list) and tid:
            tid = tid[0]
        if typ not in special and isinstance(tid, int) and 0 <= tid < cfg.vocab:
            special[typ] = tid

    meta = [("tokenizer.ggml.model", STRING, "gpt2"), ("tokenizer.ggml.pre", STRING, "qwen2")]
    meta += [(f"tokenizer.ggml.{typ}_token_id", U32, special[typ]) for typ in ("bos", "eos", "pad", "unk")
             if typ in special]
    for typ in ("bos", "eos"):
        if isinstance(tc.get(f"add_{typ}_token"), bool):
            meta.append((f"tokenizer.ggml.add_{typ}_token", BOOL, tc[f"add_{typ}_token"]))
    template = tc.get("chat_template")
    jinja = os.path.join(tok_dir, "chat_template.jinja")
    if not isinstance(template, str) and os.path.isfile(jinja):
        with open(jinja, encoding="utf-8") as f:
            template = f.read()
    if isinstance(template, str):
        meta.append(("tokenizer.chat_template", STRING, template))
    arrays = [("tokenizer.ggml.tokens", STRING, tokens), ("tokenizer.ggml.token_type", I32, types),
              ("tokenizer.ggml.merges", STRING, merges)]
    return meta, arrays, tj_path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", choices=["bf16", "f16", "f32"], default="bf16", help="type of the matrices")
    ap.add_argument("--tokenizer-dir", help="tokenizer.json (+ tokenizer_config.json) to use instead of the model's")
    ap.add_argument("--no-numpy", action="store_true",
                    help="convert with the standard library even where numpy is installed (slower; the same bytes)")
    args = ap.parse_args()
    if sys.byteorder != "little" or array("I").itemsize != 4 or array("i").itemsize != 4:
        sys.exit("convert_to_gguf.py: needs a little-endian machine with 32-bit C ints")
    start = time.time()
    tmp = args.out + ".tmp"
    try:
        if not os.path.isdir(args.model_dir):
            raise ConvertError(f"{args.model_dir}: not a directory")
        config_path = os.path.join(args.model_dir, "config.json")
        cfg = Config(config_path)
        weights = open_weights(args.model_dir)
        plan = tensor_plan(cfg, weights, args.model_dir, args.type)
        tok_meta, tok_arrays, tok_source = tokenizer_metadata(
            find_tokenizer_dir(args.model_dir, args.tokenizer_dir), cfg)

        arch = "qwen3"
        name = cfg.name or os.path.basename(os.path.normpath(args.model_dir))
        meta = [("general.architecture", STRING, arch), ("general.name", STRING, name),
                ("general.file_type", U32, FILE_TYPE[args.type]), ("general.alignment", U32, ALIGN),
                (f"{arch}.context_length", U32, cfg.ctx), (f"{arch}.embedding_length", U32, cfg.hidden),
                (f"{arch}.block_count", U32, cfg.layers), (f"{arch}.feed_forward_length", U32, cfg.ff),
                (f"{arch}.attention.head_count", U32, cfg.heads),
                (f"{arch}.attention.head_count_kv", U32, cfg.kv_heads),
                (f"{arch}.attention.key_length", U32, cfg.head_dim),
                (f"{arch}.attention.value_length", U32, cfg.head_dim),
                (f"{arch}.rope.dimension_count", U32, cfg.head_dim),
                (f"{arch}.rope.freq_base", F32, cfg.rope_theta),
                (f"{arch}.attention.layer_norm_rms_epsilon", F32, cfg.eps)] + tok_meta

        h = MetaBuffer()
        # GGUF lists the innermost (contiguous) dimension first.
        h.header(meta, tok_arrays, [(gg, list(reversed(t.shape)), GGML[ty], math.prod(t.shape) * ELEM[ty])
                                    for gg, t, ty in plan])

        files = {}
        try:
            with open(tmp, "wb") as out:
                out.write(h.buf)
                written = 0
                for gg, t, ty in plan:
                    f = files.get(t.path) or files.setdefault(t.path, open(t.path, "rb"))
                    f.seek(t.begin)
                    step = CHUNK * ELEM[t.dtype]
                    pos = t.begin
                    while pos < t.end:
                        raw = f.read(min(step, t.end - pos))
                        if not raw:
                            raise ConvertError(f"{t.path}: tensor '{t.name}' is cut short")
                        out.write(convert(raw, t.dtype, ty, use_numpy=not args.no_numpy))
                        written += len(raw) // ELEM[t.dtype] * ELEM[ty]
                        pos += len(raw)
                    pad = -written % ALIGN
                    out.write(b"\0" * pad)
                    written += pad
        finally:
            for f in files.values():
                f.close()
        os.replace(tmp, args.out)
    except ConvertError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        sys.exit(f"convert_to_gguf.py: {e}")
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    src_types = sorted({t.dtype for _, t, _ in plan})
    print(f"{args.out}: qwen3, {cfg.layers} layers, hidden {cfg.hidden}, heads {cfg.heads}:{cfg.kv_heads} x "
          f"{cfg.head_dim}, {'tied' if cfg.tied else 'untied'}; {len(plan)} tensors {'/'.join(src_types)} -> "
          f"{args.type} (norms f32); tokenizer {tok_source}; {os.path.getsize(args.out):,} bytes in "
          f"{time.time() - start:.1f} s"
          f"{' (numpy)' if numpy is not None and not args.no_numpy else ''}")


if __name__ == "__main__":
    main()
