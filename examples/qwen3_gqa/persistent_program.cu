// The CUDA engine's own decode attention as an attention program (ABI v2 device entry, gqa/decode_abi.cuh):
// the engine's built-in persistent step compiles this very file, so this program, linked into the step at run
// time, gives the built-in step's logits. It defines no host entry: prefill runs the engine's attention.
//
// Two ways to attend, chosen by the group (query heads per KV head), both walking the split's tiles in turn:
// - CUDA cores (small groups): a warp holds one key per group of head_dim / DIMS_PER_LANE lanes (DIMS_PER_LANE
//   dims each, 16-byte loads from the tile in shared memory), takes KEY_BATCH keys per lane group at once
//   (independent scores first, then one online-softmax update). At the end the lane groups of a warp are merged
//   with shuffles, and each warp's state is one of the 8 partial states the step merges.
// - Tensor cores (groups of MMA_MIN_GROUP and more, head_dim 128): the work per key grows with the group on CUDA
//   cores (Qwen3-14B's 5 heads: ~4.4 us per 64-key tile, log v24), but not in an mma, whose 16 columns hold
//   every head's query as Q_TERMS bf16 terms (float precision). A pair of warps takes a 16-key window of the
//   tile: both compute its scores (K as the mma's rows), the online softmax with a lazy maximum (a head's
//   states are rescaled only when its maximum grows by more than RESCALE_SLACK in the log2 domain), and each of
//   the two multiplies P (P_TERMS bf16 terms) by its half of V's dims. Each pair's state is one of 4 partial
//   states; the new key joins pair 0's.
// EVOLVE-KNOB lines are values the offline mutator may set.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "gqa/decode_abi.cuh"

// EVOLVE-BLOCK-START
// The step's plan: a split covers at least SPLIT_KEYS keys; K/V KiB per tile; partials polled at once (0: all).
constexpr int SPLIT_KEYS = 64;  // EVOLVE-KNOB values=32,64,128,256,512,1024
constexpr int KV_TILE_KIB = 32;  // EVOLVE-KNOB values=8,16,32,64
constexpr int MERGE_CHUNK = 0;  // EVOLVE-KNOB values=0,1,2,4,8
// Keys per lane group per iteration, for groups of up to 2 query heads and for larger ones.
constexpr int KEY_BATCH_SMALL_GROUP = 4;  // EVOLVE-KNOB values=1,2,4,8
constexpr int KEY_BATCH_LARGE_GROUP = 2;  // EVOLVE-KNOB values=1,2,4
// Dims of a key per lane (head_dim / DIMS_PER_LANE lanes per key).
constexpr int DIMS_PER_LANE = 8;  // EVOLVE-KNOB values=8,16
// Tensor cores for groups of at least this many query heads (head_dim 128; 16: never).
constexpr int MMA_MIN_GROUP = 16;  // EVOLVE-KNOB values=1,2,4,8,16
// bf16 terms of q in the scores' mma and of the probabilities in P.V (at most 16 columns: fewer for large groups).
constexpr int Q_TERMS = 3;  // EVOLVE-KNOB values=2,3
constexpr int P_TERMS = 3;  // EVOLVE-KNOB values=2,3
// How far (log2 domain) a head's scores may exceed the maximum its state is kept at before a rescale.
constexpr int RESCALE_SLACK = 8;  // EVOLVE-KNOB values=0,2,4,8
// The query terms' mma fragments held in registers for the whole split (1), or loaded from shared memory for
// each window (0: 32 registers fewer, twice the shared-memory reads of the scores).
constexpr int Q_IN_REGISTERS = 1;  // EVOLVE-KNOB values=0,1

extern "C" __device__ const gqa_decode_plan_v2 gqa_decode_plan = {SPLIT_KEYS, KV_TILE_KIB, MERGE_CHUNK};

namespace stock_decode {

constexpr int kWarps = GQA_DECODE_THREADS / 32;

__device__ __forceinline__ float lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

// q . k over a lane's C chunks of 8 dims (k as bf16; q as floats, read from shared memory: the query heads of
// larger groups held in registers spilled, and a spill costs an L2 round trip here), summed in dimension order.
template <int C>
__device__ __forceinline__ float dot(const uint4 (&k)[C], const float* q) {
  float s = 0.f;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const float4 a = *reinterpret_cast<const float4*>(q + 8 * c), b = *reinterpret_cast<const float4*>(q + 8 * c + 4);
    s = c == 0 ? lo(k[c].x) * a.x : fmaf(lo(k[c].x), a.x, s);
    s = fmaf(hi(k[c].x), a.y, s);
    s = fmaf(lo(k[c].y), a.z, s);
    s = fmaf(hi(k[c].y), a.w, s);
    s = fmaf(lo(k[c].z), b.x, s);
    s = fmaf(hi(k[c].z), b.y, s);
    s = fmaf(lo(k[c].w), b.z, s);
    s = fmaf(hi(k[c].w), b.w, s);
  }
  return s;
}

template <int C>
__device__ __forceinline__ void unpack(const uint4 (&v)[C], float (&f)[8 * C]) {
#pragma unroll
  for (int c = 0; c < C; ++c) {
    f[8 * c] = lo(v[c].x), f[8 * c + 1] = hi(v[c].x), f[8 * c + 2] = lo(v[c].y), f[8 * c + 3] = hi(v[c].y);
    f[8 * c + 4] = lo(v[c].z), f[8 * c + 5] = hi(v[c].z), f[8 * c + 6] = lo(v[c].w), f[8 * c + 7] = hi(v[c].w);
  }
}

// Online softmax state of one lane group (P dims each) for the G query heads.
template <int G, int P>
struct State {
  float m[G], l[G], o[G][P];
};

// B keys at once (valid[b] false: key b absent): B independent scores first, then one softmax update, so
// that the shuffles and exponentials of different keys overlap instead of forming one long chain. q: the lane's
// dims of query head 0 (head g at q + g * D); scale: the score scale in the log2 domain.
template <int D, int G, int P, int B>
__device__ __forceinline__ void attend_keys(State<G, P>& st, const float* q, float scale, const uint4 (&kk)[B][P / 8],
                                            const uint4 (&vv)[B][P / 8], const bool (&valid)[B]) {
  constexpr int kLanesPerKey = D / P;
  float sc[B][G];
#pragma unroll
  for (int b = 0; b < B; ++b)
#pragma unroll
    for (int g = 0; g < G; ++g) sc[b][g] = dot<P / 8>(kk[b], q + g * D) * scale;
#pragma unroll
  for (int o = kLanesPerKey / 2; o > 0; o >>= 1)
#pragma unroll
    for (int b = 0; b < B; ++b)
#pragma unroll
      for (int g = 0; g < G; ++g) sc[b][g] += __shfl_xor_sync(0xffffffffu, sc[b][g], o);
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float mn = st.m[g];
#pragma unroll
    for (int b = 0; b < B; ++b)
      if (valid[b]) mn = fmaxf(mn, sc[b][g]);
    if (mn == -INFINITY) continue;  // no key yet and none here
    const float cs = exp2f(st.m[g] - mn);
    st.l[g] *= cs;
#pragma unroll
    for (int e = 0; e < P; ++e) st.o[g][e] *= cs;
#pragma unroll
    for (int b = 0; b < B; ++b) {
      if (!valid[b]) continue;
      const float p = exp2f(sc[b][g] - mn);
      st.l[g] += p;
      float v[P];
      unpack<P / 8>(vv[b], v);
#pragma unroll
      for (int e = 0; e < P; ++e) st.o[g][e] = fmaf(p, v[e], st.o[g][e]);
    }
    st.m[g] = mn;
  }
}

// (m, l) weight of a state with max ma in a total with max M; empty states (m = -inf) weigh 0.
__device__ __forceinline__ float weight(float ma, float M) { return ma == -INFINITY ? 0.f : exp2f(ma - M); }

template <int D, int G>
__device__ __forceinline__ int attend(gqa_decode_split* s) {
  constexpr int P = DIMS_PER_LANE > D / 2 ? D / 2 : DIMS_PER_LANE, C = P / 8;
  constexpr int kLanesPerKey = D / P, kKeysPerWarp = 32 / kLanesPerKey;
  constexpr int B = G <= 2 ? KEY_BATCH_SMALL_GROUP : KEY_BATCH_LARGE_GROUP;
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int sub = lane % kLanesPerKey, slot = lane / kLanesPerKey;
  const float* q = s->q + sub * P;
  const float scale = s->scale_log2;
  State<G, P> st;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    st.m[g] = -INFINITY, st.l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < P; ++e) st.o[g][e] = 0.f;
  }
  for (int i = 0; i < s->num_tiles; ++i) {
    const int n = gqa_decode_tile_keys(s, i);
    const uint16_t* K = static_cast<const uint16_t*>(gqa_decode_tile_acquire(s));
    const uint16_t* V = K + static_cast<size_t>(n) * D;
    for (int base = warp * kKeysPerWarp * B; base < n; base += kWarps * kKeysPerWarp * B) {
      uint4 kk[B][C], vv[B][C];
      bool valid[B];
#pragma unroll
      for (int b = 0; b < B; ++b) {
        const int key = base + b * kKeysPerWarp + slot;
        valid[b] = key < n;
#pragma unroll
        for (int c = 0; c < C; ++c) {
          kk[b][c] = vv[b][c] = uint4{};
          if (valid[b]) {
            kk[b][c] = *reinterpret_cast<const uint4*>(K + static_cast<size_t>(key) * D + sub * P + 8 * c);
            vv[b][c] = *reinterpret_cast<const uint4*>(V + static_cast<size_t>(key) * D + sub * P + 8 * c);
          }
        }
      }
      attend_keys<D, G, P, B>(st, q, scale, kk, vv, valid);
    }
    gqa_decode_tile_release(s);
  }
  if (s->has_new_key && warp == 0) {  // the new key, given beside the queries
    uint4 kk[1][C], vv[1][C];
#pragma unroll
    for (int c = 0; c < C; ++c) {
      kk[0][c] = vv[0][c] = uint4{};
      if (slot == 0) {
        kk[0][c] = *reinterpret_cast<const uint4*>(s->new_kv + sub * P + 8 * c);
        vv[0][c] = *reinterpret_cast<const uint4*>(s->new_kv + D + sub * P + 8 * c);
      }
    }
    const bool ok[1] = {slot == 0};
    attend_keys<D, G, P, 1>(st, q, scale, kk, vv, ok);
  }
  // Merge the warp's lane groups, then write its state: one partial state per warp.
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int off = kLanesPerKey; off < 32; off <<= 1) {
      const float mo = __shfl_xor_sync(0xffffffffu, st.m[g], off), lo_ = __shfl_xor_sync(0xffffffffu, st.l[g], off);
      const float M = fmaxf(st.m[g], mo);
      const float wa = weight(st.m[g], M), wb = weight(mo, M);
      st.l[g] = st.l[g] * wa + lo_ * wb;
#pragma unroll
      for (int e = 0; e < P; ++e) {
        const float oo = __shfl_xor_sync(0xffffffffu, st.o[g][e], off);
        st.o[g][e] = st.o[g][e] * wa + oo * wb;
      }
      st.m[g] = M;
    }
  }
  if (slot == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float* dst = s->scratch + (warp * G + g) * (D + 2);
#pragma unroll
      for (int e = 0; e < P; ++e) dst[sub * P + e] = st.o[g][e];
      if (sub == 0) dst[D] = st.m[g], dst[D + 1] = st.l[g];
    }
  }
  return kWarps;
}

}  // namespace stock_decode

namespace mma_decode {

using namespace nvcuda;
constexpr int kWarps = GQA_DECODE_THREADS / 32, kWin = 16, kParts = 4;

// Columns per head of the scores' mma (q's terms) and of P.V's (p's terms): G * terms <= 16.
template <int G>
constexpr int kQTerms = Q_TERMS * G <= 16 ? Q_TERMS : 16 / G;
template <int G>
constexpr int kPTerms = P_TERMS * G <= 16 ? P_TERMS : 16 / G;

// Scratch: the 4 partial states first (written last), then a 1 KiB stage per warp (32-byte aligned, for the
// fragments' loads and stores). The query terms (16 x head_dim bf16: early on, or for the whole split without
// Q_IN_REGISTERS) and in the last tile the V rows of a window that ends past the tile's keys (zero beyond them)
// use the partial states' bytes.
template <int D, int G>
constexpr int kFinalsBytes = kParts * G * (D + 2) * 4;
template <int D, int G>
constexpr int kScratchNeed = kFinalsBytes<D, G> + 31 + kWarps * 1024;
// The tensor-core path is taken where the contract's least scratch (max_parts states) holds it, so that what the
// evaluator's harness runs is what the engine runs.
template <int D, int G>
constexpr bool kUseMma = D == 128 && G >= MMA_MIN_GROUP && G <= 16 &&
                         kScratchNeed<D, G> <= GQA_DECODE_MAX_PARTS * G * (D + 2) * 4 &&
                         kFinalsBytes<D, G> >= 31 + (Q_IN_REGISTERS ? 1 : 2) * 16 * D * 2;  // terms and tail fit

__device__ __forceinline__ char* align32(void* p) {
  return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(p) + 31) & ~static_cast<uintptr_t>(31));
}

// x as n bf16 terms (hi, mid, lo), their sum x to float precision; term t.
__device__ __forceinline__ __nv_bfloat16 term(float x, int t) {
  const __nv_bfloat16 hi = __float2bfloat16_rn(x);
  if (t == 0) return hi;
  const float r = x - __bfloat162float(hi);
  const __nv_bfloat16 mid = __float2bfloat16_rn(r);
  if (t == 1) return mid;
  return __float2bfloat16_rn(r - __bfloat162float(mid));
}

template <int D, int G>
__device__ __forceinline__ int attend(gqa_decode_split* s) {
  constexpr int QT = kQTerms<G>, PT = kPTerms<G>, KS = D / 16, HALF = D / 2, NJ = HALF / 16;
  constexpr int NH = (G + 1) / 2;  // heads per lane: lanes 0-15 take heads 0, 2, ..., lanes 16-31 heads 1, 3, ...
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int pair = warp / 2, half = warp % 2, kk = lane % 16, hp = lane / 16;
  const float scale = s->scale_log2;
  char* const low = align32(s->scratch);  // the query terms, and the tail window's V rows (after them without
                                          // Q_IN_REGISTERS)
  float* const stage = reinterpret_cast<float*>(align32(reinterpret_cast<char*>(s->scratch) + kFinalsBytes<D, G>) +
                                                warp * 1024);
  // The query heads as columns of B (16 dims x 16 columns per k-step, column-major: [column][dim]).
  __nv_bfloat16* qt = reinterpret_cast<__nv_bfloat16*>(low);
  for (int i = tid; i < 16 * D; i += GQA_DECODE_THREADS) {
    const int col = i / D, d = i % D, g = col / QT;
    qt[i] = g < G ? term(s->q[g * D + d], col % QT) : __float2bfloat16_rn(0.f);
  }
  gqa_decode_sync();
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> qf[Q_IN_REGISTERS ? KS : 1];
  if constexpr (Q_IN_REGISTERS) {
#pragma unroll
    for (int k = 0; k < KS; ++k) wmma::load_matrix_sync(qf[k], qt + k * 16, D);
    gqa_decode_sync();  // the query terms' bytes are reused below
  }

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> of[NJ];
#pragma unroll
  for (int j = 0; j < NJ; ++j) wmma::fill_fragment(of[j], 0.f);
  float m[NH], l[NH];
#pragma unroll
  for (int h = 0; h < NH; ++h) m[h] = -INFINITY, l[h] = 0.f;

  for (int i = 0; i < s->num_tiles; ++i) {
    const int n = gqa_decode_tile_keys(s, i);
    const __nv_bfloat16* K = static_cast<const __nv_bfloat16*>(gqa_decode_tile_acquire(s));
    const __nv_bfloat16* V = K + static_cast<size_t>(n) * D;
    for (int win = pair; win * kWin < n; win += kParts) {
      const int key0 = win * kWin, valid = min(kWin, n - key0);
      // Scores: [16 keys][16 columns]; rows past the tile's keys hold whatever follows them (masked below).
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> sc;
      wmma::fill_fragment(sc, 0.f);
#pragma unroll
      for (int k = 0; k < KS; ++k) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ka;
        wmma::load_matrix_sync(ka, K + static_cast<size_t>(key0) * D + k * 16, D);
        if constexpr (Q_IN_REGISTERS) {
          wmma::mma_sync(sc, ka, qf[k], sc);
        } else {
          wmma::load_matrix_sync(qf[0], qt + k * 16, D);
          wmma::mma_sync(sc, ka, qf[0], sc);
        }
      }
      wmma::store_matrix_sync(stage, sc, 16, wmma::mem_row_major);
      __syncwarp();
      float sv[NH], mx[NH];
#pragma unroll
      for (int h = 0; h < NH; ++h) {
        const int g = hp + 2 * h;
        float x = -INFINITY;
        if (g < G && kk < valid) {
          x = 0.f;
#pragma unroll
          for (int t = 0; t < QT; ++t) x += stage[kk * 16 + g * QT + t];
          x *= scale;
        }
        sv[h] = x, mx[h] = x;
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], o));
      }
      // Lazy maximum: a head whose scores rise more than RESCALE_SLACK above its kept maximum takes the window's.
      bool grow = false;
      float f[NH];
#pragma unroll
      for (int h = 0; h < NH; ++h) {
        f[h] = 1.f;
        if (mx[h] > m[h] + static_cast<float>(RESCALE_SLACK)) {
          f[h] = m[h] == -INFINITY ? 0.f : exp2f(m[h] - mx[h]);
          grow = grow || m[h] != -INFINITY;
          m[h] = mx[h], l[h] *= f[h];
        }
      }
      __syncwarp();  // every lane has read its scores from the stage
      if (__any_sync(0xffffffffu, grow)) {  // rescale the heads' columns of P.V's states (through the stage)
        float fa[G];
#pragma unroll
        for (int g = 0; g < G; ++g) fa[g] = __shfl_sync(0xffffffffu, f[g / 2], (g % 2) * 16);
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          wmma::store_matrix_sync(stage, of[j], 16, wmma::mem_row_major);
          __syncwarp();
          for (int e = lane; e < 256; e += 32) {
            const int g = (e % 16) / PT;
            if (g < G) stage[e] *= fa[g];
          }
          __syncwarp();
          wmma::load_matrix_sync(of[j], stage, 16, wmma::mem_row_major);
          __syncwarp();
        }
      }
      // P as B of P.V: [16 columns][16 keys] bf16 (column-major 16 x 16), in the stage's bytes.
      __nv_bfloat16* pb = reinterpret_cast<__nv_bfloat16*>(stage);
#pragma unroll
      for (int h = 0; h < NH; ++h) {
        const int g = hp + 2 * h;
        if (g >= G) continue;
        const float p = sv[h] == -INFINITY ? 0.f : exp2f(sv[h] - m[h]);
        l[h] += p;
#pragma unroll
        for (int t = 0; t < PT; ++t) pb[(g * PT + t) * 16 + kk] = term(p, t);
      }
      for (int c = G * PT + hp; c < 16; c += 2) pb[c * 16 + kk] = __float2bfloat16_rn(0.f);
      __syncwarp();
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> pf;
      wmma::load_matrix_sync(pf, pb, 16);
      // V's rows of the window; where it ends past the tile's keys, copied with zeros after them (the bytes past
      // the keys may hold anything, and 0 * NaN is NaN). Each warp of the pair copies its half of the dims.
      const __nv_bfloat16* vsrc = V + static_cast<size_t>(key0) * D;
      if (valid < kWin) {
        __nv_bfloat16* tail = reinterpret_cast<__nv_bfloat16*>(low) + (Q_IN_REGISTERS ? 0 : 16 * D);
        for (int c = lane; c < kWin * HALF / 8; c += 32) {
          const int r = c / (HALF / 8), d = half * HALF + (c % (HALF / 8)) * 8;
          uint4 w = uint4{0u, 0u, 0u, 0u};
          if (r < valid) w = *reinterpret_cast<const uint4*>(vsrc + static_cast<size_t>(r) * D + d);
          *reinterpret_cast<uint4*>(tail + static_cast<size_t>(r) * D + d) = w;
        }
        __syncwarp();
        vsrc = tail;
      }
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> va;  // V^T: [dims][keys]
        wmma::load_matrix_sync(va, vsrc + half * HALF + j * 16, D);
        wmma::mma_sync(of[j], va, pf, of[j]);
      }
      __syncwarp();  // the stage and the tail are reused by the next window
    }
    gqa_decode_tile_release(s);
  }

  // The new key's score per head (pair 0, float, like the CUDA-core path's dot).
  float sn[G];
#pragma unroll
  for (int g = 0; g < G; ++g) sn[g] = -INFINITY;
  if (s->has_new_key && pair == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float x = 0.f;
#pragma unroll
      for (int e = 0; e < D / 32; ++e) {
        const int d = lane * (D / 32) + e;
        x = fmaf(s->q[g * D + d], __uint_as_float(static_cast<uint32_t>(s->new_kv[d]) << 16), x);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
      sn[g] = x * scale;
    }
  }
  // Each lane's l covers its key column: the head's total over the 16 lanes of its half.
#pragma unroll
  for (int h = 0; h < NH; ++h)
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) l[h] += __shfl_xor_sync(0xffffffffu, l[h], o);
  float mg[G], lg[G], a[G], b[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    mg[g] = __shfl_sync(0xffffffffu, m[g / 2], (g % 2) * 16);
    lg[g] = __shfl_sync(0xffffffffu, l[g / 2], (g % 2) * 16);
    a[g] = 1.f, b[g] = 0.f;
    if (sn[g] != -INFINITY) {  // the new key joins this state
      const float M = fmaxf(mg[g], sn[g]);
      a[g] = mg[g] == -INFINITY ? 0.f : exp2f(mg[g] - M), b[g] = exp2f(sn[g] - M);
      lg[g] = lg[g] * a[g] + b[g], mg[g] = M;
    }
  }
  gqa_decode_sync();  // every warp is done with the query terms' and the tail's bytes: the states go there
  float* out = s->scratch + static_cast<size_t>(pair) * G * (D + 2);
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
    wmma::store_matrix_sync(stage, of[j], 16, wmma::mem_row_major);  // [16 dims][16 columns]
    __syncwarp();
    for (int e = lane; e < 16 * G; e += 32) {
      const int r = e % 16, g = e / 16, d = half * HALF + j * 16 + r;
      float o = 0.f;
#pragma unroll
      for (int t = 0; t < PT; ++t) o += stage[r * 16 + g * PT + t];
      if (b[g] != 0.f) o = o * a[g] + b[g] * __uint_as_float(static_cast<uint32_t>(s->new_kv[D + d]) << 16);
      out[g * (D + 2) + d] = o;
    }
    __syncwarp();
  }
  if (half == 0 && lane < G) out[lane * (D + 2) + D] = mg[lane], out[lane * (D + 2) + D + 1] = lg[lane];
  return kParts;
}

}  // namespace mma_decode

template <int D, int G>
__device__ __forceinline__ int attend(gqa_decode_split* s) {
  if constexpr (mma_decode::kUseMma<D, G>) return mma_decode::attend<D, G>(s);
  return stock_decode::attend<D, G>(s);
}

GQA_DECODE_ENTRY int gqa_decode_attend_v2(gqa_decode_split* s) {
  // head_dim and group are constants of the step's build: the branches not taken vanish once inlined.
  if (s->head_dim == 128) {
    switch (s->group) {
      case 1: return attend<128, 1>(s);
      case 2: return attend<128, 2>(s);
      case 4: return attend<128, 4>(s);
      case 5: return attend<128, 5>(s);
      case 8: return attend<128, 8>(s);
    }
  } else if (s->head_dim == 64) {
    switch (s->group) {
      case 1: return attend<64, 1>(s);
      case 2: return attend<64, 2>(s);
      case 4: return attend<64, 4>(s);
      case 8: return attend<64, 8>(s);
    }
  }
  return 0;  // not a shape of the step: no partial states, which the step refuses
}
// EVOLVE-BLOCK-END
