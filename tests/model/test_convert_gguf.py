#!/usr/bin/env python3
"""Tests scripts/convert_to_gguf.py's two conversion paths (the standard library's and numpy's):

1. element conversions bf16/f16/f32 -> bf16/f16/f32 on values that test the roundings (ties to even, f16
   overflow to +-inf, subnormals, NaN, +-0, +-inf) and on random bits: both paths give the same bytes, and the
   standard-library path agrees with independent arithmetic (struct's half-precision packing, bit shifts);
   (NaNs stay NaNs; neither path keeps their payloads);
2. a tiny random model (`gqa-evolve make-model --preset tiny`) converted to f16, bf16 and f32 by both paths:
   byte-identical files.

    test_convert_gguf.py GQA_EVOLVE_BINARY TOKENIZER_DIR

numpy comes from this interpreter or, failing that, Debian's /usr/bin/python3 (scripts/setup.sh installs
python3-numpy); without either the test fails.
"""
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts")
sys.path.insert(0, SCRIPTS)

try:
    import numpy  # noqa: F401
except ImportError:
    debian = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(debian) and os.path.exists(debian) and \
            subprocess.run([debian, "-c", "import numpy"], capture_output=True).returncode == 0:
        os.execv(debian, [debian] + sys.argv)
    sys.exit("test_convert_gguf.py: numpy is not installed for this interpreter nor /usr/bin/python3 "
             "(scripts/setup.sh installs python3-numpy)")

import convert_to_gguf as conv  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def f32_bits(values):
    return struct.pack(f"<{len(values)}f", *values)


# ---- 1. element conversions
special = [0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, -65520.0, 1e6, -1e6, 6e-8, 3e-8, 1e-40, math.inf, -math.inf,
           math.nan, 1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 3.14159, -2.71828]
rng = random.Random(7)
f32_raw = f32_bits(special) + bytes(rng.getrandbits(8) for _ in range(4 * 4096))
bf16_raw = bytes(rng.getrandbits(8) for _ in range(2 * 4096)) + struct.pack("<4H", 0x7FC0, 0xFF80, 0x7F81, 0x0001)
f16_raw = bytes(rng.getrandbits(8) for _ in range(2 * 4096)) + struct.pack("<4H", 0x7E00, 0xFC00, 0x7C01, 0x0001)
inputs = {"f32": f32_raw, "bf16": bf16_raw, "f16": f16_raw}
for src, raw in inputs.items():
    for dst in ("f32", "f16", "bf16"):
        if src == dst:
            continue
        pure = conv.convert(raw, src, dst, use_numpy=False)
        fast = conv.convert(raw, src, dst, use_numpy=True)
        # Bytes equal except inside NaNs: a NaN stays a NaN, its payload is not kept by either path.
        a, b = (numpy.frombuffer(x, dtype={"f32": "<f4", "f16": "<f2", "bf16": "<u2"}[dst]) for x in (pure, fast))
        if dst == "bf16":
            nan_a, nan_b = ((x & 0x7FFF) > 0x7F80 for x in (a, b))
        else:
            nan_a, nan_b = numpy.isnan(a), numpy.isnan(b)
        same = (a.view(f"<u{a.itemsize}") == b.view(f"<u{b.itemsize}")) | (nan_a & nan_b)
        check(len(pure) == len(fast) and bool(same.all()) and bool((nan_a == nan_b).all()),
              f"{src} -> {dst}: the numpy path differs from the standard library's at "
              f"{int((~same).sum())} of {len(a)} elements")

# The standard-library path against independent arithmetic, on the special values (f32 -> f16 / bf16).
vals = struct.unpack(f"<{len(special)}f", f32_bits(special))
halves = struct.unpack(f"<{len(vals)}H", conv.convert(f32_bits(special), "f32", "f16", use_numpy=False))
for v, h in zip(vals, halves):
    got = struct.unpack("<e", struct.pack("<H", h))[0]
    if math.isnan(v):
        check(math.isnan(got), f"f32 -> f16 of NaN gave {got}")
    elif abs(v) >= 65520.0:  # past the f16 range (65504 + half an ulp): +-inf
        check(got == math.copysign(math.inf, v), f"f32 -> f16 of {v} gave {got}, expected +-inf")
    else:
        check(struct.pack("<e", v) == struct.pack("<H", h), f"f32 -> f16 of {v} gave {got}")
bf = struct.unpack(f"<{len(vals)}H", conv.convert(f32_bits(special), "f32", "bf16", use_numpy=False))
for v, b in zip(vals, bf):
    x = struct.unpack("<I", struct.pack("<f", v))[0]
    if math.isnan(v):
        check((b & 0x7F80) == 0x7F80 and (b & 0x7F) != 0, f"f32 -> bf16 of NaN gave {b:#06x}")
        continue
    lo, hi = x & 0xFFFF, x >> 16
    expect = hi + (1 if lo > 0x8000 or (lo == 0x8000 and hi & 1) else 0)  # to nearest, ties to even
    check(b == expect, f"f32 -> bf16 of {v} gave {b:#06x}, expected {expect:#06x}")

# ---- 2. whole files
gqa, tok_dir = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory() as tmp:
    model = os.path.join(tmp, "tiny")
    subprocess.run([gqa, "make-model", "--preset", "tiny", "--seed", "3", "--out", model, "--tokenizer-dir", ""],
                   check=True, capture_output=True)
    script = os.path.join(SCRIPTS, "convert_to_gguf.py")
    for ty in ("f16", "bf16", "f32"):
        outs = []
        for extra in ([], ["--no-numpy"]):
            out = os.path.join(tmp, f"tiny-{ty}{'-pure' if extra else ''}.gguf")
            r = subprocess.run([sys.executable, script, model, out, "--type", ty, "--tokenizer-dir", tok_dir] + extra,
                               capture_output=True, text=True)
            check(r.returncode == 0, f"convert --type {ty} {' '.join(extra)}: exit {r.returncode}: {r.stderr.strip()}")
            check(("(numpy)" in r.stdout) == (not extra), f"convert --type {ty} {' '.join(extra)}: {r.stdout.strip()}")
            outs.append(open(out, "rb").read() if os.path.exists(out) else b"")
        check(outs[0][:4] == b"GGUF" and outs[0] == outs[1],
              f"--type {ty}: the numpy and standard-library files differ ({len(outs[0])} / {len(outs[1])} bytes)")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("OK: both conversion paths agree (elements and whole files, f16/bf16/f32)")
