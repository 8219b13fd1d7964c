// CPU kernels of the Qwen3 forward pass: float32 activations, bf16/f16/f32 weights, OpenMP across rows.
#pragma once
#include <cstddef>
#include <cstdint>

#include "model/safetensors.h"

namespace gqa::cpu {

// out[t][n] = sum_k x[t][k] * W[n][k] for t < T, n < N; W is a [N, K] tensor of any supported dtype.
void matmul(float* out, const float* x, const Tensor& w, int64_t T, int64_t N, int64_t K);

// y[t] = x[t] / rms(x[t]) * weight, over rows of length n (y may alias x).
void rmsnorm(float* y, const float* x, const float* weight, int64_t rows, int64_t n, float eps);

// Rotary embedding in the HF "rotate_half" layout: pairs (i, i + d/2), angle pos * theta^(-2i/d).
// x is [T][heads][head_dim]; token t sits at position pos0 + t.
void rope(float* x, int64_t T, int64_t heads, int64_t head_dim, int64_t pos0, double theta);

// gate[i] = silu(gate[i]) * up[i].
void silu_mul(float* gate, const float* up, int64_t n);

// Converts row `row` of a [rows, n] tensor to float.
void tensor_row_to_f32(const Tensor& t, int64_t row, int64_t n, float* out);

}  // namespace gqa::cpu
