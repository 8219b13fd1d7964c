// Tunable GQA attention for the CUDA target: one block per (sequence, query, KV head, KV split) serves all
// query heads of its KV head (GQA packing: each K/V row is read once per group), warps stream keys with
// an online softmax, and split decodes are merged by a second kernel. EVOLVE-KNOB lines are values the
// offline mutator may set to one of the listed values.
#include <cuda_runtime.h>

#include "gqa/abi.h"

// EVOLVE-BLOCK-START
constexpr int THREADS = 256;          // EVOLVE-KNOB values=64,128,256,512
constexpr int DECODE_SPLITS = 64;     // EVOLVE-KNOB values=1,2,4,8,16,32,64
constexpr int MIN_KEYS_PER_SPLIT = 256;  // EVOLVE-KNOB values=32,64,128,256,512

constexpr int WARPS = THREADS / 32;

__device__ inline float bf(gqa_bf16 h) { return __uint_as_float(static_cast<unsigned>(h) << 16); }

__device__ inline gqa_bf16 to_bf(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<gqa_bf16>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<gqa_bf16>(u >> 16);
}

// EPL: head_dim / 32 elements per lane. grid: x = KV head, y = sequence * max_q_len + query, z = split.
template <int EPL, int G>
__global__ void __launch_bounds__(THREADS) attention_kernel(const gqa_attention_args a, int splits, float* partials) {
  const int g = blockIdx.x, s = blockIdx.y / a.max_q_len, qi = blockIdx.y % a.max_q_len, split = blockIdx.z;
  const int q0 = a.cu_q_lens[s], q_len = a.cu_q_lens[s + 1] - q0, kv_len = a.kv_lens[s];
  if (qi >= q_len) return;
  const int last = kv_len - q_len + qi;  // causal: keys 0..last
  const int per = max((last + 1 + splits - 1) / splits, 1);
  const int k0 = split * per, k1 = min(last + 1, k0 + per);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, D = EPL * 32;

  float q[G][EPL], acc[G][EPL], m[G], l[G];
  for (int h = 0; h < G; ++h) {
    const gqa_bf16* qr = a.q + (static_cast<long>(q0 + qi) * a.num_q_heads + g * G + h) * D;
    for (int e = 0; e < EPL; ++e) q[h][e] = bf(qr[lane * EPL + e]) * a.scale, acc[h][e] = 0.f;
    m[h] = -INFINITY, l[h] = 0.f;
  }
  const gqa_bf16* kb = a.k + s * a.k_stride_seq + g * a.k_stride_head + lane * EPL;
  const gqa_bf16* vb = a.v + s * a.v_stride_seq + g * a.v_stride_head + lane * EPL;
  for (int j = k0 + warp; j < k1; j += WARPS) {
    float kf[EPL], vf[EPL];
    for (int e = 0; e < EPL; ++e) kf[e] = bf(kb[j * a.k_stride_pos + e]), vf[e] = bf(vb[j * a.v_stride_pos + e]);
    for (int h = 0; h < G; ++h) {
      float dot = 0.f;
      for (int e = 0; e < EPL; ++e) dot += q[h][e] * kf[e];
      for (int off = 16; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
      const float mn = fmaxf(m[h], dot), corr = __expf(m[h] - mn), p = __expf(dot - mn);
      l[h] = l[h] * corr + p;
      for (int e = 0; e < EPL; ++e) acc[h][e] = acc[h][e] * corr + p * vf[e];
      m[h] = mn;
    }
  }
  // Merge the warps through shared memory.
  __shared__ float sm_m[WARPS][G], sm_l[WARPS][G], sm_acc[WARPS][G][EPL * 32];
  for (int h = 0; h < G; ++h) {
    if (lane == 0) sm_m[warp][h] = m[h], sm_l[warp][h] = l[h];
    for (int e = 0; e < EPL; ++e) sm_acc[warp][h][lane * EPL + e] = acc[h][e];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += THREADS) {
    const int h = idx / D, i = idx % D;
    float mx = -INFINITY;
    for (int w = 0; w < WARPS; ++w) mx = fmaxf(mx, sm_m[w][h]);
    float sum = 0.f, o = 0.f;
    for (int w = 0; w < WARPS; ++w) {
      if (sm_l[w][h] == 0.f) continue;
      const float c = __expf(sm_m[w][h] - mx);
      sum += sm_l[w][h] * c;
      o += sm_acc[w][h][i] * c;
    }
    const int head = g * G + h;
    if (splits == 1) {
      a.out[(static_cast<long>(q0 + qi) * a.num_q_heads + head) * D + i] = to_bf(sum > 0.f ? o / sum : 0.f);
    } else {  // partial row of (sequence, head, split): D outputs, then max and sum
      float* pr = partials + ((static_cast<long>(s) * a.num_q_heads + head) * splits + split) * (D + 2);
      pr[i] = o;
      if (i == 0) pr[D] = mx, pr[D + 1] = sum;
    }
  }
}

__global__ void merge_kernel(const gqa_attention_args a, int splits, const float* partials) {
  const int s = blockIdx.x / a.num_q_heads, head = blockIdx.x % a.num_q_heads, D = a.head_dim;
  const float* base = partials + (static_cast<long>(s) * a.num_q_heads + head) * splits * (D + 2);
  float mx = -INFINITY;
  for (int t = 0; t < splits; ++t)
    if (base[t * (D + 2) + D + 1] > 0.f) mx = fmaxf(mx, base[t * (D + 2) + D]);
  for (int i = threadIdx.x; i < D; i += blockDim.x) {
    float sum = 0.f, o = 0.f;
    for (int t = 0; t < splits; ++t) {
      const float* pt = base + t * (D + 2);
      if (pt[D + 1] == 0.f) continue;
      const float c = __expf(pt[D] - mx);
      sum += pt[D + 1] * c;
      o += pt[i] * c;
    }
    a.out[(static_cast<long>(a.cu_q_lens[s]) * a.num_q_heads + head) * D + i] = to_bf(o / sum);
  }
}

template <int EPL, int G>
static void launch(const gqa_attention_args* a, int splits, float* partials, cudaStream_t st) {
  const dim3 grid(a->num_kv_heads, a->num_seqs * a->max_q_len, splits);
  attention_kernel<EPL, G><<<grid, THREADS, 0, st>>>(*a, splits, partials);
  if (splits > 1) merge_kernel<<<a->num_seqs * a->num_q_heads, 128, 0, st>>>(*a, splits, partials);
}

static int attention(const gqa_attention_args* a) {
  if (a->num_kv_heads <= 0 || a->num_q_heads % a->num_kv_heads != 0) return GQA_ERR_INVALID;
  if (a->workspace_bytes < gqa_workspace_min_bytes(a)) return GQA_ERR_WORKSPACE;
  const int G = a->num_q_heads / a->num_kv_heads;
  // Splits only for decode (one query per sequence): partials then fit the ABI's workspace promise.
  int splits = 1;
  if (a->max_q_len == 1) splits = max(1, min(DECODE_SPLITS, a->max_kv_len / MIN_KEYS_PER_SPLIT));
  splits = min(splits, GQA_MAX_KV_SPLITS);
  float* partials = static_cast<float*>(a->workspace);
  cudaStream_t st = static_cast<cudaStream_t>(a->stream);
  if (a->head_dim == 128 && G == 2) launch<4, 2>(a, splits, partials, st);
  else if (a->head_dim == 128 && G == 1) launch<4, 1>(a, splits, partials, st);
  else if (a->head_dim == 128 && G == 4) launch<4, 4>(a, splits, partials, st);
  else if (a->head_dim == 64 && G == 4) launch<2, 4>(a, splits, partials, st);
  else if (a->head_dim == 64 && G == 2) launch<2, 2>(a, splits, partials, st);
  else return GQA_ERR_UNSUPPORTED;
  return cudaPeekAtLastError() == cudaSuccess ? GQA_OK : GQA_ERR_LAUNCH;
}
// EVOLVE-BLOCK-END

extern "C" GQA_EXPORT int gqa_abi_version(void) { return GQA_ABI_VERSION; }

extern "C" GQA_EXPORT int gqa_attention(const gqa_attention_args* args) { return attention(args); }
