// Stock decode attention (one query token per sequence, GQA), v7: split-KV where the splits of one
// (sequence, KV head) are the blocks of one thread-block cluster and are merged through distributed shared
// memory, so one launch does everything and no global scratch, counter or workspace is used (the ABI's
// workspace has unspecified contents and does not persist; see docs/attention-kernels.md, decode v7).
// A block owns one contiguous range of positions and serves all query heads of its KV head from one read of
// K and V. Groups of D/8 lanes own one key at a time (16 bytes of K and of V per lane); every thread streams
// its own 16-byte slices through a private ring of cp.async stages in shared memory (kStages - 1 stages in
// flight, no barrier in the loop: a thread only reads what it copied itself). Scores are kept in the log2
// domain (q is pre-scaled by scale·log2 e) so exp2f does the exponentials.
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kKeysPerStage = 2;  // keys per key group per pipeline stage
constexpr int kStages = 6;        // ring depth: kStages - 1 stages in flight while one is scored
constexpr int kMaxCluster = 16;   // non-portable cluster size limit on sm_90 (8 portable)
// The cp.async ring: [stage][key u][K|V][thread] 16-byte slices; reused for the in-block merge.
constexpr size_t kRingBytes = static_cast<size_t>(kStages) * kKeysPerStage * 2 * 16 * kThreads;  // 96 KiB

template <int D, int G>
constexpr size_t merge_bytes() { return static_cast<size_t>(kWarps) * G * D * 4; }
static_assert(merge_bytes<128, 8>() <= kRingBytes && merge_bytes<64, 8>() <= kRingBytes);

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  // src-size 0 zero-fills the slice (keys past the range: 0, not the cache's stale contents or NaN).
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// Grid (n_splits, n_kv, num_seqs), cluster (n_splits, 1, 1): the cluster is one (sequence, KV head).
template <int D, int G>
__global__ void __launch_bounds__(kThreads, G <= 4 ? 2 : 1) decode_cluster_kernel(const __grid_constant__ DecodeAttentionArgs a) {
  constexpr int LPK = D / 8;               // lanes per key
  constexpr int KG = kThreads / LPK;       // key groups per block
  constexpr int SK = KG * kKeysPerStage;   // keys per stage
  constexpr int kSlot = kKeysPerStage * 2 * kThreads;  // uint4 per stage
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint4* ring = reinterpret_cast<uint4*>(smem_raw);
  __shared__ __align__(16) float cl_o[G * D];  // this split's output (unnormalised, relative to cl_m), read by the cluster
  __shared__ float cl_m[G], cl_l[G];
  __shared__ float sm_m[kWarps][G], sm_l[kWarps][G];
  __shared__ float sm_w[kMaxCluster][G], sm_wl[kMaxCluster][G], sm_ws[kMaxCluster][G];  // per split: m, l, weight

  cg::cluster_group cluster = cg::this_cluster();
  const int S = static_cast<int>(cluster.num_blocks());  // == gridDim.x (checked by the launcher)
  const int split = static_cast<int>(cluster.block_rank());
  const int kvh = blockIdx.y, seq = blockIdx.z;
  const int tid = threadIdx.x, kg = tid / LPK, sub = tid % LPK;

  // Ordering: the kernel before this one (the engine's layer kernel, or whatever precedes an ABI call) may
  // write q, the new K/V row, pos or kv_lens; with programmatic dependent launch this grid may start before
  // it has finished, so nothing is read before griddepcontrol.wait. Letting our own dependents launch early
  // is safe: every kernel of the engine waits before reading what it depends on.
  griddep_launch_dependents();
  griddep_wait();
  const int n_keys = a.kv_lens ? a.kv_lens[seq] : *a.pos + 1;
  const int chunk = (n_keys + S - 1) / S;
  const int kbeg = min(n_keys, split * chunk), kend = min(n_keys, kbeg + chunk);
  const int n_stages = (kend - kbeg + SK - 1) / SK;  // uniform over the block

  const bf16* K = a.k_cache + seq * a.k_stride_seq + static_cast<int64_t>(kvh) * a.capacity * D + sub * 8;
  const bf16* V = a.v_cache + seq * a.v_stride_seq + static_cast<int64_t>(kvh) * a.capacity * D + sub * 8;
  // Stage t: key kbeg + t·SK + u·KG + kg for u < kKeysPerStage (for one u the block reads SK/kKeysPerStage
  // consecutive keys: contiguous). Every stage commits a group, empty or not, so that wait_group counts hold.
  auto issue = [&](int t) {
    if (t < n_stages) {
      uint4* slot = ring + (t % kStages) * kSlot;
#pragma unroll
      for (int u = 0; u < kKeysPerStage; ++u) {
        const int j = kbeg + t * SK + u * KG + kg;
        const bool ok = j < kend;
        const size_t off = static_cast<size_t>(ok ? j : kbeg) * D;
        cp_async16(slot + (u * 2) * kThreads + tid, K + off, ok);
        cp_async16(slot + (u * 2 + 1) * kThreads + tid, V + off, ok);
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) issue(t);

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
      const float4* qp = reinterpret_cast<const float4*>(a.q + row0 + g * D + sub * 8);
      const float4 x0 = qp[0], x1 = qp[1];
      q[g][0] = x0.x * qscale, q[g][1] = x0.y * qscale, q[g][2] = x0.z * qscale, q[g][3] = x0.w * qscale;
      q[g][4] = x1.x * qscale, q[g][5] = x1.y * qscale, q[g][6] = x1.z * qscale, q[g][7] = x1.w * qscale;
    }
  }
  float m[G], l[G], o[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY, l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) o[g][i] = 0.f;
  }

  for (int t = 0; t < n_stages; ++t) {
    issue(t + kStages - 1);        // into the slot this thread finished scoring in the previous iteration
    cp_async_wait<kStages - 1>();  // this thread's copies of stage t have landed
    const uint4* slot = ring + (t % kStages) * kSlot;
    const int j0 = kbeg + t * SK + kg;
    float s[G][kKeysPerStage];
    uint4 vr[kKeysPerStage];
#pragma unroll
    for (int u = 0; u < kKeysPerStage; ++u) {
      float kf[8];
      unpack8(slot[(u * 2) * kThreads + tid], kf);
      vr[u] = slot[(u * 2 + 1) * kThreads + tid];
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
      for (int u = 0; u < kKeysPerStage; ++u) mn = fmaxf(mn, s[g][u]);
      if (mn == -INFINITY) continue;         // no key of this group yet
      const float corr = exp2f(m[g] - mn);  // m = -inf on the first key: corr = 0
      l[g] *= corr;
#pragma unroll
      for (int i = 0; i < 8; ++i) o[g][i] *= corr;
#pragma unroll
      for (int u = 0; u < kKeysPerStage; ++u) {
        const float p = exp2f(s[g][u] - mn);  // 0 for masked keys (their V slice is zero-filled)
        l[g] += p;
        float vf[8];
        unpack8(vr[u], vf);
#pragma unroll
        for (int i = 0; i < 8; ++i) o[g][i] = fmaf(p, vf[i], o[g][i]);
      }
      m[g] = mn;
    }
  }

  // Key groups of a warp merged through shuffles, then the warps through shared memory (the ring, free once
  // every thread is past its loop: the barrier below).
  const int warp = tid / 32, lane = tid % 32;
#pragma unroll
  for (int off = LPK; off < 32; off <<= 1) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m[g], off), l2 = __shfl_xor_sync(0xffffffffu, l[g], off);
      const float M = fmaxf(m[g], m2);
      const float wa = M == -INFINITY ? 0.f : exp2f(m[g] - M), wb = M == -INFINITY ? 0.f : exp2f(m2 - M);
      l[g] = l[g] * wa + l2 * wb;
#pragma unroll
      for (int i = 0; i < 8; ++i) o[g][i] = o[g][i] * wa + __shfl_xor_sync(0xffffffffu, o[g][i], off) * wb;
      m[g] = M;
    }
  }
  cp_async_wait<0>();  // only empty groups can be pending; kept so the ring is certainly quiet
  __syncthreads();
  float* sm_o = reinterpret_cast<float*>(smem_raw);  // [kWarps][G][D]
  if (lane < LPK) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      if (lane == 0) sm_m[warp][g] = m[g], sm_l[warp][g] = l[g];
      float4* dst = reinterpret_cast<float4*>(sm_o + (warp * G + g) * D + sub * 8);
      dst[0] = make_float4(o[g][0], o[g][1], o[g][2], o[g][3]);
      dst[1] = make_float4(o[g][4], o[g][5], o[g][6], o[g][7]);
    }
  }
  __syncthreads();
  for (int idx = tid; idx < G * D; idx += kThreads) {
    const int g = idx / D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm_m[w][g]);
    float L = 0.f, O = 0.f;
    if (M != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float wt = exp2f(sm_m[w][g] - M);  // 0 for empty warps
        L += sm_l[w][g] * wt;
        O += sm_o[w * G * D + idx] * wt;
      }
    }
    cl_o[idx] = O;
    if (idx % D == 0) cl_m[g] = M, cl_l[g] = L;
  }

  // The splits merged across the cluster through distributed shared memory. Every block of the cluster
  // reaches both cluster barriers (empty splits included): the first publishes cl_*, the second keeps each
  // block's shared memory alive until the others have read it.
  cluster.sync();
  if (tid < S * G) {
    const int sp = tid / G, g = tid % G;
    sm_w[sp][g] = *cluster.map_shared_rank(&cl_m[g], sp);
    sm_wl[sp][g] = *cluster.map_shared_rank(&cl_l[g], sp);
  }
  __syncthreads();
  if (tid < S * G) {
    const int sp = tid / G, g = tid % G;
    float M = -INFINITY, L = 0.f;
    for (int c = 0; c < S; ++c) M = fmaxf(M, sm_w[c][g]);
    if (M != -INFINITY)
      for (int c = 0; c < S; ++c) L += sm_wl[c][g] * exp2f(sm_w[c][g] - M);
    const float mine = sm_w[sp][g];
    // Weight of split sp for head g (empty splits, and every split of an empty sequence, weigh nothing).
    sm_ws[sp][g] = (mine == -INFINITY || !(L > 0.f)) ? 0.f : exp2f(mine - M) / L;
  }
  __syncthreads();
  // Output float4 i of the G·D outputs: block (i mod S) of the cluster, so every block shares the reads.
  constexpr int kItems = G * D / 4;
  for (int i = split + S * tid; i < kItems; i += S * kThreads) {
    const int g = (i * 4) / D;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int sp = 0; sp < S; ++sp) {
      const float w = sm_ws[sp][g];
      const float4 v = *reinterpret_cast<const float4*>(cluster.map_shared_rank(cl_o + i * 4, sp));
      acc.x = fmaf(w, v.x, acc.x), acc.y = fmaf(w, v.y, acc.y), acc.z = fmaf(w, v.z, acc.z), acc.w = fmaf(w, v.w, acc.w);
    }
    if (a.out_bf16) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(acc.x, acc.y), hi = __floats2bfloat162_rn(acc.z, acc.w);
      uint2 packed;
      packed.x = *reinterpret_cast<const unsigned*>(&lo), packed.y = *reinterpret_cast<const unsigned*>(&hi);
      *reinterpret_cast<uint2*>(a.out_bf16 + row0 + i * 4) = packed;
    } else {
      *reinterpret_cast<float4*>(a.out + row0 + i * 4) = acc;
    }
  }
  cluster.sync();
}

using DecodeKernel = void (*)(const DecodeAttentionArgs);

template <int D>
DecodeKernel kernel_for_group(int G) {
  switch (G) {
    case 1: return decode_cluster_kernel<D, 1>;
    case 2: return decode_cluster_kernel<D, 2>;
    case 4: return decode_cluster_kernel<D, 4>;
    case 8: return decode_cluster_kernel<D, 8>;
    default: fail_unsupported("attention_decode: the GQA group must be 1, 2, 4 or 8");
  }
}

DecodeKernel kernel_for(int head_dim, int G) {
  if (head_dim == 64) return kernel_for_group<64>(G);
  if (head_dim == 128) return kernel_for_group<128>(G);
  fail_unsupported("attention_decode: head_dim must be 64 or 128");
}

// Launch configuration of one decode grid: (splits, n_kv, seqs) blocks in clusters of `splits`.
struct LaunchCfg {
  cudaLaunchConfig_t cfg{};
  cudaLaunchAttribute attr[2]{};
  LaunchCfg(dim3 grid, int splits, cudaStream_t stream, bool pdl) {
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = kRingBytes;
    cfg.stream = stream;
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = static_cast<unsigned>(splits);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 2 : 1;
  }
};

// Per (head_dim, group): blocks resident per SM, and for every cluster size S how many clusters of S
// blocks the GPU holds at once (0: that size cannot be launched). Queried once, before any graph capture
// (configure_kernels()); the function attributes (96 KiB of dynamic shared memory, clusters of more than
// 8 blocks) are set here too.
struct Occupancy {
  int blocks_per_sm = 0;
  int clusters[kMaxCluster + 1] = {};
  int max_cluster = 1;  // largest S with clusters[S] >= 1
};

Occupancy query_occupancy(int head_dim, int G) {
  Occupancy oc;
  const DecodeKernel k = kernel_for(head_dim, G);
  GQA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kRingBytes)));
  GQA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  GQA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&oc.blocks_per_sm, k, kThreads, kRingBytes));
  if (oc.blocks_per_sm < 1) fail_unsupported("attention_decode: the kernel does not fit on an SM");
  for (int s = 1; s <= kMaxCluster; ++s) {
    LaunchCfg lc(dim3(s, 1, 1), s, nullptr, false);
    int n = 0;
    // A cluster size the GPU cannot hold is an error here, not a failure: that size is just never used.
    if (cudaOccupancyMaxActiveClusters(&n, k, &lc.cfg) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the (non-sticky) error of the refused query
      n = 0;
    }
    oc.clusters[s] = n;
    if (n >= 1) oc.max_cluster = s;
  }
  if (oc.clusters[1] < 1) fail_unsupported("attention_decode: no cluster of one block fits");
  return oc;
}

const Occupancy& occupancy(int head_dim, int G) {
  struct Table {
    Occupancy t[2][9];
  };
  static const Table table = [] {  // thread-safe one-time initialisation
    Table tb;
    for (int d : {64, 128})
      for (int g : {1, 2, 4, 8}) tb.t[d == 128][g] = query_occupancy(d, g);
    return tb;
  }();
  return table.t[head_dim == 128][G];
}

}  // namespace

void configure_decode_kernels() { (void)occupancy(128, 2); }

int attention_decode_max_splits(int head_dim, int group) {
  if (!attention_decode_supported(head_dim, group)) fail_unsupported("attention_decode_max_splits: unsupported shape");
  return std::min(occupancy(head_dim, group).max_cluster, kMaxDecodeSplits);
}

int attention_decode_splits(int sms, int head_dim, int group, int n_kv, int batch, int max_kv_len, int max_splits) {
  if (sms < 1 || n_kv < 1 || batch < 1 || max_kv_len < 1 || max_splits < 1)
    fail_unsupported("attention_decode_splits: sizes must be positive");
  if (!attention_decode_supported(head_dim, group)) fail_unsupported("attention_decode_splits: unsupported shape");
  const Occupancy& oc = occupancy(head_dim, group);
  const int64_t pairs = static_cast<int64_t>(n_kv) * batch;  // clusters of the grid
  const int64_t resident = static_cast<int64_t>(oc.blocks_per_sm) * sms;
  const int64_t by_len = (static_cast<int64_t>(max_kv_len) + kMinDecodeSplitKeys - 1) / kMinDecodeSplitKeys;
  const int64_t cap = std::min<int64_t>({by_len, max_splits, kMaxDecodeSplits, oc.max_cluster});
  // The largest cluster size whose whole grid is resident at once (one wave, no straggler clusters).
  int best = 1;
  for (int s = 1; s <= cap; ++s)
    if (oc.clusters[s] >= pairs && pairs * s <= resident) best = s;
  return best;
}

bool attention_decode_supported(int head_dim, int group) {
  return (head_dim == 64 || head_dim == 128) && (group == 1 || group == 2 || group == 4 || group == 8);
}

void attention_decode(const Exec& ex, const DecodeAttentionArgs& a) {
  if (a.n_kv < 1 || a.n_heads % a.n_kv != 0 || !attention_decode_supported(a.head_dim, a.n_heads / a.n_kv))
    fail_unsupported("attention_decode: unsupported head_dim or GQA group");
  const int G = a.n_heads / a.n_kv;
  if (a.n_splits < 1) fail_unsupported("attention_decode: n_splits must be positive");
  if (a.num_seqs < 1 || a.num_seqs > 65535 || a.n_kv > 65535)
    fail_unsupported("attention_decode: num_seqs and n_kv must be 1..65535");
  if ((a.q == nullptr) == (a.q_bf16 == nullptr) || (a.out == nullptr) == (a.out_bf16 == nullptr))
    fail_unsupported("attention_decode: exactly one of q / q_bf16 and one of out / out_bf16");
  if (a.kv_lens == nullptr && (a.pos == nullptr || a.num_seqs != 1))
    fail_unsupported("attention_decode: pos serves one sequence; batches need kv_lens");
  const int splits = std::min(a.n_splits, attention_decode_max_splits(a.head_dim, G));  // one cluster per (seq, KV head)
  LaunchCfg lc(dim3(splits, a.n_kv, a.num_seqs), splits, ex.stream, ex.pdl);
  GQA_CUDA_CHECK(cudaLaunchKernelEx(&lc.cfg, kernel_for(a.head_dim, G), a));
}

}  // namespace gqa::cuda
