// The CUDA engine's attention-program mode (program_attention.h).
#include "engine/cuda/program_attention.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "engine/cuda/arena.h"
#include "engine/cuda/program_hook.h"

namespace gqa::cuda {

ProgramAttention::ProgramAttention(gqa_attention_fn fn, const ModelConfig& cfg, const Buffers& b, cudaStream_t stream)
    : fn_(fn), cfg_(cfg), b_(b), stream_(stream) {
  const int64_t R = std::min(b.capacity, kPrefillChunk), qd = cfg.q_dim();
  const gqa_attention_args bound = args(0, static_cast<int>(R), b.capacity, nullptr, nullptr);
  ws_bytes_ = (gqa_workspace_min_bytes(&bound) + 255) / 256 * 256;
  Arena arena;
  arena.add(q_, static_cast<size_t>(R * qd));
  arena.add(att_, static_cast<size_t>(qd));
  arena.add(lens_, 4);
  char* ws = nullptr;
  arena.add(ws, ws_bytes_);
  buf_ = arena.allocate(stream);
  ws_ = ws;
}

gqa_attention_args ProgramAttention::args(int64_t layer, int T, int64_t max_kv_len, const bf16* q, bf16* out) const {
  const int64_t D = cfg_.head_dim, kvd = cfg_.kv_dim(), cap = b_.capacity;
  const size_t layer_kv = static_cast<size_t>(layer) * cap * kvd;
  gqa_attention_args a{};
  a.abi_version = GQA_ABI_VERSION;
  a.num_seqs = 1, a.num_q_heads = static_cast<int32_t>(cfg_.num_attention_heads);
  a.num_kv_heads = static_cast<int32_t>(cfg_.num_key_value_heads), a.head_dim = static_cast<int32_t>(D);
  a.total_q = T, a.max_q_len = T, a.max_kv_len = static_cast<int32_t>(max_kv_len);
  a.cu_q_lens = lens_, a.kv_lens = lens_ + 2;
  a.q = reinterpret_cast<const gqa_bf16*>(q);
  a.k = reinterpret_cast<const gqa_bf16*>(b_.k_cache + layer_kv);
  a.v = reinterpret_cast<const gqa_bf16*>(b_.v_cache + layer_kv);
  a.k_stride_seq = a.v_stride_seq = static_cast<int64_t>(cap * kvd);  // one sequence: unused
  a.k_stride_pos = a.v_stride_pos = D;                                // the cache is [kv_head][capacity][D]
  a.k_stride_head = a.v_stride_head = cap * D;
  a.out = reinterpret_cast<gqa_bf16*>(out);
  a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  a.workspace = ws_, a.workspace_bytes = ws_bytes_;
  a.stream = stream_;
  return a;
}

void ProgramAttention::call(const gqa_attention_args& a) const {
  const int rc = fn_(&a);
  if (rc != GQA_OK) fail("cuda", "the attention program returned error code {}", rc);
}

void ProgramAttention::prefill(const Exec& ex, int64_t layer, int T, int64_t max_kv_len, const float* q, bf16* out) {
  program_inputs(ex, q, static_cast<size_t>(T) * cfg_.q_dim(), q_, T, b_.pos, lens_);
  call(args(layer, T, max_kv_len, q_, out));
  calls += 1;
}

void ProgramAttention::decode(const Exec& ex, int64_t layer, bool fused, const float* q, float* att) {
  const size_t qd = static_cast<size_t>(cfg_.q_dim());
  if (layer == 0 || !fused) program_inputs(ex, q, fused ? 0 : qd, q_, 1, b_.pos, lens_);
  call(args(layer, 1, b_.capacity, q_, att_));
  if (!fused) bf16_to_float(ex, att_, qd, att);
}

}  // namespace gqa::cuda
