// Stock causal prefill attention on the tensor cores (head_dim 128): flash attention in the FA2 manner with
// mma.sync.m16n8k16 (bf16 in, float accumulate) and ldmatrix.
//
// A block owns kBM consecutive query rows of one query head, 4 warps. kBM = 128 (each warp 32 rows, two m16
// tiles): every K/V fragment a warp reads from shared memory feeds two MMAs (shared-memory bandwidth, not the
// tensor cores, is what limits mma.sync flash attention on Hopper). kBM = 64 (each warp 16 rows, one m16
// tile, its Q fragments held in registers): twice the blocks for short prefills and prefill chunks, where
// 128-row blocks leave most SMs idle (512 queries × 16 heads = 64 blocks), at the price of more shared-memory
// reads per MMA. The launcher picks 64 when 128-row blocks would be fewer than 2 per SM. The block's Q tile
// (bf16) stays in shared memory; keys and values of its KV head stream through in tiles of kBN = 64,
// double-buffered with cp.async (the next tile is in flight while the current one is computed). Per tile and
// warp: S = Q·Kᵀ (32 or 16 rows × 32-key steps, float, registers), causal mask only on steps that reach past
// the warp's first query, online softmax in the log2 domain (scale·log2e applied to the float scores), P
// rounded to bf16 in registers and used as the A operand of O += P·V (V fragments through ldmatrix.trans). Rows of 128 bf16 = 16 chunks of 16 bytes are
// stored with chunk c of row r at c ^ (r & 7): ldmatrix phases (8 rows, one chunk each) and cp.async
// stores are free of bank conflicts. Keys past the block's last query are zero-filled (cp.async src-size
// 0), so NaN or garbage past the valid cache never reaches the MMAs. Grid (heads, query blocks) with the
// heaviest (latest) query blocks first and the query heads of one KV head adjacent (L2 reuse of K/V).
// The output goes through shared memory (the warp's own Q rows) for 16-byte stores.
#include <cstdint>
#include <cstdlib>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

constexpr int kD = 128;  // head_dim (the only one this kernel serves)
constexpr int kBN = 64;  // keys per tile
constexpr int kWarps = 4, kThreads = kWarps * 32;
constexpr int kSN = 32;  // keys per online-softmax step (a K/V tile is kBN / kSN steps)
constexpr int kSNT = kSN / 8;            // n8 tiles of a score sub-tile
constexpr int kDT = kD / 8;              // n8 tiles of the output (16)
constexpr int kChunks = kD / 8;          // 16-byte chunks per row (16)
constexpr int kTileElems = kBN * kD;
// Q, K×2, V×2: 96 KiB (kBM 128) or 80 KiB (kBM 64); 2 blocks per SM either way.
template <int kBM>
constexpr size_t kSmemBytes = sizeof(bf16) * (static_cast<size_t>(kBM) * kD + 4 * kTileElems);

static_assert(kSN % 16 == 0 && kBN % kSN == 0 && kD % 16 == 0, "tile shapes");
static_assert((kBN * kChunks) % kThreads == 0, "load split");

// Element offset of (row, 16-byte chunk) in a swizzled [rows][128] bf16 tile.
__device__ __forceinline__ int swz(int row, int chunk) { return row * kD + ((chunk ^ (row & 7)) << 3); }

// 16 bytes global -> shared, bypassing L1; src_bytes 0 writes zeros (nothing is read).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ float fast_exp2(float x) {  // ex2.approx: exp2(-inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Two floats as a bf16x2 word (lo at the lower address / lower column).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <int kBM, bool kFloatQ>
__global__ void __launch_bounds__(kThreads, 2) prefill_mma_kernel(const __grid_constant__ PrefillAttentionArgs a) {
  constexpr int kWarpRows = kBM / kWarps;  // 32 or 16
  constexpr int kMT = kWarpRows / 16;      // m16 tiles per warp (2 or 1)
  constexpr bool kQRegs = kMT == 1;        // one m16 tile: its Q fragments live in registers (32 words)
  static_assert(kWarpRows % 16 == 0 && (kBM * kChunks) % kThreads == 0, "tile shapes");
  extern __shared__ uint4 smem_mma[];
  bf16* qs = reinterpret_cast<bf16*>(smem_mma);  // [kBM][kD] swizzled
  bf16* ks = qs + kBM * kD;                      // [2][kBN][kD]
  bf16* vs = ks + 2 * kTileElems;                // [2][kBN][kD]

  const int h = blockIdx.x, kvh = h / (a.n_heads / a.n_kv);
  const int t0 = (gridDim.y - 1 - blockIdx.y) * kBM;  // latest (heaviest) query blocks first
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  griddep_launch_dependents();
  griddep_wait();
  const int pos0 = *a.pos;
  const int rows = min(kBM, a.T - t0);             // valid query rows of this block
  const int last_key = pos0 + t0 + rows - 1;       // the block's last query attends keys 0..last_key
  const int n_tiles = last_key / kBN + 1;
  const size_t q_row_stride = static_cast<size_t>(a.n_heads) * kD;
  const bf16* K = a.k_cache + static_cast<size_t>(kvh) * a.capacity * kD;
  const bf16* V = a.v_cache + static_cast<size_t>(kvh) * a.capacity * kD;

  // Q tile -> shared (bf16), rows past T zero.
#pragma unroll
  for (int it = 0; it < kBM * kChunks / kThreads; ++it) {
    const int i = tid + it * kThreads, r = i / kChunks, c = i % kChunks;
    const int t = t0 + r;
    bf16* dst = qs + swz(r, c);
    if constexpr (kFloatQ) {
      uint4 packed = make_uint4(0, 0, 0, 0);
      if (r < rows) {
        const float4* src = reinterpret_cast<const float4*>(a.q + t * q_row_stride + static_cast<size_t>(h) * kD + c * 8);
        const float4 x = src[0], y = src[1];
        packed = make_uint4(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w), pack_bf16(y.x, y.y), pack_bf16(y.z, y.w));
      }
      *reinterpret_cast<uint4*>(dst) = packed;
    } else {
      const bool ok = r < rows;
      const bf16* src = a.q_bf16 + (ok ? t * q_row_stride + static_cast<size_t>(h) * kD + c * 8 : 0);
      cp_async16(smem_u32(dst), src, ok ? 16 : 0);
    }
  }

  // K/V tile `tile` -> stage `st`; keys past last_key zero-filled (from a clamped, valid address). Thread
  // tid copies chunk tid % 16 of rows tid / 16 + 8·it: the same swizzle for every it.
  const int lr = tid / kChunks, lc = tid % kChunks;
  const uint32_t kv_dst = smem_u32(ks) + 2 * swz(lr, lc);
  auto load_kv = [&](int tile, int st) {
    const int k0 = tile * kBN + lr;
    const uint32_t kd = kv_dst + st * (kTileElems * 2), vd = kd + 2 * (kTileElems * 2);
#pragma unroll
    for (int it = 0; it < kBN * kChunks / kThreads; ++it) {
      const int key = k0 + it * (kThreads / kChunks);
      const size_t off = static_cast<size_t>(min(key, last_key)) * kD + lc * 8;
      const int bytes = key <= last_key ? 16 : 0;
      cp_async16(kd + it * (kThreads / kChunks) * kD * 2, K + off, bytes);
      cp_async16(vd + it * (kThreads / kChunks) * kD * 2, V + off, bytes);
    }
  };
  load_kv(0, 0);
  cp_async_commit();  // group 0: Q (bf16 path) and tile 0

  const float sc = a.scale * 1.4426950408889634f;  // scores to the log2 domain
  const int wrow0 = warp * kWarpRows;               // the warp's first row in the block
  const int wq_first = pos0 + t0 + wrow0;           // position of that row
  // position of the warp's last valid row; -1 when it has none (then it computes nothing)
  const int wq_last = wrow0 < rows ? pos0 + t0 + min(wrow0 + kWarpRows, rows) - 1 : -1;
  const int g = lane >> 2, tq = lane & 3;           // mma fragment coordinates: row in 8, column pair

  float o[kMT][kDT][4];
  float m[kMT][2], l[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int j = 0; j < kDT; ++j) o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.f;
  }

  // Per-lane ldmatrix addresses (see the fragment layouts of m16n8k16). Every row a lane addresses is
  // congruent to lane mod 8, so the swizzled byte offset of chunk 2·kk + c within the row is
  // ((c ^ (lane & 7)) << 4) ^ (kk << 5): a per-lane constant XOR a compile-time one.
  const int x7 = lane & 7;
  // Q (A, x4: rows 0-15 × k 0-7 / 8-15 of an m16 tile)
  const uint32_t q_addr = smem_u32(qs) + (wrow0 + (lane & 15)) * (kD * 2), q_x = ((lane >> 4) ^ x7) << 4;
  // K (B, x4: keys 0-7 / 8-15 of a 16-key pair of n-tiles × k 0-7 / 8-15)
  const uint32_t k_row = (((lane >> 4) << 3) + x7) * (kD * 2), k_x = (((lane >> 3) & 1) ^ x7) << 4;
  // V (B, x4 trans: keys 0-7 / 8-15 × dims of two n-tiles)
  const uint32_t v_row = ((((lane >> 3) & 1) << 3) + x7) * (kD * 2), v_x = ((lane >> 4) ^ x7) << 4;

  uint32_t qreg[kQRegs ? kD / 16 : 1][4];  // kQRegs: the warp's Q tile as A fragments, k steps of 16
  for (int j = 0; j < n_tiles; ++j) {
    if (j + 1 < n_tiles) load_kv(j + 1, (j + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();  // tile j (and Q) landed for this thread
    __syncthreads();     // ... and for every thread
    if constexpr (kQRegs) {
      if (j == 0) {
#pragma unroll
        for (int kk = 0; kk < kD / 16; ++kk) ldmatrix_x4(qreg[kk], q_addr + (q_x ^ (kk << 5)));
      }
    }

    // The tile in sub-tiles of kSN keys, each a full online-softmax step (fewer live score registers).
    const uint32_t kst0 = smem_u32(ks + (j & 1) * kTileElems) + k_row, vst0 = smem_u32(vs + (j & 1) * kTileElems) + v_row;
#pragma unroll 1
    for (int sub = 0; sub < kBN / kSN; ++sub) {
      const int k0 = j * kBN + sub * kSN;
      if (k0 > wq_last) break;  // warp-uniform: no valid row of the warp sees a key of the rest of the tile
      const uint32_t kst = kst0 + sub * kSN * (kD * 2), vst = vst0 + sub * kSN * (kD * 2);
      float s[kMT][kSNT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int n = 0; n < kSNT; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;

      // S = Q · Kᵀ
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        uint32_t qa[kMT][4];
        if constexpr (kQRegs) {
#pragma unroll
          for (int e = 0; e < 4; ++e) qa[0][e] = qreg[kk][e];
        } else {
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt)
            ldmatrix_x4(qa[mt], q_addr + mt * 16 * (kD * 2) + (q_x ^ (kk << 5)));
        }
        const uint32_t kaddr = kst + (k_x ^ (kk << 5));
#pragma unroll
        for (int np = 0; np < kSNT / 2; ++np) {
          uint32_t kb[4];
          ldmatrix_x4(kb, kaddr + np * 16 * (kD * 2));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            mma_bf16(s[mt][2 * np], qa[mt], kb[0], kb[1]);
            mma_bf16(s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
          }
        }
      }

      // Causal mask where the sub-tile reaches past the warp's first query.
      if (k0 + kSN - 1 > wq_first) {
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
          for (int n = 0; n < kSNT; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int key = k0 + n * 8 + 2 * tq + (e & 1);
              const int qpos = wq_first + mt * 16 + g + (e >> 1) * 8;
              if (key > qpos) s[mt][n][e] = -INFINITY;
            }
      }

      // Online softmax (rows g and g + 8 of each m tile; a row's scores live in the 4 lanes of a quad). The
      // output is rescaled only when some row of the warp has a new maximum (rare past the first keys).
      float corr[kMT][2];
      bool rescale = false;
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          float mx = m[mt][hh];
#pragma unroll
          for (int n = 0; n < kSNT; ++n) mx = fmaxf(mx, fmaxf(s[mt][n][2 * hh], s[mt][n][2 * hh + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float msc = mx == -INFINITY ? 0.f : mx * sc;  // a row with nothing visible yet stays at zero
          corr[mt][hh] = fast_exp2(m[mt][hh] * sc - msc);     // m = -inf: 0 (nothing accumulated yet)
          rescale |= mx != m[mt][hh];
          m[mt][hh] = mx;
          float sum = 0.f;
#pragma unroll
          for (int n = 0; n < kSNT; ++n) {
            const float p0 = fast_exp2(fmaf(s[mt][n][2 * hh], sc, -msc));
            const float p1 = fast_exp2(fmaf(s[mt][n][2 * hh + 1], sc, -msc));
            s[mt][n][2 * hh] = p0, s[mt][n][2 * hh + 1] = p1;
            sum += p0 + p1;
          }
          l[mt][hh] = l[mt][hh] * corr[mt][hh] + sum;  // per-lane partial row sum, reduced over the quad at the end
        }
      if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
          for (int d = 0; d < kDT; ++d) {
            o[mt][d][0] *= corr[mt][0], o[mt][d][1] *= corr[mt][0];
            o[mt][d][2] *= corr[mt][1], o[mt][d][3] *= corr[mt][1];
          }
      }

      // O += P · V
#pragma unroll
      for (int kc = 0; kc < kSN / 16; ++kc) {
        uint32_t pa[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          pa[mt][0] = pack_bf16(s[mt][2 * kc][0], s[mt][2 * kc][1]);
          pa[mt][1] = pack_bf16(s[mt][2 * kc][2], s[mt][2 * kc][3]);
          pa[mt][2] = pack_bf16(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
          pa[mt][3] = pack_bf16(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < kDT / 2; ++dp) {
          uint32_t vb[4];
          ldmatrix_x4_trans(vb, vst + kc * 16 * (kD * 2) + (v_x ^ (dp << 5)));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            mma_bf16(o[mt][2 * dp], pa[mt], vb[0], vb[1]);
            mma_bf16(o[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
          }
        }
      }
    }
    __syncthreads();  // stage j & 1 is free for tile j + 2
  }
  cp_async_wait<0>();  // (only empty groups can be pending here)

  // Normalise, stage the warp's rows as bf16 in its own (no longer read) Q rows, store 16 bytes at a time.
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float sum = l[mt][hh];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      const int r = wrow0 + mt * 16 + g + hh * 8;
#pragma unroll
      for (int d = 0; d < kDT; ++d) {
        // dims 8d + 2tq, +1 sit in chunk d at word tq
        uint32_t* dst = reinterpret_cast<uint32_t*>(qs + swz(r, d)) + tq;
        *dst = pack_bf16(o[mt][d][2 * hh] * inv, o[mt][d][2 * hh + 1] * inv);
      }
    }
  __syncwarp();
#pragma unroll
  for (int it = 0; it < kWarpRows * kChunks / 32; ++it) {
    const int i = lane + it * 32, r = wrow0 + i / kChunks, c = i % kChunks;
    if (r < rows)
      *reinterpret_cast<uint4*>(a.out + (t0 + r) * q_row_stride + static_cast<size_t>(h) * kD + c * 8) =
          *reinterpret_cast<const uint4*>(qs + swz(r, c));
  }
}

template <int kBM, bool kFloatQ>
void configure_one() {
  GQA_CUDA_CHECK(cudaFuncSetAttribute(prefill_mma_kernel<kBM, kFloatQ>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(kSmemBytes<kBM>)));
}

template <int kBM>
void launch_rows(const Exec& ex, const PrefillAttentionArgs& a) {
  const dim3 grid(a.n_heads, (a.T + kBM - 1) / kBM), block(kThreads);
  if (a.q_bf16)
    launch(ex, grid, block, kSmemBytes<kBM>, prefill_mma_kernel<kBM, false>, a);
  else
    launch(ex, grid, block, kSmemBytes<kBM>, prefill_mma_kernel<kBM, true>, a);
}

}  // namespace

void configure_prefill_mma_kernels() {
  configure_one<128, true>();
  configure_one<128, false>();
  configure_one<64, true>();
  configure_one<64, false>();
}

bool attention_prefill_mma_supported(int head_dim) { return head_dim == kD; }

int attention_prefill_mma_rows(const Exec& ex, const PrefillAttentionArgs& a) {
  if (a.mma_rows == 64 || a.mma_rows == 128) return a.mma_rows;
  // 128-row blocks unless they would be fewer than 2 per SM (the kernel's occupancy): then 64-row blocks,
  // twice as many (e.g. 512 queries × 16 heads: 64 blocks of 128 rows, 128 of 64, on 132 SMs).
  const long blocks128 = static_cast<long>(a.n_heads) * ((a.T + 127) / 128);
  return blocks128 < 2L * ex.sms ? 64 : 128;
}

void attention_prefill_mma(const Exec& ex, const PrefillAttentionArgs& a) {
  if (a.head_dim != kD) fail_unsupported("attention_prefill_mma: head_dim must be 128");
  if (a.n_kv <= 0 || a.n_heads % a.n_kv != 0) fail_unsupported("attention_prefill: n_heads must be a multiple of n_kv");
  if ((a.q == nullptr) == (a.q_bf16 == nullptr)) fail_unsupported("attention_prefill_mma: exactly one of q, q_bf16");
  if (a.mma_rows != 0 && a.mma_rows != 64 && a.mma_rows != 128)
    fail_unsupported("attention_prefill_mma: mma_rows must be 0, 64 or 128");
  if (a.T <= 0) return;
  configure_kernels();
  if (attention_prefill_mma_rows(ex, a) == 64)
    launch_rows<64>(ex, a);
  else
    launch_rows<128>(ex, a);
}

}  // namespace gqa::cuda
