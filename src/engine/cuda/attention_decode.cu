// Stock decode attention (one query token per sequence, GQA): split-KV over the cache, merged by the last
// block. A block owns one (sequence, KV head) and one range of positions and serves all query heads of that KV
// head from one read of K and V. Inside a block, groups of D/8 lanes own one key at a time (16 bytes of K and V per lane,
// four keys in flight), each group keeps its own online softmax, and the groups merge at the end.
// Scores are kept in the log2 domain (q is pre-scaled by scale·log2 e) so exp2f does the exponentials.
#include <algorithm>
#include <cmath>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kKeysInFlight = 4;

template <int D, int G>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(const __grid_constant__ DecodeAttentionArgs a) {
  constexpr int LPK = D / 8;            // lanes per key
  constexpr int KG = kThreads / LPK;    // key groups per block
  __shared__ float sm_m[KG][G], sm_l[KG][G];
  __shared__ float sm_o[KG][G][D];

  const int kvh = blockIdx.x, split = blockIdx.y, seq = blockIdx.z;
  const int kg = threadIdx.x / LPK, sub = threadIdx.x % LPK;
  griddep_launch_dependents();
  if (!a.inputs_ready) griddep_wait();
  const int n_keys = a.kv_lens ? a.kv_lens[seq] : *a.pos + 1;
  const int chunk = (n_keys + a.n_splits - 1) / a.n_splits;
  const int kbeg = split * chunk, kend = min(n_keys, kbeg + chunk);

  const float qscale = a.scale * 1.4426950408889634f;
  const size_t row0 = (static_cast<size_t>(seq) * a.n_heads + kvh * G) * D;  // first query head of the group
  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (a.q_bf16) {
      float f[8];
      unpack8(*reinterpret_cast<const uint4*>(a.q_bf16 + row0 + g * D + sub * 8), f);
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] = f[i] * qscale;
    } else {
      const float* qp = a.q + row0 + g * D + sub * 8;
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] = qp[i] * qscale;
    }
  }
  float m[G], l[G], o[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY, l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) o[g][i] = 0.f;
  }
  const bf16* K = a.k_cache + seq * a.k_stride_seq + static_cast<int64_t>(kvh) * a.capacity * D + sub * 8;
  const bf16* V = a.v_cache + seq * a.v_stride_seq + static_cast<int64_t>(kvh) * a.capacity * D + sub * 8;

  // The loop bound is uniform across the block (shuffles need whole warps); keys past kend are masked.
  // Double-buffered (v4): the next batch of keys is loaded before the current one is scored.
  constexpr int kStep = KG * kKeysInFlight;
  auto load_batch = [&](int jb, uint4* kr, uint4* vr) {
#pragma unroll
    for (int u = 0; u < kKeysInFlight; ++u) {
      const int j = jb + kg + u * KG;
      if (j < kend) {
        kr[u] = load_stream16(K + static_cast<size_t>(j) * D);
        vr[u] = load_stream16(V + static_cast<size_t>(j) * D);
      } else {  // masked keys get p = 0, and 0 * garbage could be NaN
        kr[u] = make_uint4(0, 0, 0, 0);
        vr[u] = make_uint4(0, 0, 0, 0);
      }
    }
  };
  uint4 kr[kKeysInFlight], vr[kKeysInFlight];
  if (kbeg < kend) load_batch(kbeg, kr, vr);
  for (int jb = kbeg; jb < kend; jb += kStep) {
    const int j0 = jb + kg;
    uint4 nk[kKeysInFlight], nv[kKeysInFlight];
    if (jb + kStep < kend) load_batch(jb + kStep, nk, nv);
    float s[G][kKeysInFlight];
#pragma unroll
    for (int u = 0; u < kKeysInFlight; ++u) {
      float kf[8];
      unpack8(kr[u], kf);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float d = 0.f;
#pragma unroll
        for (int i = 0; i < 8; ++i) d = fmaf(q[g][i], kf[i], d);
#pragma unroll
        for (int off = LPK / 2; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
        s[g][u] = (j0 + u * KG < kend) ? d : -INFINITY;
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mn = m[g];
#pragma unroll
      for (int u = 0; u < kKeysInFlight; ++u) mn = fmaxf(mn, s[g][u]);
      if (mn == -INFINITY) continue;  // no key of this group yet
      const float corr = exp2f(m[g] - mn);  // m = -inf on the first batch: corr = 0
      l[g] *= corr;
#pragma unroll
      for (int i = 0; i < 8; ++i) o[g][i] *= corr;
#pragma unroll
      for (int u = 0; u < kKeysInFlight; ++u) {
        const float p = exp2f(s[g][u] - mn);  // 0 for keys past the range
        l[g] += p;
        float vf[8];
        unpack8(vr[u], vf);
#pragma unroll
        for (int i = 0; i < 8; ++i) o[g][i] = fmaf(p, vf[i], o[g][i]);
      }
      m[g] = mn;
    }
#pragma unroll
    for (int u = 0; u < kKeysInFlight; ++u) kr[u] = nk[u], vr[u] = nv[u];
  }

#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (sub == 0) sm_m[kg][g] = m[g], sm_l[kg][g] = l[g];
#pragma unroll
    for (int i = 0; i < 8; ++i) sm_o[kg][g][sub * 8 + i] = o[g][i];
  }
  __syncthreads();
  if (a.inputs_ready) griddep_wait();  // the kernel before may still use the workspace
  const size_t part0 = (static_cast<size_t>(seq) * a.n_splits) * a.n_heads;  // this sequence's partial rows
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, d = idx % D;
    float M = -INFINITY;
    for (int c = 0; c < KG; ++c) M = fmaxf(M, sm_m[c][g]);
    float L = 0.f, O = 0.f;
    if (M != -INFINITY) {
      for (int c = 0; c < KG; ++c) {
        const float w = exp2f(sm_m[c][g] - M);
        L += sm_l[c][g] * w;
        O += sm_o[c][g][d] * w;
      }
    }
    const int h = kvh * G + g;
    const size_t prow = part0 + static_cast<size_t>(split) * a.n_heads + h;
    a.part_o[prow * D + d] = O;
    if (d == 0) {
      a.part_ml[prow * 2] = M;
      a.part_ml[prow * 2 + 1] = L;
    }
  }

  // The last block of this KV head to get here merges all splits (partials read through L2: __ldcg).
  // Every step is spread over the block so that no thread walks the splits one load after another.
  __shared__ bool last;
  __shared__ float sm_w[kMaxDecodeSplits][G], sm_ls[kMaxDecodeSplits][G], sm_M[G], sm_L[G];
  __threadfence();
  __syncthreads();
  unsigned* counter = a.counters + static_cast<size_t>(seq) * a.n_kv + kvh;
  if (threadIdx.x == 0) last = atomicAdd(counter, 1u) == static_cast<unsigned>(a.n_splits) - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  const int S = a.n_splits;
  for (int i = threadIdx.x; i < S * G; i += kThreads) {
    const int sp = i / G, g = i % G;
    const float* ml = a.part_ml + (part0 + static_cast<size_t>(sp) * a.n_heads + kvh * G + g) * 2;
    sm_w[sp][g] = __ldcg(ml);
    sm_ls[sp][g] = __ldcg(ml + 1);
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int g = warp; g < G; g += kThreads / 32) {
    float M = -INFINITY;
    for (int sp = lane; sp < S; sp += 32) M = fmaxf(M, sm_w[sp][g]);
    M = warp_max(M);
    float L = 0.f;
    for (int sp = lane; sp < S; sp += 32)
      if (sm_w[sp][g] != -INFINITY) L += sm_ls[sp][g] * exp2f(sm_w[sp][g] - M);
    L = warp_sum(L);
    if (lane == 0) sm_M[g] = M, sm_L[g] = L;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < S * G; i += kThreads) {
    const int sp = i / G, g = i % G;
    const float m = sm_w[sp][g];
    sm_w[sp][g] = m == -INFINITY ? 0.f : exp2f(m - sm_M[g]) / sm_L[g];  // empty splits weigh nothing
  }
  __syncthreads();
  // Thread = (8-dim chunk, group of splits); the groups are summed through sm_o.
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int sp = kg; sp < S; sp += KG) {
      const float w = sm_w[sp][g];
      const float4* src = reinterpret_cast<const float4*>(
          a.part_o + (part0 + static_cast<size_t>(sp) * a.n_heads + kvh * G + g) * D + sub * 8);
      const float4 v0 = __ldcg(src), v1 = __ldcg(src + 1);
      acc[0] += w * v0.x, acc[1] += w * v0.y, acc[2] += w * v0.z, acc[3] += w * v0.w;
      acc[4] += w * v1.x, acc[5] += w * v1.y, acc[6] += w * v1.z, acc[7] += w * v1.w;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) sm_o[kg][g][sub * 8 + i] = acc[i];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, d = idx % D;
    float O = 0.f;
    for (int c = 0; c < KG; ++c) O += sm_o[c][g][d];
    if (a.out_bf16)
      a.out_bf16[row0 + g * D + d] = __float2bfloat16(O);
    else
      a.out[row0 + g * D + d] = O;
  }
  if (threadIdx.x == 0) *counter = 0;  // ready for the next layer / step
}


using DecodeKernel = void (*)(const DecodeAttentionArgs);

template <int D>
DecodeKernel kernel_for_group(int G) {
  switch (G) {
    case 1: return decode_split_kernel<D, 1>;
    case 2: return decode_split_kernel<D, 2>;
    case 4: return decode_split_kernel<D, 4>;
    case 5: return decode_split_kernel<D, 5>;  // Qwen3-14B: 40 query heads on 8 KV heads
    case 8: return decode_split_kernel<D, 8>;
    default: fail_unsupported("attention_decode: the GQA group must be 1, 2, 4, 5 or 8");
  }
}

DecodeKernel kernel_for(int head_dim, int G) {
  if (head_dim == 64) return kernel_for_group<64>(G);
  if (head_dim == 128) return kernel_for_group<128>(G);
  fail_unsupported("attention_decode: head_dim must be 64 or 128");
}

}  // namespace

// Blocks of the split kernel resident per SM, per (head_dim, group); queried once (configure_kernels()
// fills the table before any graph capture).
int decode_blocks_per_sm(int head_dim, int group) {
  static int table[2][9] = {};
  int& b = table[head_dim == 128][group];
  if (b == 0) {
    int blocks = 0;
    GQA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel_for(head_dim, group), kThreads, 0));
    b = std::max(blocks, 1);
  }
  return b;
}

void configure_decode_kernels() {
  for (int d : {64, 128})
    for (int g : {1, 2, 4, 5, 8}) decode_blocks_per_sm(d, g);
}

int attention_decode_splits(int sms, int head_dim, int group, int n_kv, int batch, int max_kv_len, int max_splits) {
  if (sms < 1 || n_kv < 1 || batch < 1 || max_kv_len < 1 || max_splits < 1)
    fail_unsupported("attention_decode_splits: sizes must be positive");
  if (!attention_decode_supported(head_dim, group)) fail_unsupported("attention_decode_splits: unsupported shape");
  const int64_t resident = static_cast<int64_t>(decode_blocks_per_sm(head_dim, group)) * sms;
  const int64_t per_split = static_cast<int64_t>(n_kv) * batch;
  const int64_t by_gpu = std::max<int64_t>(resident / per_split, 1);  // one full wave, never more than fits
  const int64_t by_len = (static_cast<int64_t>(max_kv_len) + kMinDecodeSplitKeys - 1) / kMinDecodeSplitKeys;
  return static_cast<int>(std::clamp<int64_t>(std::min(by_gpu, by_len), 1, std::min(max_splits, kMaxDecodeSplits)));
}

bool attention_decode_supported(int head_dim, int group) {
  return (head_dim == 64 || head_dim == 128) && (group == 1 || group == 2 || group == 4 || group == 5 || group == 8);
}

void attention_decode(const Exec& ex, const DecodeAttentionArgs& a) {
  if (!attention_decode_supported(a.head_dim, a.n_heads / a.n_kv) || a.n_heads % a.n_kv != 0)
    fail_unsupported("attention_decode: unsupported head_dim or GQA group");
  const int G = a.n_heads / a.n_kv;
  if (a.n_splits < 1 || a.n_splits > kMaxDecodeSplits) fail_unsupported("attention_decode: n_splits out of range");
  if (a.num_seqs < 1 || a.num_seqs > 65535) fail_unsupported("attention_decode: num_seqs must be 1..65535");
  if ((a.q == nullptr) == (a.q_bf16 == nullptr) || (a.out == nullptr) == (a.out_bf16 == nullptr))
    fail_unsupported("attention_decode: exactly one of q / q_bf16 and one of out / out_bf16");
  if (a.kv_lens == nullptr && (a.pos == nullptr || a.num_seqs != 1))
    fail_unsupported("attention_decode: pos serves one sequence; batches need kv_lens");
  launch(ex, dim3(a.n_kv, a.n_splits, a.num_seqs), dim3(kThreads), 0, kernel_for(a.head_dim, G), a);
}

}  // namespace gqa::cuda
