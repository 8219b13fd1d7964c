// The fused decode step's per-layer kernel: everything of a decoder layer except attention, in one
// persistent launch of one block per SM with grid-wide barriers between dependent phases (v4 of the notes
// in docs/engine-cuda-log.md). Weights depend on no activation, so each block loads its first batches of
// each phase into registers before waiting at the barrier in front of it. It is the decode step attention
// programs run in: attention is a separate launch between two of these.
#include <algorithm>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kBatch = 4;                      // 16-byte loads per row per lane in flight
constexpr int kChunksPerBatch = 32 * kBatch;   // 8-element chunks a warp covers per batch
constexpr int kMaxHeadsPerBlock = 64;          // q/k heads one block's qkv rows may touch
// Dynamic shared memory the kernel may use: the input vector, the block's rows and the norm weights of the
// largest dense Qwen3 (32B: ~155 KiB). A launch asks only for what its shape needs.
constexpr size_t kMaxSmem = 160 * 1024;

// Grid-wide barrier over co-resident blocks (the launcher checks occupancy; the engine launches one block
// per SM). One counter: block 0 adds 2^31 - (blocks - 1), the others 1, so the top bit flips exactly when
// the last block arrives and the low bits return to zero: no reset, reusable by the next barrier/launch.
__device__ __forceinline__ void grid_barrier(unsigned* arrived) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned inc = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1) : 1u;
    __threadfence();
    const unsigned old = atomicAdd(arrived, inc);
    while (((old ^ ld_acquire(arrived)) & 0x80000000u) == 0) {
    }
    __threadfence();
  }
  __syncthreads();
}

// This block's share of one matrix W[n][k]: a contiguous range of row pairs, cut into units of one batch (a pair's
// kChunksPerBatch chunks of k). The block's units are split into kWarps contiguous, equal ranges, so that every
// warp streams the same number of bytes whatever the number of pairs (v19 of docs/engine-cuda-log.md: one pair
// per job left warps idle in phases of `hidden` rows at Qwen3-4B). A warp's range may begin or end inside a pair;
// each warp writes its partial sums of a pair to psum[pair][warp] and finish() adds the warps that touched the
// pair in warp order (deterministic results).
struct Rows {
  const bf16* w;
  int n, k, chunks, pbeg, pairs, nb, units;
};

__device__ __forceinline__ Rows block_rows(const bf16* w, int n, int k) {
  Rows r;
  r.w = w, r.n = n, r.k = k, r.chunks = k / 8;
  const long long P = (n + 1) / 2, G = gridDim.x;
  r.pbeg = static_cast<int>(blockIdx.x * P / G);
  r.pairs = static_cast<int>((blockIdx.x + 1) * P / G) - r.pbeg;
  r.nb = (r.chunks + kChunksPerBatch - 1) / kChunksPerBatch;
  r.units = r.pairs * r.nb;
  return r;
}

// First unit of warp w's range (w = kWarps: the end).
__device__ __forceinline__ int warp_unit(const Rows& r, int w) { return w * r.units / kWarps; }

struct Item {
  uint4 a[kBatch], b[kBatch];
};

__device__ __forceinline__ void load_item(const Rows& r, int unit, int lane, Item& it) {
  const int pair = r.pbeg + unit / r.nb, cb = (unit % r.nb) * kChunksPerBatch;
  const int row0 = 2 * pair, row1 = min(row0 + 1, r.n - 1);
  const bf16* w0 = r.w + static_cast<size_t>(row0) * r.k;
  const bf16* w1 = r.w + static_cast<size_t>(row1) * r.k;
#pragma unroll
  for (int u = 0; u < kBatch; ++u) {
    const int c = cb + u * 32 + lane;
    if (c < r.chunks) {
      it.a[u] = load_stream16(w0 + c * 8);
      it.b[u] = load_stream16(w1 + c * 8);
    }
  }
}

__device__ __forceinline__ void consume_item(const Rows& r, int unit, int lane, const Item& it, const float* xs,
                                             float& acc0, float& acc1) {
  const int cb = (unit % r.nb) * kChunksPerBatch;
#pragma unroll
  for (int u = 0; u < kBatch; ++u) {
    const int c = cb + u * 32 + lane;
    if (c < r.chunks) {
      acc0 += dot8(it.a[u], xs + c * 8);
      acc1 += dot8(it.b[u], xs + c * 8);
    }
  }
}

// One phase: y(row) = W[row] · xs for this block's rows. The first two units of weights are loaded before
// before() runs (the grid barrier and the input fill), so they stream while the barrier waits; afterwards each
// warp walks its units with the next one always in flight. finish(row, sum) runs once per row, after the
// block's partial sums are in. psum holds 2 kWarps floats per pair.
template <class Before, class Finish>
__device__ __forceinline__ void run_rows(const Rows& r, const float* xs, float* psum,
                                         Before&& before, Finish&& finish) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int ubeg = warp_unit(r, warp), uend = warp_unit(r, warp + 1);
  // Two units in flight from before the barrier on (v5; v4 had one).
  Item cur, nxt;
  if (ubeg < uend) load_item(r, ubeg, lane, cur);
  if (ubeg + 1 < uend) load_item(r, ubeg + 1, lane, nxt);
  before();
  float acc0 = 0.f, acc1 = 0.f;
  for (int unit = ubeg; unit < uend; ++unit) {
    consume_item(r, unit, lane, cur, xs, acc0, acc1);
    if (unit + 1 == uend || (unit + 1) % r.nb == 0) {  // the end of this warp's part of a pair
      acc0 = warp_sum(acc0);
      acc1 = warp_sum(acc1);
      if (lane == 0) {
        float* p = psum + 2 * ((unit / r.nb) * kWarps + warp);
        p[0] = acc0, p[1] = acc1;
      }
      acc0 = acc1 = 0.f;
    }
    cur = nxt;
    if (unit + 2 < uend) load_item(r, unit + 2, lane, nxt);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 2 * r.pairs; i += kThreads) {
    const int pair = i / 2, which = i % 2, row = 2 * (r.pbeg + pair) + which;
    if (row >= r.n) continue;
    const int lo = pair * r.nb, hi = lo + r.nb;  // the pair's units
    float s = 0.f;
    for (int w = 0; w < kWarps; ++w) {  // the warps whose (non-empty) range overlaps the pair's units
      const int b = max(warp_unit(r, w), lo), e = min(warp_unit(r, w + 1), hi);
      if (b < e) s += psum[2 * (pair * kWarps + w) + which];
    }
    finish(row, s);
  }
}

// xs[0..n) *= w / rms(xs): the same arithmetic as the unfused GEMV's RMSNorm input. w was staged in
// shared memory at entry (as float), so no global round trip sits on the chain here.
__device__ __forceinline__ void rmsnorm_in_place(float* xs, int n, const float* w, float eps) {
  float ss = 0.f;
  for (int i = threadIdx.x; i < n; i += kThreads) ss += xs[i] * xs[i];
  const float inv = 1.0f / sqrtf(block_sum(ss) / static_cast<float>(n) + eps);
  for (int i = threadIdx.x; i < n; i += kThreads) xs[i] = xs[i] * inv * w[i];
  __syncthreads();
}

// Data that other blocks wrote during this launch is read with __ldcg (L2): L1 is not coherent.
__device__ __forceinline__ void fill_rmsnorm(float* xs, const float* x, int n, const float* w, float eps) {
  for (int i = threadIdx.x; i < n; i += kThreads) xs[i] = __ldcg(x + i);
  __syncthreads();
  rmsnorm_in_place(xs, n, w, eps);
}

// Per-head RMSNorm + RoPE of one q or k head (one warp), as qk_norm_rope in elementwise.cu.
// Small weights staged in shared memory before griddep_wait (as float).
struct SmallWeights {
  float *mlp_norm, *attn_norm, *q_norm, *k_norm, *inv_freq;
};

template <int D>
__device__ void norm_rope_head(const DecodeLayerArgs& a, const SmallWeights& sw, int head, int pos, int lane) {
  constexpr int E = D / 32;
  const float* src = a.qkv + static_cast<size_t>(head) * D;
  float v[E];
#pragma unroll
  for (int e = 0; e < E; ++e) v[e] = __ldcg(src + lane + 32 * e);
  const bool is_q = head < a.n_heads;
  const float* nw = is_q ? sw.q_norm : sw.k_norm;
  norm_rope_warp(v, nw, sw.inv_freq, pos, a.eps, lane);
  if (is_q) {
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const size_t i = static_cast<size_t>(head) * D + lane + 32 * e;
      if (a.q_out) a.q_out[i] = v[e];
      if (a.q_out_bf16) a.q_out_bf16[i] = __float2bfloat16(v[e]);
    }
  } else {
    bf16* dst = a.k_cache + (static_cast<size_t>(head - a.n_heads) * a.capacity + pos) * D;
#pragma unroll
    for (int e = 0; e < E; ++e) dst[lane + 32 * e] = __float2bfloat16(v[e]);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads, 2) decode_layer_kernel(const __grid_constant__ DecodeLayerArgs a,
                                                                   int packed_sizes) {
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);
  const bool prev = a.wo != nullptr, next = a.wqkv != nullptr;
  const int H = a.hidden, I = a.inter, qd = a.n_heads * D, kvd = a.n_kv * D;
  // After psum (2 kWarps max_pairs floats): the block's rows of x between o_proj and down (2 max_pairs),
  // then the small weights.
  const int max_pairs = packed_sizes >> 16, xs_floats = packed_sizes & 0xffff;
  float* psum = xs + xs_floats;
  float* xrows = psum + 2 * kWarps * max_pairs;
  SmallWeights sw;
  sw.mlp_norm = xrows + 2 * max_pairs, sw.attn_norm = sw.mlp_norm + H, sw.q_norm = sw.attn_norm + H;
  sw.k_norm = sw.q_norm + D, sw.inv_freq = sw.k_norm + D;
  for (int i = threadIdx.x; i < H; i += kThreads) {
    if (prev) sw.mlp_norm[i] = __bfloat162float(a.mlp_norm[i]);
    if (next) sw.attn_norm[i] = __bfloat162float(a.attn_norm[i]);
  }
  if (next)
    for (int i = threadIdx.x; i < D; i += kThreads) {
      sw.q_norm[i] = __bfloat162float(a.q_norm[i]), sw.k_norm[i] = __bfloat162float(a.k_norm[i]);
      if (i < D / 2) sw.inv_freq[i] = a.inv_freq[i];
    }
  Rows ro{}, rgu{}, rdn{}, rqkv{};
  if (prev) ro = block_rows(a.wo, H, qd), rgu = block_rows(a.wgu, 2 * I, H), rdn = block_rows(a.wdown, H, I);
  if (next) rqkv = block_rows(a.wqkv, qd + 2 * kvd, H);
  griddep_launch_dependents();

  if (prev) {
    // o_proj of the previous layer's attention output, residual add.
    run_rows(
        ro, xs, psum,
        [&] {
          griddep_wait();
          for (int i = threadIdx.x; i < qd; i += kThreads)
            xs[i] = a.att_bf16 ? __bfloat162float(a.att_bf16[i]) : a.att[i];
          // This block's rows of x, read with the attention output (one round trip, not two); down's
          // rows are the same (both have `hidden` rows), so they stay here until down's residual add.
          for (int i = threadIdx.x; i < 2 * ro.pairs; i += kThreads)
            if (2 * ro.pbeg + i < H) xrows[i] = __ldcg(a.x + 2 * ro.pbeg + i);
          __syncthreads();
        },
        [&](int row, float s) {
          const float v = xrows[row - 2 * ro.pbeg] + s;
          xrows[row - 2 * ro.pbeg] = v;
          a.x[row] = v;
        });
    // gate/up of RMSNorm(x).
    run_rows(
        rgu, xs, psum,
        [&] {
          grid_barrier(a.sync);
          fill_rmsnorm(xs, a.x, H, sw.mlp_norm, a.eps);
        },
        [&](int row, float s) { a.gu[row] = s; });
    // down of SiLU(gate)·up, residual add.
    run_rows(
        rdn, xs, psum,
        [&] {
          grid_barrier(a.sync);
          for (int i = threadIdx.x; i < I; i += kThreads) {
            const float g = __ldcg(a.gu + i), u = __ldcg(a.gu + I + i);
            xs[i] = g / (1.0f + expf(-g)) * u;
          }
          __syncthreads();
        },
        [&](int row, float s) { a.x[row] = xrows[row - 2 * rdn.pbeg] + s; });
  }
  if (!next) return;

  // qkv of RMSNorm(x) (x = the token's embedding in the first layer); v rows go straight into the cache.
  int pos = 0;
  run_rows(
      rqkv, xs, psum,
      [&] {
        if (prev) {
          grid_barrier(a.sync);
          pos = *a.pos;
          fill_rmsnorm(xs, a.x, H, sw.attn_norm, a.eps);
        } else {
          griddep_wait();
          pos = *a.pos;
          const bf16* row = a.embed + static_cast<size_t>(*a.token) * H;
          for (int i = threadIdx.x; i < H; i += kThreads) {
            xs[i] = __bfloat162float(row[i]);
            if (blockIdx.x == 0) a.x[i] = xs[i];  // the residual stream starts here
          }
          __syncthreads();
          rmsnorm_in_place(xs, H, sw.attn_norm, a.eps);
        }
      },
      [&](int row, float s) {
        if (row < qd + kvd) {
          a.qkv[row] = s;
        } else {
          const int kvh = (row - qd - kvd) / D, d = (row - qd - kvd) % D;
          a.v_cache[(static_cast<size_t>(kvh) * a.capacity + pos) * D + d] = __float2bfloat16(s);
        }
      });

  // Each q/k head needs all of its D rows for its RMSNorm: the block that completes a head's rows (per-head
  // counter, re-armed by that block) normalises, rotates and stores it.
  __shared__ int fin_heads[kMaxHeadsPerBlock];
  __shared__ int n_fin;
  const int row_lo = 2 * rqkv.pbeg, row_hi = min(2 * (rqkv.pbeg + rqkv.pairs), qd + kvd);
  __threadfence();  // this thread's qkv stores are visible before the block's rows are counted
  if (threadIdx.x == 0) n_fin = 0;
  __syncthreads();
  if (row_hi > row_lo) {
    const int h_lo = row_lo / D, h_hi = (row_hi - 1) / D;
    for (int h = h_lo + static_cast<int>(threadIdx.x); h <= h_hi; h += kThreads) {
      const int rows = min(row_hi, (h + 1) * D) - max(row_lo, h * D);
      unsigned* cnt = a.sync + 1 + h;
      if (atomicAdd(cnt, static_cast<unsigned>(rows)) + rows == static_cast<unsigned>(D)) {
        atomicExch(cnt, 0u);
        fin_heads[atomicAdd(&n_fin, 1)] = h;
      }
    }
  }
  __syncthreads();
  if (n_fin == 0) return;
  __threadfence();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = warp; i < n_fin; i += kWarps) norm_rope_head<D>(a, sw, fin_heads[i], pos, lane);
}

// The shared-memory limit, and the blocks per SM at that limit (outside graph capture: configure_kernels()).
// At least one there means at least one for every launch, which asks for no more.
template <int D>
void configure_one(int* occupancy) {
  GQA_CUDA_CHECK(cudaFuncSetAttribute(decode_layer_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(kMaxSmem)));
  GQA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(occupancy, decode_layer_kernel<D>, kThreads, kMaxSmem));
}

int g_occupancy[2] = {0, 0};  // blocks per SM of the D = 64 / 128 kernels at kMaxSmem

}  // namespace

void configure_decode_layer_kernels() {
  configure_one<64>(&g_occupancy[0]);
  configure_one<128>(&g_occupancy[1]);
}

size_t decode_layer_sync_words(int n_heads, int n_kv) { return 1 + static_cast<size_t>(n_heads + n_kv); }

void decode_layer(const Exec& ex, const DecodeLayerArgs& a) {
  const int D = a.head_dim;
  if (D != 64 && D != 128) fail_unsupported("decode_layer: head_dim must be 64 or 128");
  if (a.hidden % 8 != 0 || a.inter % 8 != 0 || a.n_heads <= 0 || a.n_kv <= 0)
    fail_unsupported("decode_layer: hidden and intermediate must be multiples of 8");
  const bool prev = a.wo != nullptr, next = a.wqkv != nullptr;
  if (!prev && !next) fail_unsupported("decode_layer: nothing to do (no previous-layer and no next-layer weights)");
  if (prev && (!a.wgu || !a.wdown || !a.mlp_norm || (!a.att && !a.att_bf16) || !a.gu))
    fail_unsupported("decode_layer: the previous layer's o_proj/MLP needs wo, wgu, wdown, mlp_norm, att and gu");
  if (next && (!a.attn_norm || !a.q_norm || !a.k_norm || !a.qkv || !a.k_cache || !a.v_cache ||
               (!a.q_out && !a.q_out_bf16) || (!prev && (!a.embed || !a.token))))
    fail_unsupported("decode_layer: the next layer's qkv needs its norms, qkv, q_out and the caches "
                     "(and the embedding and token when there is no previous layer)");
  configure_kernels();
  const int G = ex.sms;
  const int qd = a.n_heads * D, kvd = a.n_kv * D;
  const int ns[4] = {a.hidden, 2 * a.inter, a.hidden, qd + 2 * kvd};
  int max_pairs = 0;
  for (int n : ns) max_pairs = std::max(max_pairs, ((n + 1) / 2 + G - 1) / G);
  if (next && (2 * max_pairs) / D + 2 > kMaxHeadsPerBlock) fail_unsupported("decode_layer: too many heads per block");
  int xs_floats = std::max({a.hidden, a.inter, qd});
  xs_floats = (xs_floats + 3) / 4 * 4;
  const size_t smem = (static_cast<size_t>(xs_floats) + 2 * kWarps * max_pairs + 2 * max_pairs + 2 * a.hidden +
                       2 * D + D / 2) * sizeof(float);
  if (smem > kMaxSmem || xs_floats >= (1 << 16) || max_pairs >= (1 << 15))
    fail_unsupported("decode_layer: input vector too large for shared memory");
  // The grid barriers need every block resident at once: one block per SM, and the occupancy calculator
  // must allow at least that (other kernels' blocks leave without waiting on this one).
  if (g_occupancy[D == 64 ? 0 : 1] < 1)
    fail_unsupported("decode_layer: the kernel cannot be resident on an SM (occupancy 0)");
  xs_floats |= max_pairs << 16;  // the kernel unpacks both
  if (D == 64)
    launch(ex, dim3(G), dim3(kThreads), smem, decode_layer_kernel<64>, a, xs_floats);
  else
    launch(ex, dim3(G), dim3(kThreads), smem, decode_layer_kernel<128>, a, xs_floats);
}

}  // namespace gqa::cuda
