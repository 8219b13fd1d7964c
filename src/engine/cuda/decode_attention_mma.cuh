// Decode attention of one split on tensor cores (the persistent step, v12 of docs/engine-cuda.md).
//
// Why: on CUDA cores a 64-key tile costs a split ~1.1 us (shuffles of the dot products, one exponential and
// eight FMAs per key and head, per lane), so at ctx 8192 attention's eight tiles per split are 8-9 us of a
// layer's ~35. Measured (v12): the tiles at 8K get ~0.4 us faster, but the step as a whole is 0.7% (8K) to
// 2.3% (ctx 128) slower on the H200, so this is an option (GQA_CUDA_PERSISTENT_KV_MMA=1), not the default.
//
// How: every warp takes 8 keys of the tile at a time. Scores S = K q as mma.m16n8k16 with A = 8 key rows (and
// the same 8 again in rows 8..15, unused) by ldmatrix, B = the query heads as columns, each head as three bf16
// terms (hi, mid, lo: the GEMV's trick, so the products keep fp32 precision) in columns 4 h .. 4 h + 2; then the
// online softmax per head over the warp's keys, and O += V^T P with A = V^T by ldmatrix.trans and B = P, again
// three bf16 terms per head. The tile arrives through the tensor-map TMA with the 128-byte swizzle, so that the
// eight 256-byte key rows an ldmatrix reads fall into different banks (rows of 256 bytes would all hit the
// same four). Query groups of 1 or 2 heads (4 columns per head, 8 columns in all).
#pragma once

#include <cuda.h>

#include "engine/cuda/decode_step.cuh"

namespace gqa::cuda {
namespace {

// ---- Host: the KV cache ([layers][n_kv][capacity][D] bf16) as a 2D tensor of rows of D elements, read in
// boxes of 64 elements (128 bytes) x `keys` rows with the 128-byte swizzle. False when the driver offers no
// cuTensorMapEncodeTiled or refuses the shape.
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
inline EncodeTiledFn encode_tiled() {
  static const EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return EncodeTiledFn{};
    }
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
}
inline bool kv_tensor_map(CUtensorMap* map, const bf16* cache, size_t rows, int D, int keys) {
  const EncodeTiledFn enc = encode_tiled();
  if (!enc || D % 64 != 0 || keys < 8 || keys > 256 || keys % 8 != 0) return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(D), rows}, strides[1] = {static_cast<cuuint64_t>(D) * 2};
  const cuuint32_t box[2] = {64, static_cast<cuuint32_t>(keys)}, elem[2] = {1, 1};
  return enc(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<bf16*>(cache), dims, strides, box, elem,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The two tensor maps (a kernel parameter: TMA reads them from parameter space).
struct KvMaps {
  CUtensorMap k, v;
};

// ---- Producer: a KV tile of keys_per_tile rows from cache row y (rows past the tensor read as zeros): K's D / 64
// boxes, then V's, each box keys_per_tile rows of 128 bytes, 16-byte chunk c of row r at chunk c ^ (r % 8).
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      ::"r"(smem_u32(dst)), "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(smem_u32(bar))
      : "memory");
}
__device__ __forceinline__ void copy_kv_swizzled(char* dst, const CUtensorMap* kmap, const CUtensorMap* vmap, int D,
                                                 int keys, int y, uint64_t* full) {
  const unsigned box = static_cast<unsigned>(keys) * 128, boxes = D / 64;
  mbar_expect_tx(full, 2 * boxes * box);  // whole boxes, also where the tile has fewer keys
  for (unsigned h = 0; h < boxes; ++h) {
    tma_load_2d(dst + h * box, kmap, 64 * h, y, full);
    tma_load_2d(dst + (boxes + h) * box, vmap, 64 * h, y, full);
  }
}

// ---- Compute warps.
// Term `term` (0: hi, 1: mid, 2: lo) of x's three-bf16 split, as store_vec splits the GEMV inputs.
__device__ __forceinline__ __nv_bfloat16 bf16_term(float x, int term) {
  const __nv_bfloat16 hi = __float2bfloat16(x);
  if (term == 0) return hi;
  const float r = x - __bfloat162float(hi);
  const __nv_bfloat16 mid = __float2bfloat16(r);
  return term == 1 ? mid : __float2bfloat16(r - __bfloat162float(mid));
}
__device__ __forceinline__ uint32_t bf16_pair(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(lo)) | (static_cast<uint32_t>(__bfloat16_as_ushort(hi)) << 16);
}
// Byte offset in a swizzled box group of 16-byte chunk ch (along D) of row r; box = rows * 128 bytes.
__device__ __forceinline__ uint32_t swizzled(int r, int ch, uint32_t box) {
  return (ch >> 3) * box + r * 128 + (((ch & 7) ^ (r & 7)) << 4);
}

// As attend_split (the same inputs and the same per-warp scratch at c.xs), over tiles that copy_kv_swizzled
// loaded.
template <int D, int G>
__device__ __forceinline__ void attend_split_mma(Ctx& c, int first, int end, int step, bool new_key) {
  static_assert(G == 1 || G == 2, "four columns per query head, eight in all");
  static_assert(D % 64 == 0, "whole 128-byte boxes");
  constexpr int KS = D / 16;  // k-steps of the scores
  const int g = c.lane >> 2, t = c.lane & 3;
  const float scale = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;  // scores in the log2 domain
  // B fragments of the scores, computed once per block into shared memory after the warps' scratch (which the
  // merge reuses only after the barrier at the end): for k-step s and lane (g, t), column g is head g / 4, term
  // g % 4 (term 3: zero), rows k = 2t, 2t + 1 and 2t + 8, 2t + 9. Loaded per key group (no registers held).
  constexpr int W = D + 2;
  uint2* qf = reinterpret_cast<uint2*>(c.xs + kConsumerWarps * G * W);
  const int bh = g >> 2, bterm = g & 3;
  const bool bcol = bh < G && bterm < 3;
  for (int i = threadIdx.x; i < KS * 32; i += kConsumers) {
    const int s = i / 32, fg = (i % 32) >> 2, ft = i & 3, fh = fg >> 2, fterm = fg & 3;
    uint32_t w[2] = {0u, 0u};
    if (fh < G && fterm < 3)
      for (int half = 0; half < 2; ++half) {
        const float* x = c.res + fh * D + 16 * s + 2 * ft + 8 * half;
        w[half] = bf16_pair(bf16_term(x[0] * scale, fterm), bf16_term(x[1] * scale, fterm));
      }
    qf[i] = uint2{w[0], w[1]};
  }
  consumer_sync();
  // The lane's head (its score's and its O columns'): columns 2t, 2t + 1 belong to head t / 2.
  float m_run = -INFINITY, l_run = 0.f;
  float o[D / 16][4];
#pragma unroll
  for (int i = 0; i < D / 16; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  mark(c, kMarkFilled);
  const int kpt = c.p.keys_per_tile, mi = c.lane >> 3;
  const uint32_t box = static_cast<uint32_t>(kpt) * 128;
  for (int j = first; j < end; j += step) {
    const int n = min(kpt, c.pos - j * kpt);
    const uint32_t kbase = smem_u32(acquire_stage(c)), vbase = kbase + (D / 64) * box;
    for (int kb = c.warp * 8; kb < n; kb += kConsumerWarps * 8) {
      const int r = kb + (c.lane & 7);  // the row this lane addresses for ldmatrix
      float sc[2][4] = {};              // two accumulator chains
#pragma unroll
      for (int s2 = 0; s2 < KS / 2; ++s2) {  // chunks 4 s2 .. 4 s2 + 3: k-steps 2 s2 and 2 s2 + 1
        uint32_t a[4];
        ldmatrix_x4(a, kbase + swizzled(r, 4 * s2 + mi, box));
        const uint2 b0 = qf[2 * s2 * 32 + c.lane], b1 = qf[(2 * s2 + 1) * 32 + c.lane];
        const uint32_t a0[4] = {a[0], a[0], a[1], a[1]}, a1[4] = {a[2], a[2], a[3], a[3]};
        mma_bf16(sc[0], a0, b0.x, b0.y);
        mma_bf16(sc[1], a1, b1.x, b1.y);
      }
      // Key kb + g, head t / 2: columns 2t, 2t + 1 here, the head's other two in lane t ^ 1.
      float sv = (sc[0][0] + sc[1][0]) + (sc[0][1] + sc[1][1]);
      sv += __shfl_xor_sync(0xffffffffu, sv, 1);
      const bool valid = kb + g < n;
      sv = valid ? sv : -INFINITY;
      float mt = sv;
#pragma unroll
      for (int off = 4; off < 32; off <<= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, off));
      const float mn = fmaxf(m_run, mt);  // finite: key kb is valid
      const float cs = m_run == -INFINITY ? 0.f : exp2f(m_run - mn);
      const float p = valid ? exp2f(sv - mn) : 0.f;
      l_run = l_run * cs + p, m_run = mn;
#pragma unroll
      for (int i = 0; i < D / 16; ++i) o[i][0] *= cs, o[i][1] *= cs, o[i][2] *= cs, o[i][3] *= cs;
      // B = P: column g (head g / 4, term g % 4) at keys 2t, 2t + 1, which lanes 8t + 2(g/4) and 8t + 4 + 2(g/4)
      // hold; keys 8..15 of the mma's k: none.
      const int src = 8 * t + 2 * bh;
      const float pa = __shfl_sync(0xffffffffu, p, src), pb = __shfl_sync(0xffffffffu, p, src + 4);
      const uint32_t pf = bcol ? bf16_pair(bf16_term(pa, bterm), bf16_term(pb, bterm)) : 0u;
      // Keys past the tile's end hold whatever the cache holds there (maybe not numbers): zero their V.
      const uint32_t keep = kb + 8 <= n ? 0xffffffffu
                                        : (kb + 2 * t < n ? 0x0000ffffu : 0u) | (kb + 2 * t + 1 < n ? 0xffff0000u : 0u);
#pragma unroll
      for (int i2 = 0; i2 < D / 32; ++i2) {  // chunks 4 i2 .. 4 i2 + 3: dims 32 i2 .. 32 i2 + 31
        uint32_t v[4];
        ldmatrix_x4_trans(v, vbase + swizzled(r, 4 * i2 + mi, box));
        const uint32_t a0[4] = {v[0] & keep, v[1] & keep, 0u, 0u}, a1[4] = {v[2] & keep, v[3] & keep, 0u, 0u};
        mma_bf16(o[2 * i2], a0, pf, 0u);
        mma_bf16(o[2 * i2 + 1], a1, pf, 0u);
      }
    }
    release_stage(c);
  }
  // The warp's state per head into the scratch, as attend_split leaves it: o[D], m, l at (warp * G + h) * W.
  float* scr = c.xs;
  const int head = t >> 1;
  float l_sum = l_run;
#pragma unroll
  for (int off = 4; off < 32; off <<= 1) l_sum += __shfl_xor_sync(0xffffffffu, l_sum, off);
#pragma unroll
  for (int i = 0; i < D / 16; ++i)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float v = o[i][2 * half] + o[i][2 * half + 1];  // the lane's two columns of head t / 2
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      if ((t & 1) == 0 && head < G) scr[(c.warp * G + head) * W + 16 * i + g + 8 * half] = v;
    }
  if (g == 0 && (t & 1) == 0 && head < G) {
    scr[(c.warp * G + head) * W + D] = m_run;
    scr[(c.warp * G + head) * W + D + 1] = l_sum;
  }
  __syncwarp();
  if (new_key && c.warp == 0) {  // the new key (attention_inputs), in fp32 on warp 0's state
    const bf16* kv_new = reinterpret_cast<const bf16*>(c.res + G * D);
#pragma unroll
    for (int h = 0; h < G; ++h) {
      float* dst = scr + h * W;
      float s = 0.f;
#pragma unroll
      for (int e = 0; e < D / 32; ++e) {
        const int d = c.lane + 32 * e;
        s += c.res[h * D + d] * scale * __bfloat162float(kv_new[d]);
      }
      s = warp_sum(s);
      const float m0 = dst[D], l0 = dst[D + 1], M = fmaxf(m0, s);
      const float wa = merge_weight(m0, M), wb = exp2f(s - M);
#pragma unroll
      for (int e = 0; e < D / 32; ++e) {
        const int d = c.lane + 32 * e;
        dst[d] = dst[d] * wa + wb * __bfloat162float(kv_new[D + d]);
      }
      __syncwarp();
      if (c.lane == 0) dst[D] = M, dst[D + 1] = l0 * wa + wb;
      __syncwarp();
    }
  }
  mark(c, kMarkComputed);
  consumer_sync();
}

}  // namespace
}  // namespace gqa::cuda
