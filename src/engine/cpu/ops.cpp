// CPU kernels: the matmul converts each weight row to f32 once and reuses it across all tokens of the
// chunk, so a prefill reads the weights once rather than once per token.
#include "engine/cpu/ops.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "common/dtype.h"

namespace gqa::cpu {

namespace {

inline float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

inline float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += bf16_to_f32(w[i]) * x[i];
  return acc;
}

// Four tokens against one weight row: the row is loaded once for four dot products.
inline void dot4(const float* w, const float* x, int64_t ldx, int64_t n, float* o, int64_t ldo) {
  float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
  const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int64_t i = 0; i < n; ++i) {
    a0 += w[i] * x0[i];
    a1 += w[i] * x1[i];
    a2 += w[i] * x2[i];
    a3 += w[i] * x3[i];
  }
  o[0] = a0;
  o[ldo] = a1;
  o[2 * ldo] = a2;
  o[3 * ldo] = a3;
}

// out[t][n] for all t against a float row w (length K).
inline void row_times_tokens(const float* w, const float* x, int64_t T, int64_t K, float* out, int64_t N) {
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) dot4(w, x + t * K, K, K, out + t * N, N);
  for (; t < T; ++t) out[t * N] = dot(w, x + t * K, K);
}

}  // namespace

void tensor_row_to_f32(const Tensor& t, int64_t row, int64_t n, float* out) {
  const auto* base = static_cast<const uint8_t*>(t.data) + static_cast<size_t>(row * n) * dtype_size(t.dtype);
  convert_to_f32(t.dtype, base, out, static_cast<size_t>(n));
}

void matmul(float* out, const float* x, const Tensor& w, int64_t T, int64_t N, int64_t K) {
  if (w.dtype == DType::BF16 && T == 1) {
    // Decode: one pass over the weights, converted on the fly.
    const auto* wd = static_cast<const uint16_t*>(w.data);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) out[n] = dot_bf16(wd + n * K, x, K);
    return;
  }
  if (w.dtype == DType::F32) {
    const auto* wd = static_cast<const float*>(w.data);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) row_times_tokens(wd + n * K, x, T, K, out + n, N);
    return;
  }
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      tensor_row_to_f32(w, n, K, row.data());
      row_times_tokens(row.data(), x, T, K, out + n, N);
    }
  }
}

void rmsnorm(float* y, const float* x, const float* weight, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * inv * weight[i];
  }
}

void rope(float* x, int64_t T, int64_t heads, int64_t head_dim, int64_t pos0, double theta) {
  const int64_t half = head_dim / 2;
  std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
  for (int64_t t = 0; t < T; ++t) {
    // Same arithmetic as transformers: inv_freq in float32, angle = pos * inv_freq in float32.
    for (int64_t i = 0; i < half; ++i) {
      float inv_freq = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(2 * i) / head_dim));
      float angle = static_cast<float>(pos0 + t) * inv_freq;
      cos_t[i] = std::cos(angle);
      sin_t[i] = std::sin(angle);
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        float a = v[i], b = v[i + half];
        v[i] = a * cos_t[i] - b * sin_t[i];
        v[i + half] = b * cos_t[i] + a * sin_t[i];
      }
    }
  }
}

void silu_mul(float* gate, const float* up, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace gqa::cpu
