// Reference causal GQA attention on the CPU over a float32 KV cache.
#pragma once
#include <cstdint>

namespace gqa::cpu {

// q:   [T][n_heads][d], queries of the tokens at positions pos0 .. pos0+T-1.
// k,v: [>= pos0+T][n_kv_heads][d], the cache of this layer (rows 0 .. pos0+T-1 valid).
// out: [T][n_heads][d]. Query head h reads KV head h / (n_heads / n_kv_heads); token t attends to
// positions 0 .. pos0+t (causal).
void attention(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
               int64_t n_heads, int64_t n_kv_heads, int64_t d, float scale);

}  // namespace gqa::cpu
