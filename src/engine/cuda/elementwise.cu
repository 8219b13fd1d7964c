// The small per-token kernels of the forward pass: embedding lookup, RMSNorm rows (prefill GEMM input),
// SiLU·mul rows, and the fused per-head q/k RMSNorm + RoPE + KV-cache write.
#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

__global__ void embed_kernel(const int32_t* tokens, const bf16* table, int hidden, float* x) {
  griddep_launch_dependents();
  griddep_wait();
  const int t = blockIdx.x;
  const bf16* row = table + static_cast<size_t>(tokens[t]) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) x[static_cast<size_t>(t) * hidden + i] = __bfloat162float(row[i]);
}

__global__ void rmsnorm_rows_kernel(const float* x, const bf16* w, int n, float eps, bf16* out) {
  griddep_launch_dependents();
  griddep_wait();
  const float* xr = x + static_cast<size_t>(blockIdx.x) * n;
  float ss = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  const float inv = 1.0f / sqrtf(block_sum(ss) / static_cast<float>(n) + eps);
  bf16* o = out + static_cast<size_t>(blockIdx.x) * n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = __float2bfloat16(xr[i] * inv * __bfloat162float(w[i]));
}

__global__ void silu_mul_rows_kernel(const float* gu, int inter, bf16* out) {
  griddep_launch_dependents();
  griddep_wait();
  const float* g = gu + static_cast<size_t>(blockIdx.x) * 2 * inter;
  bf16* o = out + static_cast<size_t>(blockIdx.x) * inter;
  for (int i = threadIdx.x; i < inter; i += blockDim.x) {
    const float gv = g[i];
    o[i] = __float2bfloat16(gv / (1.0f + expf(-gv)) * g[inter + i]);
  }
}

// One warp per (token, head); lane holds elements lane + 32e, so the rotate-half partner of element e
// (first half) is element e + E/2 of the same lane.
template <int D>
__global__ void __launch_bounds__(256) qk_norm_rope_kernel(const __grid_constant__ QkNormRopeArgs a) {
  constexpr int E = D / 32;
  griddep_launch_dependents();
  griddep_wait();
  const int t = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int head = blockIdx.y * 8 + warp;
  const int n_all = a.n_heads + 2 * a.n_kv;
  if (head >= n_all) return;
  const int pos = *a.pos + t;
  const float* src = a.qkv + static_cast<size_t>(t) * n_all * D + static_cast<size_t>(head) * D;
  float v[E];
#pragma unroll
  for (int e = 0; e < E; ++e) v[e] = src[lane + 32 * e];

  if (head >= a.n_heads + a.n_kv) {  // value head: straight into the cache
    const int kvh = head - a.n_heads - a.n_kv;
    bf16* dst = a.v_cache + (static_cast<size_t>(kvh) * a.capacity + pos) * D;
#pragma unroll
    for (int e = 0; e < E; ++e) dst[lane + 32 * e] = __float2bfloat16(v[e]);
    return;
  }
  const bool is_q = head < a.n_heads;
  const bf16* nw = is_q ? a.q_norm : a.k_norm;
  norm_rope_warp(v, nw, a.inv_freq, pos, a.eps, lane);
  if (is_q) {
    float* dst = a.q_out + (static_cast<size_t>(t) * a.n_heads + head) * D;
#pragma unroll
    for (int e = 0; e < E; ++e) dst[lane + 32 * e] = v[e];
  } else {
    const int kvh = head - a.n_heads;
    bf16* dst = a.k_cache + (static_cast<size_t>(kvh) * a.capacity + pos) * D;
#pragma unroll
    for (int e = 0; e < E; ++e) dst[lane + 32 * e] = __float2bfloat16(v[e]);
  }
}

}  // namespace

void embed(const Exec& ex, const int32_t* tokens, int T, const bf16* table, int hidden, float* x) {
  launch(ex, dim3(T), dim3(256), 0, embed_kernel, tokens, table, hidden, x);
}

void rmsnorm_rows(const Exec& ex, const float* x, const bf16* w, int T, int n, float eps, bf16* out) {
  launch(ex, dim3(T), dim3(256), 0, rmsnorm_rows_kernel, x, w, n, eps, out);
}

void silu_mul_rows(const Exec& ex, const float* gu, int T, int inter, bf16* out) {
  launch(ex, dim3(T), dim3(256), 0, silu_mul_rows_kernel, gu, inter, out);
}

void qk_norm_rope(const Exec& ex, const QkNormRopeArgs& a) {
  const dim3 grid(a.T, (a.n_heads + 2 * a.n_kv + 7) / 8), block(256);
  switch (a.head_dim) {
    case 64: launch(ex, grid, block, 0, qk_norm_rope_kernel<64>, a); break;
    case 128: launch(ex, grid, block, 0, qk_norm_rope_kernel<128>, a); break;
    case 256: launch(ex, grid, block, 0, qk_norm_rope_kernel<256>, a); break;
    default: fail_unsupported("qk_norm_rope: head_dim must be 64, 128 or 256");
  }
}

}  // namespace gqa::cuda
