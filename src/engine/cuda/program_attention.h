// The CUDA engine's attention-program mode (Engine::set_attention_program): the buffers the ABI needs (bf16 q,
// bf16 attention output, device lengths, workspace) and the calls into the program, counted so that a run can
// prove its program ran. Prefill chunks and the fused and unfused decode steps call attention through it.
#pragma once
#include <cstdint>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/engine_state.h"
#include "gqa/abi.h"

namespace gqa::cuda {

class ProgramAttention {
 public:
  // Buffers for a cache of b.capacity positions (prefill chunks of up to kPrefillChunk rows).
  ProgramAttention(gqa_attention_fn fn, const ModelConfig& cfg, const Buffers& b, cudaStream_t stream);

  // Attention of prefill rows: float q [T][q_dim] of `layer` at positions *pos.. -> bf16 out [T][q_dim].
  void prefill(const Exec& ex, int64_t layer, int T, int64_t max_kv_len, const float* q, bf16* out);
  // Attention of one decode token. Fused steps write bf16 q straight into q_bf16() and read att_bf16();
  // unfused ones pass float q and get float att (converted around the call). The lengths are set at layer 0.
  void decode(const Exec& ex, int64_t layer, bool fused, const float* q, float* att);

  bf16* q_bf16() const { return q_; }
  bf16* att_bf16() const { return att_; }
  uint64_t calls = 0;  // per execution: L per prefill chunk and per decode step

 private:
  gqa_attention_args args(int64_t layer, int T, int64_t max_kv_len, const bf16* q, bf16* out) const;
  void call(const gqa_attention_args& a) const;

  gqa_attention_fn fn_;
  const ModelConfig& cfg_;
  const Buffers& b_;
  cudaStream_t stream_;
  DeviceBuffer buf_;
  bf16 *q_ = nullptr, *att_ = nullptr;
  int32_t* lens_ = nullptr;  // cu_q_lens[2], kv_lens[1]
  void* ws_ = nullptr;
  size_t ws_bytes_ = 0;
};

}  // namespace gqa::cuda
