// Naive GQA attention for the CPU target (gqa-evolve's starting point, like the seed's): K and V expanded
// per query head, then separate score, softmax and value passes. Slow on purpose, correct at every shape.
// Build and check: gqa-evolve evaluate examples/qwen3_gqa/initial_program.cpp
#include <cmath>
#include <cstring>

#include "gqa/abi.h"

// EVOLVE-BLOCK-START
static float bf16_to_float(gqa_bf16 h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static gqa_bf16 float_to_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<gqa_bf16>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<gqa_bf16>(u >> 16);
}

static int attention(const gqa_attention_args* a) {
  if (a->num_kv_heads <= 0 || a->num_q_heads % a->num_kv_heads != 0) return GQA_ERR_INVALID;
  if (a->workspace_bytes < gqa_workspace_min_bytes(a)) return GQA_ERR_WORKSPACE;
  const int D = a->head_dim, group = a->num_q_heads / a->num_kv_heads;
  float* K = static_cast<float*>(a->workspace);         // [kv_len][D], this head's keys as float
  float* V = K + static_cast<size_t>(a->max_kv_len) * D;  // [kv_len][D]
  float* S = V + static_cast<size_t>(a->max_kv_len) * D;  // [q_len][kv_len] scores, then probabilities
  for (int s = 0; s < a->num_seqs; ++s) {
    const int q0 = a->cu_q_lens[s], q_len = a->cu_q_lens[s + 1] - q0, kv_len = a->kv_lens[s];
    for (int h = 0; h < a->num_q_heads; ++h) {
      const int g = h / group;
      // Expand: this query head's own copy of its KV head's keys and values.
#pragma omp parallel for num_threads(a->num_threads)
      for (int j = 0; j < kv_len; ++j)
        for (int i = 0; i < D; ++i) {
          K[static_cast<size_t>(j) * D + i] = bf16_to_float(a->k[s * a->k_stride_seq + j * a->k_stride_pos + g * a->k_stride_head + i]);
          V[static_cast<size_t>(j) * D + i] = bf16_to_float(a->v[s * a->v_stride_seq + j * a->v_stride_pos + g * a->v_stride_head + i]);
        }
      // Pass 1: scores, masked above the query's position.
#pragma omp parallel for num_threads(a->num_threads)
      for (int qi = 0; qi < q_len; ++qi) {
        const gqa_bf16* q = a->q + (static_cast<size_t>(q0 + qi) * a->num_q_heads + h) * D;
        const int pos = kv_len - q_len + qi;
        for (int j = 0; j < kv_len; ++j) {
          float dot = 0.f;
          for (int i = 0; i < D; ++i) dot += bf16_to_float(q[i]) * K[static_cast<size_t>(j) * D + i];
          S[static_cast<size_t>(qi) * kv_len + j] = j <= pos ? dot * a->scale : -INFINITY;
        }
      }
      // Pass 2: softmax of each row.
#pragma omp parallel for num_threads(a->num_threads)
      for (int qi = 0; qi < q_len; ++qi) {
        float* row = S + static_cast<size_t>(qi) * kv_len;
        float mx = -INFINITY;
        for (int j = 0; j < kv_len; ++j) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.f;
        for (int j = 0; j < kv_len; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        for (int j = 0; j < kv_len; ++j) row[j] /= sum;
      }
      // Pass 3: probabilities times values.
#pragma omp parallel for num_threads(a->num_threads)
      for (int qi = 0; qi < q_len; ++qi) {
        const float* row = S + static_cast<size_t>(qi) * kv_len;
        gqa_bf16* o = a->out + (static_cast<size_t>(q0 + qi) * a->num_q_heads + h) * D;
        for (int i = 0; i < D; ++i) {
          float acc = 0.f;
          for (int j = 0; j < kv_len; ++j) acc += row[j] * V[static_cast<size_t>(j) * D + i];
          o[i] = float_to_bf16(acc);
        }
      }
    }
  }
  return GQA_OK;
}
// EVOLVE-BLOCK-END

extern "C" GQA_EXPORT int gqa_abi_version(void) { return GQA_ABI_VERSION; }

extern "C" GQA_EXPORT int gqa_attention(const gqa_attention_args* args) { return attention(args); }
