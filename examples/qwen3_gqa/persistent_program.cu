// The CUDA engine's own decode attention as an attention program (ABI v2 device entry, gqa/decode_abi.cuh):
// the engine's built-in persistent step compiles this very file, so this program, linked into the step at run
// time, gives the built-in step's logits. It defines no host entry: prefill runs the engine's attention.
//
// A split's 256 threads work as 8 warps; a warp holds one key per group of head_dim / DIMS_PER_LANE lanes
// (DIMS_PER_LANE dims each, 16-byte loads from the tile in shared memory), takes KEY_BATCH keys per lane group
// at once (independent scores first, then one online-softmax update), and the warps walk the tile's keys in
// turn. At the end the lane groups of a warp are merged with shuffles, and each warp's state is one of the 8
// partial states the step merges. EVOLVE-KNOB lines are values the offline mutator may set.
#include <cuda_runtime.h>

#include "gqa/decode_abi.cuh"

// EVOLVE-BLOCK-START
// The step's plan: a split covers at least SPLIT_KEYS keys; K/V KiB per tile; partials polled at once (0: the
// step's choice).
constexpr int SPLIT_KEYS = 64;  // EVOLVE-KNOB values=32,64,128,256,512,1024
constexpr int KV_TILE_KIB = 32;  // EVOLVE-KNOB values=8,16,32,64
constexpr int MERGE_CHUNK = 0;  // EVOLVE-KNOB values=0,1,2,4,8
// Keys per lane group per iteration, for groups of up to 2 query heads and for larger ones.
constexpr int KEY_BATCH_SMALL_GROUP = 4;  // EVOLVE-KNOB values=1,2,4,8
constexpr int KEY_BATCH_LARGE_GROUP = 2;  // EVOLVE-KNOB values=1,2,4
// Dims of a key per lane (head_dim / DIMS_PER_LANE lanes per key).
constexpr int DIMS_PER_LANE = 8;  // EVOLVE-KNOB values=8,16

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

GQA_DECODE_ENTRY int gqa_decode_attend_v2(gqa_decode_split* s) {
  // head_dim and group are constants of the step's build: the branches not taken vanish once inlined.
  if (s->head_dim == 128) {
    switch (s->group) {
      case 1: return stock_decode::attend<128, 1>(s);
      case 2: return stock_decode::attend<128, 2>(s);
      case 4: return stock_decode::attend<128, 4>(s);
      case 5: return stock_decode::attend<128, 5>(s);
      case 8: return stock_decode::attend<128, 8>(s);
    }
  } else if (s->head_dim == 64) {
    switch (s->group) {
      case 1: return stock_decode::attend<64, 1>(s);
      case 2: return stock_decode::attend<64, 2>(s);
      case 4: return stock_decode::attend<64, 4>(s);
      case 8: return stock_decode::attend<64, 8>(s);
    }
  }
  return 0;  // not a shape of the step: no partial states, which the step refuses
}
// EVOLVE-BLOCK-END
