// Small kernels of the CUDA engine's attention-program mode (Engine::set_attention_program): the ABI's
// device-side lengths from the engine's device position, and the float <-> bf16 conversions where the
// engine's activations are float and the ABI's are bf16.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/cuda/ops.h"

namespace gqa::cuda {

// lens[0..1] = cu_q_lens {0, T}, lens[2] = kv_lens[0] = *pos + T (the cache holds the new keys already);
// when n > 0 also q_bf16[i] = bf16(q[i]) for i < n.
void program_inputs(const Exec& ex, const float* q, size_t n, bf16* q_bf16, int T, const int* pos, int32_t* lens);
// out[i] = float(in[i]).
void bf16_to_float(const Exec& ex, const bf16* in, size_t n, float* out);

}  // namespace gqa::cuda
