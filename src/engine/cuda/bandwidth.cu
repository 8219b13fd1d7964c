// Measured device-memory read bandwidth: a streaming reduction over a buffer many times the L2, 16-byte
// loads, a grid of a few blocks per SM. The decode roofline (time/token >= bytes read / bandwidth) uses it.
#include <algorithm>
#include <vector>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

__global__ void __launch_bounds__(512) read_reduce_kernel(const uint4* p, size_t n, unsigned* out) {
  unsigned acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {  // four independent loads in flight per thread
    const uint4 a = load_stream16(p + i), b = load_stream16(p + i + stride);
    const uint4 c = load_stream16(p + i + 2 * stride), d = load_stream16(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    const uint4 a = load_stream16(p + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9e3779b9u) *out = acc;  // keeps the loads alive; practically never stores
}

__global__ void fill_kernel(bf16* p, size_t n, uint64_t seed, float scale) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    p[i] = __float2bfloat16((2.0f * u - 1.0f) * scale);
  }
}

}  // namespace

void fill_random_bf16(const Exec& ex, bf16* p, size_t n, uint64_t seed, float scale) {
  fill_kernel<<<ex.sms * 8, 256, 0, ex.stream>>>(p, n, seed, scale);
  GQA_CUDA_CHECK_LAUNCH();
}

double measure_read_bandwidth(size_t bytes, int reps) {
  int dev = 0, sms = 0;
  GQA_CUDA_CHECK(cudaGetDevice(&dev));
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const size_t n = bytes / sizeof(uint4);
  DeviceBuffer buf(n * sizeof(uint4)), out(sizeof(unsigned));
  Stream stream;
  Exec ex{stream.get(), false, sms};
  fill_random_bf16(ex, buf.as<bf16>(), n * 8, 1, 1.0f);  // real data, never zeros
  Event t0(true), t1(true);
  std::vector<float> ms;
  for (int r = -2; r < reps; ++r) {  // two warm-up passes
    GQA_CUDA_CHECK(cudaEventRecord(t0.get(), stream.get()));
    read_reduce_kernel<<<sms * 4, 512, 0, stream.get()>>>(buf.as<uint4>(), n, out.as<unsigned>());
    GQA_CUDA_CHECK_LAUNCH();
    GQA_CUDA_CHECK(cudaEventRecord(t1.get(), stream.get()));
    GQA_CUDA_CHECK(cudaEventSynchronize(t1.get()));
    float t = 0;
    GQA_CUDA_CHECK(cudaEventElapsedTime(&t, t0.get(), t1.get()));
    if (r >= 0) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return static_cast<double>(n * sizeof(uint4)) / (ms[ms.size() / 2] * 1e-3);
}

}  // namespace gqa::cuda
