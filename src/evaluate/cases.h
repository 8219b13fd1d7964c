// The shapes the evaluator checks and times: an attention geometry (by default Qwen3-0.6B's: 16 query heads,
// 8 KV heads, head_dim 128; `--shapes-of MODEL` picks another model's) at decode, prefill and chunked-prefill
// shapes, ragged batches of 1, 3 and 8. Every
// benchmark shape is also a correctness shape, so a program that special-cases a timed shape is checked
// on exactly that shape with fresh inputs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "programs/compiler.h"

namespace gqa::eval {

// Query heads, KV heads and head_dim of one layer's attention.
struct HeadGeometry {
  int q_heads = 16, kv_heads = 8, head_dim = 128;
  bool operator==(const HeadGeometry&) const = default;
};

struct Case {
  std::string name;
  std::vector<int> q_lens, kv_lens;  // per sequence
  int num_q_heads = 16, num_kv_heads = 8, head_dim = 128;
  double weight = 0;                 // share of combined_score (benchmark cases; weights sum to 1)
  int kv_bound = 0, q_bound = 0;     // max_kv_len / max_q_len passed as these upper bounds (0: exact)
  int total_q() const;
  int max_q_len() const;
  int max_kv_len() const;
  // Bytes a kernel must read at least: K and V rows attended (each once) plus q, and write (out).
  double min_bytes() const;
  // Multiply-adds of q.k and p.v over the causal region.
  double flops() const;
};

// The geometry of a model: a make-model preset name (qwen3-4b, ...) or a model directory (its config.json).
// Throws gqa::Error naming the preset or file when neither.
HeadGeometry head_geometry_of(const std::string& model);
// "Q:KV:D" (what the evaluator passes its worker) and back; parse throws gqa::Error on anything else.
std::string format_head_geometry(const HeadGeometry& g);
HeadGeometry parse_head_geometry(const std::string& text);

std::vector<Case> correctness_cases(Target t, const HeadGeometry& g = {});
// What one evaluation checks: correctness_cases() plus shapes drawn from `seed` (different every
// evaluation): random decode, prefill and chunk lengths, a random ragged batch, a decode batch of 128
// sequences that covers every residue of the KV length modulo 128 (so modulo every tile size up to 128),
// and lengths passed with the upper bounds the engines pass (max_kv_len = the cache capacity,
// max_q_len = the prefill chunk).
std::vector<Case> evaluation_cases(Target t, uint64_t seed, const HeadGeometry& g = {});
std::vector<Case> benchmark_cases(Target t, const HeadGeometry& g = {});

}  // namespace gqa::eval
