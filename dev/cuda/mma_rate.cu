// What the hardware charges for the decode step's GEMV k-loop, without the engine around it (docs/engine-cuda.md,
// v14). The tile_latency probe (removed; in git history before the cleanup) measured the engine's gemv_tiles at
// ~1,100 cycles for a warp's 16 k-steps, and no change to the loop moved it; this probe times the same instruction mix in a bare kernel: one block per SM, the decode
// step's 288 threads, W of the warps running S k-steps each (the others idle at the end barrier), C independent
// accumulator chains. Modes:
//   empty   the loop's counter only
//   mma     mma.m16n8k16 on register operands (the tensor-core rate alone)
//   loads   ldmatrix.x4 + two 32-bit shared loads per k-step, XOR-ed together (the shared-memory side alone)
//   full    loads and mma, as gemv_tiles (four k-steps per trip of a rolled loop)
//   full-u  the same loop fully unrolled
// Per case: cycles of a warp's loop (clock64 around it, median over blocks of the slowest warp) and cycles per
// k-step per SM sub-partition (warps share a sub-partition's tensor core when W > 4). First, step_kernel: the
// latency of the small dependent steps a tile is made of (mbarrier test, barrier, shuffle, shared load, clock).
// H200 results: docs/engine-cuda-log.md, v14.
//   nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I src -I include -o mma_rate dev/cuda/mma_rate.cu
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "engine/cuda/decode_step.cuh"
#include "probe_check.h"

namespace {

using gqa::cuda::ldmatrix_x4;
using gqa::cuda::mma_bf16;
using gqa::cuda::smem_u32;

constexpr int kThreads = 288;
constexpr int kPitch = 1024 + 8;         // bf16 elements per row: 1,024 k plus the engine's 16-byte pad
constexpr int kSmemRows = 16;
enum Mode { kEmpty, kMma, kLoads, kFull, kFullUnrolled };

// One trip of the k-loop: kChains k-steps' A fragments (ldmatrix.x4) and B words (two shared loads), then one
// mma per chain, or (kMma false: the loads alone) their XOR into x. The 64 k-steps of the tile repeat.
template <int kChains, bool kMma>
__device__ __forceinline__ void trip(float (&d)[kChains][4], uint32_t& x, const uint16_t* arow, const uint32_t* xb,
                                     int s) {
  uint32_t a[kChains][4];
#pragma unroll
  for (int u = 0; u < kChains; ++u) ldmatrix_x4(a[u], smem_u32(arow + ((s + u) & 63) * 16));
#pragma unroll
  for (int u = 0; u < kChains; ++u) {
    const uint32_t b0 = xb[((s + u) & 63) * 8], b1 = xb[((s + u) & 63) * 8 + 4];
    if constexpr (kMma)
      mma_bf16(d[u], a[u], b0, b1);
    else
      x ^= a[u][0] ^ a[u][1] ^ a[u][2] ^ a[u][3] ^ b0 ^ b1;
  }
}

template <int kMode, int kChains, int kSteps>
__global__ void __launch_bounds__(kThreads, 1) rate_kernel(int warps, int steps, long long* cycles, float* sink) {
  __shared__ __align__(16) uint16_t a_tile[kSmemRows * kPitch];
  __shared__ uint32_t xb_tile[3 * 520];
  for (int i = threadIdx.x; i < kSmemRows * kPitch; i += blockDim.x) a_tile[i] = static_cast<uint16_t>(0x3f80 + i % 7);
  for (int i = threadIdx.x; i < 3 * 520; i += blockDim.x) xb_tile[i] = 0x3f803f80u ^ i;
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int mat = lane >> 3, g = lane >> 2, t = lane & 3;
  const uint16_t* arow = a_tile + ((lane & 7) + (mat & 1) * 8) * kPitch + (mat >> 1) * 8;
  const uint32_t* xb = xb_tile + (g < 3 ? g : 0) * 520 + t;
  float d[kChains][4] = {};
  uint32_t x = 0;
  long long c0 = 0, c1 = 0;
  if (warp < warps) {
    c0 = clock64();
    if constexpr (kMode == kEmpty) {
#pragma unroll 1
      for (int s = 0; s < steps; ++s) x += s;
    } else if constexpr (kMode == kMma) {
      uint32_t a[4] = {0x3f803f80u ^ static_cast<uint32_t>(lane), 0x3f803f80u, 0x3f803f80u, 0x3f803f80u};
#pragma unroll 1
      for (int s = 0; s < steps; s += kChains) {
#pragma unroll
        for (int u = 0; u < kChains; ++u) mma_bf16(d[u], a, 0x3f803f80u, 0x3f803f80u);
      }
    } else if constexpr (kMode == kFullUnrolled) {
#pragma unroll
      for (int s = 0; s < kSteps; s += kChains) trip<kChains, true>(d, x, arow, xb, s);
    } else {
#pragma unroll 1
      for (int s = 0; s < steps; s += kChains) trip<kChains, kMode == kFull>(d, x, arow, xb, s);
    }
    // The results must be complete before the clock stops: fold them into one value the clock read depends on.
    float acc = 0.f;
#pragma unroll
    for (int u = 0; u < kChains; ++u) acc += d[u][0] + d[u][1] + d[u][2] + d[u][3];
    x ^= __float_as_uint(acc);
    asm volatile("" : "+r"(x));
    c1 = clock64();
    cycles[(blockIdx.x * (kThreads / 32) + warp)] = c1 - c0;
  }
  __syncthreads();
  if (x == 0x12345678u) sink[threadIdx.x] = static_cast<float>(x);
}

// Latency of the small dependent steps a tile is made of, one warp per SM (the others idle), n in a row, each
// depending on the one before: cycles per step.
enum Op { kTryWait, kBarSync, kShfl, kLdsChain, kClock };
template <int kOp>
__global__ void __launch_bounds__(kThreads, 1) step_kernel(int n, long long* cycles, unsigned* sink) {
  __shared__ __align__(8) uint64_t bar;
  __shared__ unsigned chain[64];
  if (threadIdx.x == 0) {
    gqa::cuda::mbar_init(&bar, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  if (threadIdx.x < 64) chain[threadIdx.x] = (threadIdx.x + 1) % 64;
  __syncthreads();
  if (threadIdx.x == 0) gqa::cuda::mbar_arrive(&bar);  // phase 0 complete: every wait below passes at once
  __syncthreads();
  unsigned x = threadIdx.x % 64;
  const int warps = kOp == kBarSync ? 8 : 1;  // bar.sync: the compute warps' named barrier (256 threads)
  if (static_cast<int>(threadIdx.x) < warps * 32) {
    const long long c0 = clock64();
#pragma unroll 1
    for (int i = 0; i < n; ++i) {
      if constexpr (kOp == kTryWait) {
        gqa::cuda::mbar_wait(&bar, x & 0u);
        x += 1;
      } else if constexpr (kOp == kBarSync) {
        asm volatile("bar.sync 1, 256;" ::: "memory");
        x += 1;
      } else if constexpr (kOp == kShfl) {
        x = __shfl_xor_sync(0xffffffffu, x, 1) + 1;
      } else if constexpr (kOp == kLdsChain) {
        x = chain[x];
      } else {
        x += static_cast<unsigned>(clock64());
      }
    }
    asm volatile("" : "+r"(x));
    const long long c1 = clock64();
    if (threadIdx.x == 0) cycles[blockIdx.x] = c1 - c0;
  }
  if (x == 0x12345678u) sink[threadIdx.x] = x;
}

template <int kOp>
void run_step(const char* name, int sms, long long* dcycles, unsigned* dsink) {
  double per[2];
  const int ns[2] = {16, 272};
  for (int i = 0; i < 2; ++i) {
    for (int rep = 0; rep < 2; ++rep) {  // the second launch is timed (warm code)
      step_kernel<kOp><<<sms, kThreads>>>(ns[i], dcycles, dsink);
      CHECK(cudaGetLastError());
      CHECK(cudaDeviceSynchronize());
    }
    std::vector<long long> c(sms);
    CHECK(cudaMemcpy(c.data(), dcycles, c.size() * 8, cudaMemcpyDeviceToHost));
    std::sort(c.begin(), c.end());
    per[i] = static_cast<double>(c[sms / 2]);
  }
  std::printf("%-28s %6.1f cycles per step (16 steps: %5.0f cycles in all)\n", name, (per[1] - per[0]) / (ns[1] - ns[0]),
              per[0]);
}

template <int kMode, int kChains, int kSteps>
void run(const char* name, int sms, int warps, int steps, long long* dcycles, float* dsink) {
  rate_kernel<kMode, kChains, kSteps><<<sms, kThreads>>>(warps, steps, dcycles, dsink);
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  rate_kernel<kMode, kChains, kSteps><<<sms, kThreads>>>(warps, steps, dcycles, dsink);  // timed: warm code
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  std::vector<long long> c(static_cast<size_t>(sms) * (kThreads / 32));
  CHECK(cudaMemcpy(c.data(), dcycles, c.size() * 8, cudaMemcpyDeviceToHost));
  std::vector<long long> slowest(sms);
  for (int b = 0; b < sms; ++b)
    slowest[b] = *std::max_element(c.begin() + b * (kThreads / 32), c.begin() + b * (kThreads / 32) + warps);
  std::sort(slowest.begin(), slowest.end());
  const double med = static_cast<double>(slowest[sms / 2]);
  const int per_sp = (warps + 3) / 4;  // warps on the busiest sub-partition (warp w runs on sub-partition w % 4)
  std::printf("%-8s chains %d  warps %d  steps %4d  %7.0f cycles  %6.1f per k-step per sub-partition\n", name,
              kChains, warps, steps, med, med / (static_cast<double>(steps) * per_sp));
}

}  // namespace

int main() {
  int device = 0, sms = 0;
  CHECK(cudaGetDevice(&device));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  long long* dcycles;
  float* dsink;
  CHECK(cudaMalloc(&dcycles, static_cast<size_t>(sms) * (kThreads / 32) * 8));
  CHECK(cudaMalloc(&dsink, kThreads * 4));
  std::printf("mma rate, %d SMs, one block of %d threads per SM (cycles: median over blocks of the slowest warp)\n",
              sms, kThreads);
  unsigned* dsteps;
  CHECK(cudaMalloc(&dsteps, kThreads * 4));
  run_step<kTryWait>("mbarrier.try_wait, complete", sms, dcycles, dsteps);
  run_step<kBarSync>("bar.sync, 256 threads", sms, dcycles, dsteps);
  run_step<kShfl>("shfl.xor + add", sms, dcycles, dsteps);
  run_step<kLdsChain>("shared load chain", sms, dcycles, dsteps);
  run_step<kClock>("clock64 + add", sms, dcycles, dsteps);
  CHECK(cudaFree(dsteps));
  for (int warps : {1, 4, 8}) {
    for (int steps : {16, 256}) {
      run<kEmpty, 4, 16>("empty", sms, warps, steps, dcycles, dsink);
      run<kMma, 1, 16>("mma", sms, warps, steps, dcycles, dsink);
      run<kMma, 4, 16>("mma", sms, warps, steps, dcycles, dsink);
      run<kMma, 8, 16>("mma", sms, warps, steps, dcycles, dsink);
      run<kLoads, 4, 16>("loads", sms, warps, steps, dcycles, dsink);
      run<kFull, 4, 16>("full", sms, warps, steps, dcycles, dsink);
    }
    run<kFullUnrolled, 4, 16>("full-u", sms, warps, 16, dcycles, dsink);
    run<kFullUnrolled, 4, 256>("full-u", sms, warps, 256, dcycles, dsink);
  }
  CHECK(cudaFree(dcycles));
  CHECK(cudaFree(dsink));
  return 0;
}
