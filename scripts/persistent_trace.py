#!/usr/bin/env python3
"""Summary of a persistent decode step's trace (gqa-evolve generate --trace FILE, docs/engine-cuda.md, v6).

    gqa-evolve generate --device cuda --trace trace.csv ...   # on the GPU machine (--trace replaces GQA_CUDA_TRACE)
    scripts/persistent_trace.py trace.csv[.gz] [--layers 6,14]
    scripts/gpu.sh trace                                       # both at ctx 128 and 8192, into $OUT/trace.log

The file holds, per block and phase (layer x {qkv, att, o, gu, dn}, then lm_head), the %globaltimer times
(ns) at which thread 0 started the phase, had its own input words (v7; v6: saw its dependency counter met),
had built the block's input vector, had consumed its tiles, and ended, plus its time spent waiting for ring
data. Prints the step's length,
the critical chain per phase (when the last block ended) and, for chosen layers, the mean time of each part.
"""
import argparse
import collections
import csv
import gzip
import sys

PHASES = ["qkv", "att", "o", "gu", "dn"]
FIELDS = ["start_ns", "ready_ns", "filled_ns", "computed_ns", "end_ns", "data_wait_ns"]


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        sys.exit(f"{path}: cannot read a trace: {e}")
    if not rows or any(k not in rows[0] for k in FIELDS + ["block", "slot"]):
        sys.exit(f"{path}: not a persistent decode trace (columns block, slot, {', '.join(FIELDS)})")
    by_slot = collections.defaultdict(list)
    for r in rows:
        by_slot[int(r["slot"])].append([int(r[k]) for k in FIELDS])
    return by_slot


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--layers", default="1,14", help="layers to break down (comma-separated)")
    args = ap.parse_args()
    by_slot = load(args.trace)
    lm_slot = max(by_slot)
    layers = lm_slot // len(PHASES)
    t0 = min(e[0] for v in by_slot.values() for e in v if e[0] > 0)
    end = max(e[4] for v in by_slot.values() for e in v) - t0
    print(f"step: {end / 1e3:.1f} us, {layers} layers, {len(by_slot[0])} blocks")
    print(f"per layer (mean of layers 1..{layers - 1}, last block's end to last block's end): ", end="")
    ends = [max(e[4] for e in by_slot[l * len(PHASES) + len(PHASES) - 1]) for l in range(layers)]
    print(f"{(ends[-1] - ends[0]) / max(layers - 1, 1) / 1e3:.2f} us")
    print(f"lm_head: {(max(e[4] for e in by_slot[lm_slot]) - ends[-1]) / 1e3:.1f} us")
    wanted = [int(x) for x in args.layers.split(",") if x.strip()]
    print("\nphase      blocks  dependency  fill   tiles  (data wait)  signal   [us, mean over the blocks that ran it]")
    for slot in sorted(by_slot):
        layer, phase = divmod(slot, len(PHASES))
        if slot != lm_slot and layer not in wanted:
            continue
        name = "lm_head" if slot == lm_slot else f"L{layer}.{PHASES[phase]}"
        ran = [e for e in by_slot[slot] if e[1] > 0 and e[0] <= e[1] <= e[3] <= e[4]]
        for e in ran:  # traces written before the qkv phase marked its fill: count it with the tiles
            if not e[1] <= e[2] <= e[3]:
                e[2] = e[1]
        if not ran:
            continue
        n = len(ran)
        mean = lambda f: sum(f(e) for e in ran) / n / 1e3  # noqa: E731
        print(f"{name:10s} {n:6d}  {mean(lambda e: e[1] - e[0]):10.2f}  {mean(lambda e: e[2] - e[1]):5.2f}  "
              f"{mean(lambda e: e[3] - e[2]):6.2f}  ({mean(lambda e: e[5]):5.2f})    {mean(lambda e: e[4] - e[3]):6.2f}")
    chain(by_slot, lm_slot, wanted)


def chain(by_slot, lm_slot, wanted):
    """The critical chain, phase by phase: each phase's input is complete once the last block of the phase
    before it has stored its outputs (its 'computed' mark). Measured from that moment: when the consumers
    saw their own words (ready) and had the whole vector built (filled), and when the last of them had
    stored its own outputs. 'skew' is the last consumer's computed minus the median one's."""
    def ran(slot):
        return [e for e in by_slot.get(slot, []) if e[1] > 0 and e[0] <= e[1] <= e[2] <= e[3] <= e[4]]

    def med(v):
        v = sorted(v)
        return v[len(v) // 2] / 1e3 if v else float("nan")

    print("\ncritical chain [us after the producing phase's last block stored; median (max) over the consumers]")
    print("phase      blocks   ready          filled         computed       skew   phase adds")
    totals = collections.defaultdict(float)
    layers = lm_slot // len(PHASES)
    for slot in range(1, lm_slot + 1):
        prod, cons = ran(slot - 1), ran(slot)
        if not prod or not cons:
            continue
        t = max(e[3] for e in prod)
        last = max(e[3] for e in cons)
        comp = [e[3] - t for e in cons]
        adds = (last - t) / 1e3
        layer, phase = divmod(slot, len(PHASES))
        name = "lm_head" if slot == lm_slot else PHASES[phase]
        if slot != lm_slot and 1 <= layer < layers - 1:
            totals[name] += adds / (layers - 2)
        if slot != lm_slot and layer not in wanted:
            continue
        if slot != lm_slot:
            name = f"L{layer}.{name}"
        print(f"{name:10s} {len(cons):6d}  {med([e[1] - t for e in cons]):5.2f} ({max(e[1] - t for e in cons) / 1e3:5.2f})"
              f"  {med([e[2] - t for e in cons]):5.2f} ({max(e[2] - t for e in cons) / 1e3:5.2f})"
              f"  {med(comp):5.2f} ({adds:5.2f})  {adds - med(comp):5.2f}  {adds:6.2f}")
    if totals:
        print("mean over layers 1..L-2, us each phase adds to the chain: " +
              ", ".join(f"{k} {v:.2f}" for k, v in totals.items()) + f"; sum {sum(totals.values()):.2f}")


if __name__ == "__main__":
    main()
