// The L2 flush kernel: every thread reads 16-byte words grid-stride and folds them into one value that is
// stored only if it hits an impossible pattern, so the loads cannot be optimised away.
#include "evaluate/l2_flush.h"

namespace gqa::eval {

namespace {

__global__ void read_all_kernel(const uint4* p, size_t n, unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint4 v = __ldcg(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u && sink) *sink = acc;
}

}  // namespace

void flush_l2(const void* buf, size_t bytes, cudaStream_t stream) {
  read_all_kernel<<<1024, 512, 0, stream>>>(static_cast<const uint4*>(buf), bytes / sizeof(uint4), nullptr);
}

}  // namespace gqa::eval
