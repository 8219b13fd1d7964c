#!/usr/bin/env python3
# Writes the seed corpus of fuzz_safetensors: a few small valid files and near-misses of each kind of
# error the parser reports, so the fuzzer starts next to every branch.  Run from anywhere:
#   python3 fuzz/make_safetensors_corpus.py
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_safetensors")


def st(header, data=b"", pad=True, length=None):
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    raw = text.encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    n = len(raw) if length is None else length
    return struct.pack("<Q", n) + raw + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


SEEDS = {
    "valid_empty": st({}),
    "valid_one_f32": st({"w": t("F32", [2, 2], 0, 16)}, bytes(range(16))),
    "valid_mixed_meta": st(
        {"__metadata__": {"format": "pt"}, "a": t("BF16", [3], 0, 6), "b": t("F16", [1, 1], 6, 8),
         "s": t("F32", [], 8, 12), "z": t("F32", [0, 5], 12, 12)},
        bytes(12)),
    "near_bad_dtype": st({"w": t("I8", [4], 0, 4)}, bytes(4)),
    "near_negative_dim": st({"w": t("F32", [-1], 0, 4)}, bytes(4)),
    "near_size_mismatch": st({"w": t("F32", [3], 0, 8)}, bytes(8)),
    "near_past_end": st({"w": t("BF16", [8], 0, 16)}, bytes(8)),
    "near_overlap": st({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, bytes(12)),
    "near_reversed": st({"w": t("F32", [0], 8, 0)}, bytes(8)),
    "near_big_shape": st({"w": t("F32", [4294967296, 4294967296], 0, 4)}, bytes(4)),
    "near_metadata_int": st({"__metadata__": {"n": 1}}),
    "near_header_past_end": st({"w": t("F32", [1], 0, 4)}, bytes(4), length=4096),
    "near_truncated": b"\x10\x00\x00",
    "near_bad_json": st('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', bytes(4)),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, blob in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)
    print(f"wrote {len(SEEDS)} seeds to {OUT}")
