// Batch-1 matrix-vector products of the decode step, built to stream bf16 weights at memory bandwidth:
// each lane loads 16 bytes of two rows at a time with several loads in flight, the first batch issued
// before griddep_wait() so that under programmatic dependent launch the weights are already on their way
// while the previous kernel finishes. The input vector is prepared in shared memory by every block
// (RMSNorm or SiLU·mul fused in), and the residual add is fused into the store.
#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kRowsPerWarp = 2;
constexpr int kUnroll = 4;    // 16-byte loads per row per lane in flight
constexpr int kChunk = 8;     // bf16 per 16-byte load
constexpr int kStride = 32 * kChunk;  // elements a warp covers per load instruction

template <GemvInput IN>
__device__ __forceinline__ void fill_input(float* xs, const GemvArgs& a) {
  const int k = a.k;
  if constexpr (IN == GemvInput::Plain) {
    for (int i = threadIdx.x * 4; i < k; i += kThreads * 4)
      *reinterpret_cast<float4*>(xs + i) = *reinterpret_cast<const float4*>(a.x + i);
  } else if constexpr (IN == GemvInput::RmsNorm) {
    float ss = 0.f;
    for (int i = threadIdx.x * 4; i < k; i += kThreads * 4) {
      const float4 v = *reinterpret_cast<const float4*>(a.x + i);
      *reinterpret_cast<float4*>(xs + i) = v;
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    const float total = block_sum(ss);
    const float inv = 1.0f / sqrtf(total / static_cast<float>(k) + a.eps);
    __syncthreads();
    for (int i = threadIdx.x; i < k; i += kThreads) xs[i] = xs[i] * inv * __bfloat162float(a.norm_w[i]);
  } else {
    for (int i = threadIdx.x; i < k; i += kThreads) {
      const float g = a.x[i], u = a.x[k + i];
      xs[i] = g / (1.0f + expf(-g)) * u;
    }
  }
}

template <GemvInput IN>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const __grid_constant__ GemvArgs a, int ksplit) {
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);
  __shared__ float partial[kWarps][kRowsPerWarp];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int groups = kWarps / ksplit;
  const int group = warp / ksplit, part = warp % ksplit;
  const int row0 = (blockIdx.x * groups + group) * kRowsPerWarp;
  const int kslice = a.k / ksplit;
  const int kbeg = part * kslice, kend = kbeg + kslice;
  const bf16* w0 = a.w + static_cast<size_t>(min(row0, a.n - 1)) * a.k;
  const bf16* w1 = a.w + static_cast<size_t>(min(row0 + 1, a.n - 1)) * a.k;

  // Weights first: they depend on no earlier kernel.
  uint4 wa[kUnroll], wb[kUnroll];
  int base = kbeg + lane * kChunk;
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int idx = base + u * kStride;
    if (idx < kend) {
      wa[u] = load_stream16(w0 + idx);
      wb[u] = load_stream16(w1 + idx);
    }
  }
  griddep_launch_dependents();
  griddep_wait();
  fill_input<IN>(xs, a);
  __syncthreads();

  float acc0 = 0.f, acc1 = 0.f;
  for (;;) {
    const int next = base + kUnroll * kStride;
    uint4 na[kUnroll], nb[kUnroll];
    if (next < kend) {  // next batch in flight while this one is consumed
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int idx = next + u * kStride;
        if (idx < kend) {
          na[u] = load_stream16(w0 + idx);
          nb[u] = load_stream16(w1 + idx);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int idx = base + u * kStride;
      if (idx < kend) {
        acc0 += dot8(wa[u], xs + idx);
        acc1 += dot8(wb[u], xs + idx);
      }
    }
    if (next >= kend) break;
    base = next;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wa[u] = na[u], wb[u] = nb[u];
  }
  acc0 = warp_sum(acc0);
  acc1 = warp_sum(acc1);
  if (ksplit > 1) {
    if (lane == 0) partial[warp][0] = acc0, partial[warp][1] = acc1;
    __syncthreads();
    if (part == 0 && lane == 0) {
      for (int p = 1; p < ksplit; ++p) acc0 += partial[warp + p][0], acc1 += partial[warp + p][1];
    }
  }
  if (part == 0 && lane == 0) {
    if (row0 < a.n) a.y[row0] = a.accumulate ? a.y[row0] + acc0 : acc0;
    if (row0 + 1 < a.n) a.y[row0 + 1] = a.accumulate ? a.y[row0 + 1] + acc1 : acc1;
  }
  if (a.advance_pos && blockIdx.x == 0 && threadIdx.x == 0) *a.advance_pos += 1;
}

}  // namespace

// The input vector (k floats; SiluMul's gate and up halves make k floats too) lives in dynamic shared memory:
// up to kGemvMaxInput floats, past the 48 KiB a kernel gets without asking.
void configure_gemv_kernels() {
  for (auto kernel : {gemv_kernel<GemvInput::Plain>, gemv_kernel<GemvInput::RmsNorm>, gemv_kernel<GemvInput::SiluMul>})
    GQA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(kGemvMaxInput * sizeof(float))));
}

void gemv(const Exec& ex, GemvInput input, const GemvArgs& a) {
  if (a.k % kChunk != 0 || a.k > kGemvMaxInput || a.n <= 0)
    fail_unsupported("gemv: unsupported shape (k must be a multiple of 8 and at most kGemvMaxInput)");
  configure_kernels();
  // Split k across warps when there are too few row blocks to fill the GPU twice over.
  int ksplit = 1;
  auto blocks_for = [&](int ks) { return (a.n + (kWarps / ks) * kRowsPerWarp - 1) / ((kWarps / ks) * kRowsPerWarp); };
  while (ksplit < kWarps && blocks_for(ksplit) < 2 * ex.sms && a.k % (2 * ksplit * kChunk) == 0 &&
         a.k / (2 * ksplit) >= kStride)
    ksplit *= 2;
  const size_t smem = static_cast<size_t>(a.k) * sizeof(float);
  const dim3 grid(blocks_for(ksplit)), block(kThreads);
  switch (input) {
    case GemvInput::Plain: launch(ex, grid, block, smem, gemv_kernel<GemvInput::Plain>, a, ksplit); break;
    case GemvInput::RmsNorm: launch(ex, grid, block, smem, gemv_kernel<GemvInput::RmsNorm>, a, ksplit); break;
    case GemvInput::SiluMul: launch(ex, grid, block, smem, gemv_kernel<GemvInput::SiluMul>, a, ksplit); break;
  }
}

}  // namespace gqa::cuda
