// Kernels of the attention-program mode: lengths for the ABI computed on the device (so that one captured
// decode graph serves every step) and the conversions around a program in the paths that keep float q.
#include <algorithm>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/program_hook.h"

namespace gqa::cuda {

namespace {

__global__ void program_inputs_kernel(const float* q, size_t n, bf16* q_bf16, int T, const int* pos, int32_t* lens) {
  griddep_launch_dependents();
  griddep_wait();
  if (blockIdx.x == 0 && threadIdx.x == 0) lens[0] = 0, lens[1] = T, lens[2] = *pos + T;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    q_bf16[i] = __float2bfloat16(q[i]);
}

__global__ void bf16_to_float_kernel(const bf16* in, size_t n, float* out) {
  griddep_launch_dependents();
  griddep_wait();
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = __bfloat162float(in[i]);
}

unsigned blocks_for(size_t n) { return static_cast<unsigned>(std::clamp<size_t>((n + 1023) / 1024, 1, 1024)); }

}  // namespace

void program_inputs(const Exec& ex, const float* q, size_t n, bf16* q_bf16, int T, const int* pos, int32_t* lens) {
  launch(ex, dim3(blocks_for(n)), dim3(256), 0, program_inputs_kernel, q, n, q_bf16, T, pos, lens);
}

void bf16_to_float(const Exec& ex, const bf16* in, size_t n, float* out) {
  launch(ex, dim3(blocks_for(n)), dim3(256), 0, bf16_to_float_kernel, in, n, out);
}

}  // namespace gqa::cuda
