// Correctness of a program's device entry (gqa_decode_attend_v2, include/gqa/decode_abi.cuh) outside the engine:
// the harness (decode_entry_harness.cu) linked with the program calls the entry as the persistent step does, on
// fresh random inputs, for positions in every residue class of the tile size and split counts the engine uses and
// others; the partial states, merged in float64, are held to a float64 reference. Needs a GPU.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace gqa::eval {

struct DecodeEntryReport {
  bool ok = false;
  int cases = 0, failed = 0;
  double worst_error = 0;   // largest row error (max |out - ref| / max |ref|) over the cases
  double link_seconds = 0;  // the harness link (0 when cached)
  int split_keys = 0, kv_tile_kib = 0;  // the plan the cases used: the program's, or the defaults given
  std::string text;         // one line per case, then the verdict
};

// Row error bound: the entry accumulates in float32 over float32 q and bf16 K/V and hands float32 states on, so
// its merged output is within float rounding of the float64 reference (1e-5 typical at 8K keys).
constexpr double kDecodeEntryTolerance = 2e-3;

// Runs the cases for head_dim D and group G with the program's plan (gqa_decode_plan: split length, K/V tile
// size; a plan outside the contract fails), or else split_keys and kv_tile_kib (the engine's defaults), inputs
// drawn from `seed`. The link is cached under cache_dir (none when empty).
// Throws gqa::Error only for what is not the program's fault (no GPU, a CUDA error before the first call).
DecodeEntryReport check_decode_entry(std::string_view program_lto, int D, int G, int split_keys, int kv_tile_kib,
                                     uint64_t seed, const std::string& cache_dir);

}  // namespace gqa::eval
