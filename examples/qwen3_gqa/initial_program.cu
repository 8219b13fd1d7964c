// Naive GQA attention for the CUDA target (gqa-evolve's starting point, like the seed's): per query head,
// K and V expanded to float, then separate score, softmax and value kernels. Slow on purpose, correct at
// every shape, graph-capturable (lengths are read on the device; grids are sized by the host bounds).
// Build and check: gqa-evolve evaluate examples/qwen3_gqa/initial_program.cu
#include <cuda_runtime.h>

#include "gqa/abi.h"

// EVOLVE-BLOCK-START
__device__ inline float bf16_to_float(gqa_bf16 h) { return __uint_as_float(static_cast<unsigned>(h) << 16); }

__device__ inline gqa_bf16 float_to_bf16(float f) {  // round to nearest even
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<gqa_bf16>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<gqa_bf16>(u >> 16);
}

struct HeadArgs {
  gqa_attention_args a;
  int s, h;
  float *K, *V, *S;  // workspace: [max_kv][D], [max_kv][D], [max_q][max_kv]
};

__global__ void expand_kernel(HeadArgs p) {
  const gqa_attention_args& a = p.a;
  const int D = a.head_dim, g = p.h / (a.num_q_heads / a.num_kv_heads);
  const long idx = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  const int j = static_cast<int>(idx / D), i = static_cast<int>(idx % D);
  if (j >= a.kv_lens[p.s]) return;
  p.K[idx] = bf16_to_float(a.k[p.s * a.k_stride_seq + j * a.k_stride_pos + g * a.k_stride_head + i]);
  p.V[idx] = bf16_to_float(a.v[p.s * a.v_stride_seq + j * a.v_stride_pos + g * a.v_stride_head + i]);
}

__global__ void score_kernel(HeadArgs p) {
  const gqa_attention_args& a = p.a;
  const int qi = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
  const int q0 = a.cu_q_lens[p.s], q_len = a.cu_q_lens[p.s + 1] - q0, kv_len = a.kv_lens[p.s];
  if (qi >= q_len || j >= kv_len) return;
  const int D = a.head_dim;
  const gqa_bf16* q = a.q + (static_cast<long>(q0 + qi) * a.num_q_heads + p.h) * D;
  float dot = 0.f;
  for (int i = 0; i < D; ++i) dot += bf16_to_float(q[i]) * p.K[static_cast<long>(j) * D + i];
  p.S[static_cast<long>(qi) * a.max_kv_len + j] = j <= kv_len - q_len + qi ? dot * a.scale : -INFINITY;
}

__global__ void softmax_kernel(HeadArgs p) {
  const gqa_attention_args& a = p.a;
  const int qi = blockIdx.x;
  const int q_len = a.cu_q_lens[p.s + 1] - a.cu_q_lens[p.s], kv_len = a.kv_lens[p.s];
  if (qi >= q_len) return;
  float* row = p.S + static_cast<long>(qi) * a.max_kv_len;
  __shared__ float red[256];
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < kv_len; j += blockDim.x) mx = fmaxf(mx, row[j]);
  red[threadIdx.x] = mx;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + w]);
    __syncthreads();
  }
  mx = red[0];
  __syncthreads();
  float sum = 0.f;
  for (int j = threadIdx.x; j < kv_len; j += blockDim.x) {
    row[j] = __expf(row[j] - mx);
    sum += row[j];
  }
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  const float inv = 1.f / red[0];
  for (int j = threadIdx.x; j < kv_len; j += blockDim.x) row[j] *= inv;
}

__global__ void value_kernel(HeadArgs p) {
  const gqa_attention_args& a = p.a;
  const int qi = blockIdx.x, i = threadIdx.x;
  const int q0 = a.cu_q_lens[p.s], q_len = a.cu_q_lens[p.s + 1] - q0, kv_len = a.kv_lens[p.s];
  if (qi >= q_len || i >= a.head_dim) return;
  const float* row = p.S + static_cast<long>(qi) * a.max_kv_len;
  float acc = 0.f;
  for (int j = 0; j < kv_len; ++j) acc += row[j] * p.V[static_cast<long>(j) * a.head_dim + i];
  a.out[(static_cast<long>(q0 + qi) * a.num_q_heads + p.h) * a.head_dim + i] = float_to_bf16(acc);
}

static int attention(const gqa_attention_args* a) {
  if (a->num_kv_heads <= 0 || a->num_q_heads % a->num_kv_heads != 0 || a->head_dim > 1024) return GQA_ERR_UNSUPPORTED;
  if (a->workspace_bytes < gqa_workspace_min_bytes(a)) return GQA_ERR_WORKSPACE;
  cudaStream_t st = static_cast<cudaStream_t>(a->stream);
  const long D = a->head_dim, kv = a->max_kv_len;
  HeadArgs p;
  p.a = *a;
  p.K = static_cast<float*>(a->workspace);
  p.V = p.K + kv * D;
  p.S = p.V + kv * D;
  // Kernels of one head run in order on the stream, so the workspace is reused head after head.
  for (int s = 0; s < a->num_seqs; ++s)
    for (int h = 0; h < a->num_q_heads; ++h) {
      p.s = s, p.h = h;
      expand_kernel<<<static_cast<unsigned>((kv * D + 255) / 256), 256, 0, st>>>(p);
      score_kernel<<<dim3(static_cast<unsigned>((kv + 255) / 256), a->max_q_len), 256, 0, st>>>(p);
      softmax_kernel<<<a->max_q_len, 256, 0, st>>>(p);
      value_kernel<<<a->max_q_len, static_cast<unsigned>(D), 0, st>>>(p);
    }
  return cudaPeekAtLastError() == cudaSuccess ? GQA_OK : GQA_ERR_LAUNCH;
}
// EVOLVE-BLOCK-END

extern "C" GQA_EXPORT int gqa_abi_version(void) { return GQA_ABI_VERSION; }

extern "C" GQA_EXPORT int gqa_attention(const gqa_attention_args* args) { return attention(args); }
