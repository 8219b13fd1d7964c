// Device helpers shared by the engine's kernels (programmatic dependent launch, warp reductions, bf16
// unpacking, streaming loads) and the host-side launch helper that sets the PDL attribute.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

// Programmatic dependent launch (sm_90). Every kernel of the engine calls griddep_launch_dependents()
// early, so that the next kernel's blocks can be scheduled and start loading weights, which no earlier
// kernel writes; and griddep_wait() before touching anything an earlier kernel wrote. Without the
// launch attribute both are no-ops.
__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void griddep_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float red[32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = lane < nw ? red[lane] : 0.0f;
  return warp_sum(s);
}

// The two bf16 of a 32-bit word as floats (low half is the element at the lower address).
__device__ __forceinline__ float bf16_lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

__device__ __forceinline__ void unpack8(uint4 v, float* f) {
  f[0] = bf16_lo(v.x), f[1] = bf16_hi(v.x), f[2] = bf16_lo(v.y), f[3] = bf16_hi(v.y);
  f[4] = bf16_lo(v.z), f[5] = bf16_hi(v.z), f[6] = bf16_lo(v.w), f[7] = bf16_hi(v.w);
}

// Dot product of 8 bf16 weights (one 16-byte load) with 8 floats (registers).
__device__ __forceinline__ float dot8_regs(uint4 w, const float (&x)[8]) {
  float s = bf16_lo(w.x) * x[0];
  s = fmaf(bf16_hi(w.x), x[1], s);
  s = fmaf(bf16_lo(w.y), x[2], s);
  s = fmaf(bf16_hi(w.y), x[3], s);
  s = fmaf(bf16_lo(w.z), x[4], s);
  s = fmaf(bf16_hi(w.z), x[5], s);
  s = fmaf(bf16_lo(w.w), x[6], s);
  s = fmaf(bf16_hi(w.w), x[7], s);
  return s;
}
// The same with the 8 floats at xs in shared memory (16-byte aligned).
__device__ __forceinline__ float dot8(uint4 w, const float* xs) {
  const float4 a = *reinterpret_cast<const float4*>(xs);
  const float4 b = *reinterpret_cast<const float4*>(xs + 4);
  const float x[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
  return dot8_regs(w, x);
}

// Acquire load of a counter other blocks of the same launch update (grid barriers, phase counters).
__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// One q or k head held by a warp (v[e] = element lane + 32·e of D = 32·E): Qwen3's per-head RMSNorm with
// weights nw (float or bf16), then rotate-half RoPE at position pos with inv_freq[D/2].
template <int E, class W>
__device__ __forceinline__ void norm_rope_warp(float (&v)[E], const W* nw, const float* inv_freq, int pos, float eps,
                                               int lane, const float2* cs = nullptr) {
  constexpr int D = 32 * E;
  float ss = 0.f;
#pragma unroll
  for (int e = 0; e < E; ++e) ss += v[e] * v[e];
  const float inv = 1.0f / sqrtf(warp_sum(ss) / static_cast<float>(D) + eps);
#pragma unroll
  for (int e = 0; e < E; ++e) v[e] = v[e] * inv * to_float(nw[lane + 32 * e]);
#pragma unroll
  for (int e = 0; e < E / 2; ++e) {
    float s, c;
    if (cs) {  // (cos, sin) of this position, computed as below (rope_table in decode_step.cuh)
      c = cs[lane + 32 * e].x, s = cs[lane + 32 * e].y;
    } else {
      sincosf(static_cast<float>(pos) * inv_freq[lane + 32 * e], &s, &c);
    }
    const float x0 = v[e], x1 = v[e + E / 2];
    v[e] = x0 * c - x1 * s;
    v[e + E / 2] = x1 * c + x0 * s;
  }
}

// ---- Tensor cores (the prefill attention, the persistent decode GEMV).
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d += a · b, m16n8k16, bf16 inputs, float accumulators (d in place).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 16-byte load of data read once (weights, KV cache): skips L1. volatile keeps it ahead of
// griddep_wait(), which is the point of prefetching.
__device__ __forceinline__ uint4 load_stream16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Host: launches `kernel` on ex.stream, with the programmatic-serialization attribute when ex.pdl. launch_config:
// the configuration (attr: storage for the attribute, alive until the launch).
inline cudaLaunchConfig_t launch_config(const Exec& ex, dim3 grid, dim3 block, size_t smem, cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = ex.stream;
  attr->id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr->val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = ex.pdl ? 1 : 0;
  return cfg;
}
template <class... KArgs, class... Args>
void launch(const Exec& ex, dim3 grid, dim3 block, size_t smem, void (*kernel)(KArgs...), Args&&... args) {
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t cfg = launch_config(ex, grid, block, smem, &attr);
  GQA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}
// The same for a kernel known by handle (a function symbol's address, or a cudaKernel_t of a library loaded at
// run time), its arguments as an array of pointers.
inline void launch_handle(const Exec& ex, dim3 grid, dim3 block, size_t smem, const void* kernel, void** args) {
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t cfg = launch_config(ex, grid, block, smem, &attr);
  GQA_CUDA_CHECK(cudaLaunchKernelExC(&cfg, kernel, args));
}

}  // namespace gqa::cuda
