// The device pieces of the persistent decode step (decode_persistent.cu holds the kernel and its launch):
// the ring of shared-memory stages that a producer warp fills with bulk copies, the {value, tag} words that
// blocks pass activations in, the input vector as three bf16 terms, the tensor-core GEMV over a block's tiles,
// and the online-softmax update of attention. decode_persistent.cu's header explains the design.
#pragma once

#include <algorithm>
#include <type_traits>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {
namespace {
// Compute warps, and the producer warp. 8 compute warps keep the 168-register cap; 11 and 15 (the same cap) and
// 7 (255 registers) measured slower on the H200 (v13, v14 of docs/engine-cuda-log.md).
constexpr int kConsumerWarps = 8;
constexpr int kConsumers = 32 * kConsumerWarps, kThreads = kConsumers + 32;
// Longest input vector held in registers at once (hidden, the RMSNorm inputs) of the two builds of the step: the
// narrow one's vectors fill 3 float4 per compute thread (Qwen3-0.6B), the wide one's 6 (Qwen3-1.7B). Registers
// grow with the width, so each model gets the narrowest build that holds its longest input. Longer plain inputs
// (intermediate, q_dim) are read in parts (read_input), up to kMaxLongInput, the engine's limit: their three bf16
// terms in shared memory (72 KiB at 12,288, Qwen3-8B; 102 KiB at 17,408, 14B; 150 KiB at 25,600, 32B) must leave
// room for two ring stages of at least 32 KiB within the GPU's shared memory per block (Hopper: 227 KiB), which
// the plan checks (decode_persistent.cu).
constexpr int kNarrowVec = 3, kWideVec = 6;
constexpr int kMaxInput = kWideVec * 4 * kConsumers;
constexpr int kMaxLongInput = 32768;
// A ring stage (PersistentDecodeArgs::tile_kib KiB and room for the padding) holds one KV tile (kv_tile_kib) or
// one weight tile: rows of k bf16 each followed by 16 bytes of padding (row_pitch), so that the 8 rows an
// ldmatrix reads fall into different banks.
constexpr int kRowPad = 8;
constexpr int kMaxTileRows = 128;       // rows (pairs: both halves) per weight tile: 8 blocks of 16 for the mma
constexpr int kStagePadBytes = kMaxTileRows * 2 * kRowPad;
// The GEMV's partial sums of one tile: 16 per (block of rows, warp of it), at most max(warps, 8 blocks) of them.
constexpr int kPartFloats = 16 * (kConsumerWarps > kMaxTileRows / 16 ? kConsumerWarps : kMaxTileRows / 16);
constexpr int kMaxStages = 5;
constexpr int kMaxSplits = 16;          // attention splits per KV head
inline int persistent_decode_max_splits(int sms, int n_kv) { return std::clamp(sms / std::max(n_kv, 1), 1, kMaxSplits); }
enum Phase { kQkv = 0, kAtt, kO, kGu, kDn, kPhases };
constexpr int kTraceFields = 6;
static_assert(kPhases == kPersistentPhases);
// PersistentDecodeArgs::sync: the step number, the exit count, then (dynamic tiles) one claim counter per weight
// matrix: 4 per layer (qkv, o, gate/up, down), then lm_head's.
constexpr int kSyncStep = 0, kSyncExit = 1, kSyncWords = 2;
__host__ __device__ __forceinline__ int sync_words(int layers) { return kSyncWords + 4 * layers + 1; }

// Words per attention split in PersistentDecodeArgs::ll's partials: group (head_dim + 2) (o, m, l per query
// head), padded to whole 4-word groups of ll_read, so that a merging split reads several splits' partials at once
// whatever the group (Qwen3-14B's 5 heads: 650 words, padded to 652; the padding is written with the tag too).
__host__ __device__ constexpr int part_stride(int group, int head_dim) { return (group * (head_dim + 2) + 3) / 4 * 4; }

// Where each activation lives in PersistentDecodeArgs::ll (8-byte {value, tag} words); host and device.
struct LLLayout {
  size_t xo, xd, qkv, att, h, part, total;
};
__host__ __device__ __forceinline__ LLLayout ll_layout(int hidden, int inter, int n_heads, int n_kv, int head_dim,
                                                       int max_splits) {
  const size_t qd = static_cast<size_t>(n_heads) * head_dim, kvd = static_cast<size_t>(n_kv) * head_dim;
  LLLayout o{};
  o.xo = 0;
  o.xd = o.xo + hidden;
  o.qkv = o.xd + hidden;
  o.att = o.qkv + qd + 2 * kvd;
  o.h = o.att + qd;
  o.part = o.h + inter;  // [n_kv][splits][part_stride]: a split's o, m, l per query head ([group][head_dim + 2])
  o.total = o.part + static_cast<size_t>(max_splits) * n_kv * part_stride(n_kv > 0 ? n_heads / n_kv : 0, head_dim);
  return o;
}

// ---- PTX: shared-memory addresses, mbarriers, bulk copies.
__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
}
// Waits for the phase of the given parity.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  unsigned done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
        : "=r"(done)
        : "r"(smem_u32(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// Bulk copy global -> shared (TMA), completing `bytes` of the barrier's expected transaction count.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(smem_u32(dst)), "l"(src), "r"(bytes), "r"(smem_u32(bar))
               : "memory");
}
// Barrier of the compute warps (the producer warp runs its own loop).
__device__ __forceinline__ void consumer_sync() { asm volatile("bar.sync 1, %0;" ::"n"(kConsumers) : "memory"); }


__device__ __forceinline__ float consumer_sum(float v, float* red) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  v = warp_sum(v);
  consumer_sync();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  consumer_sync();
  return warp_sum(lane < kConsumerWarps ? red[lane] : 0.f);
}

// ---- The schedule: which tiles of which matrix a block owns. Both the producer and the compute warps walk it.
struct Mat {
  const bf16* w;
  int n, k, rows;  // rows per tile
  // Pairs (gate/up): "row" i stands for rows i and n + i of w; a tile holds its rows' first halves, then
  // their second halves, so the tile's consumer can combine the two (silu(gate) * up) at once.
  bool pairs;
};
// A block's tiles of a matrix: block, block + G, block + 2G, ... so that at any moment all blocks read
// neighbouring tiles (one window of the matrix, as a grid of GEMV blocks does). Each block reading its own
// contiguous range instead streamed at about half the bandwidth.
struct Tiles {
  int first, end, step;
  __device__ int count() const { return first < end ? (end - first + step - 1) / step : 0; }
};
__device__ __forceinline__ int tiles_of(const Mat& m) { return (m.n + m.rows - 1) / m.rows; }
__device__ __forceinline__ Tiles block_tiles(const Mat& m) {
  return Tiles{static_cast<int>(blockIdx.x), tiles_of(m), static_cast<int>(gridDim.x)};
}

struct Plan {  // launch constants, computed on the host
  int rows_qkv, rows_o, rows_gu, rows_dn, rows_lm;  // rows (gate/up: row pairs) per tile
  int stages, stage_bytes, keys_per_tile, max_splits, res_floats;
  unsigned poll_ns;
  int merge_chunk;  // splits' partials the merging split polls at once (persistent step; < 2: one at a time)
  int xs_bytes;     // bytes at Ctx::xs: a GEMV input, or attention's scratch (the device entry's partial states)
  int fma_rows;     // weight tiles of at most this many rows (pairs: both halves) take gemv_tile_fma, not the mma
  int dynamic;      // weight tiles claimed at run time (claim_tile), not dealt round robin (block_tiles)
};


// ---- Loads: one producer warp per block (its lane 0) issues a bulk copy (TMA) of each tile the block will
// use, in the order the tiles are consumed, as soon as a ring stage is free; the compute warps never issue
// loads, so memory back-pressure never stalls them (it did when they issued cp.async themselves).
struct Ring {
  char* stages;
  uint64_t *full, *empty;
  int n, bytes;  // stages, bytes per stage
  int* tile;     // [n] dynamic tiles: the weight tile each stage holds (-1: the block's last of the phase)
};

enum LoadPhase { kLoadQkv = 0, kLoadAtt, kLoadO, kLoadGu, kLoadDn, kLoadLm, kLoadDone };
__host__ __device__ __forceinline__ int row_pitch(int k) { return k + kRowPad; }  // bf16 elements

// A KV tile: n keys of K, then their V, contiguous.
__device__ __forceinline__ void copy_kv(char* dst, const char* k, const char* v, unsigned bytes, uint64_t* full) {
  mbar_expect_tx(full, 2 * bytes);
  bulk_load(dst, k, bytes, full);
  bulk_load(dst + bytes, v, bytes, full);
}
// A weight tile: rows [row0, row0 + nr) of m (pairs: then the rows n + row0 ...), one copy per padded row.
__device__ __forceinline__ void copy_rows(char* dst, const Mat& m, int row0, int nr, uint64_t* full) {
  const unsigned bytes = static_cast<unsigned>(m.k) * 2, pitch = static_cast<unsigned>(row_pitch(m.k)) * 2;
  const int halves = m.pairs ? 2 : 1;
  mbar_expect_tx(full, bytes * nr * halves);
  for (int h = 0; h < halves; ++h)
    for (int r = 0; r < nr; ++r)
      bulk_load(dst + static_cast<size_t>(h * nr + r) * pitch,
                m.w + (static_cast<size_t>(h) * m.n + row0 + r) * m.k, bytes, full);
}

// Where the producer is in a step's schedule of tiles (the layouts' pumps walk their own schedules with it).
struct Loader {
  int l = 0, phase = kLoadQkv;  // where in the schedule the next tile is
  int t = 0, t1 = -1, dt = 1;   // next tile, end and stride of the phase's tiles (t1 < 0: not entered yet)
  int pos = -1;                 // the step's position, once known (the attention tiles depend on it)
  unsigned step = 0;            // dynamic tiles: the step's number (1, 2, ...), for claim_tile
  // The stage the next tile goes to, and how many times the ring has been filled before: the tile count
  // modulo and divided by ring.n, kept as counters (a division by the runtime ring size is ~20 dependent
  // instructions, on the chain when a freed stage is refilled).
  int slot = 0;
  unsigned laps = 0;
};
// After issuing a tile into stage ld.slot.
__device__ __forceinline__ void issued_one(Loader& ld, const Ring& ring) {
  if (++ld.slot == ring.n) ld.slot = 0, ++ld.laps;
}
// The phase after ld's: qkv, att, o, gu, dn per layer, then lm_head, then done.
__device__ __forceinline__ void next_load_phase(Loader& ld, int layers) {
  ld.t1 = -1;
  if (ld.phase == kLoadLm) {
    ld.phase = kLoadDone;
  } else if (ld.phase == kLoadDn) {
    ld.phase = ++ld.l < layers ? kLoadQkv : kLoadLm;
  } else {
    ++ld.phase;
  }
}
// The ring stage the next tile goes to, once the compute warps have freed it; its full barrier is ring.full[*s].
__device__ __forceinline__ char* free_stage(const Ring& ring, const Loader& ld, int* s) {
  *s = ld.slot;
  if (ld.laps > 0) mbar_wait(&ring.empty[*s], (ld.laps + 1) & 1);
  return ring.stages + static_cast<size_t>(*s) * ring.bytes;
}

// Dynamic tiles (Plan::dynamic): the producer of each block claims the phase's next tile from a counter shared by
// all blocks when it has a stage to put it in, so a block that streams faster takes more tiles and the phase
// ends with every block's last tile, not with the block dealt the most (a phase lasts as long as its slowest
// block: v22 of docs/engine-cuda-log.md). Every block claims until a claim comes back past the last tile, so a
// step adds tiles + blocks to each counter, and the counters are never reset: claim k of step s is tile
// k - (s - 1) (tiles + blocks), in unsigned arithmetic (exact across the counter's wrap). The step number is
// read before griddepcontrol.wait: the previous step's kernel, which wrote it, never lets a kernel after it
// start early (it does not trigger its dependents), so it has finished by then.
__device__ __forceinline__ int claim_tile(const PersistentDecodeArgs& a, const Loader& ld, int tiles) {
  const int m = ld.phase == kLoadLm ? 4 * a.layers : 4 * ld.l + (ld.phase == kLoadQkv ? 0 : ld.phase - kLoadAtt);
  const unsigned raw = atomicAdd(a.sync + kSyncWords + m, 1u);
  const unsigned k = raw - (ld.step - 1u) * static_cast<unsigned>(tiles + static_cast<int>(gridDim.x));
  return static_cast<int>(min(k, static_cast<unsigned>(tiles)));
}

// The matrix a load phase streams, the one place matrices and their tiling are described (built per phase,
// not selected from a struct of all four by a runtime value: that put the loader state in local memory).
__device__ __forceinline__ Mat load_mat(const PersistentDecodeArgs& a, const Plan& p, int phase, int l) {
  if (phase == kLoadLm) return Mat{a.lm_head, a.vocab, a.hidden, p.rows_lm, false};
  const PersistentLayer* w = a.layer + l;
  const int qd = a.n_heads * a.head_dim, kvd = a.n_kv * a.head_dim;
  switch (phase) {
    case kLoadQkv: return Mat{w->wqkv, qd + 2 * kvd, a.hidden, p.rows_qkv, false};
    case kLoadO: return Mat{w->wo, a.hidden, qd, p.rows_o, false};
    case kLoadGu: return Mat{w->wgu, a.inter, a.hidden, p.rows_gu, true};
    default: return Mat{w->wdown, a.hidden, a.inter, p.rows_dn, false};
  }
}

// ---- Compute warps.
struct Ctx {
  const PersistentDecodeArgs& a;
  const Plan& p;
  Ring ring;
  unsigned it;      // next ring slot to consume
  unsigned step;    // this step's number (1, 2, ...)
  int pos, token;
  float* xs;        // the phase's input vector (and the attention merge scratch)
  float* res;       // [Plan::res_floats] the residual rows of the phase (o, down); attention's q and new k/v
  float* red;       // [kConsumerWarps] reduction scratch
  float* gpart;     // [2][kPartFloats] the GEMV's partial sums per warp, by tile parity
  int warp, lane;
  int trace_slot;   // profiling: the phase being run (PersistentDecodeArgs::trace)
  unsigned long long data_wait_ns;  // profiling: thread 0's time waiting for stages' data in this phase
  // The activations, as {value, tag} words (ll_layout).
  unsigned long long *xo, *xd, *qkv, *att, *h, *part;
  const float2* rope;  // [head_dim / 2] (cos, sin) of this step's position (shared memory, rope_table)
  // it % ring.n and the parity of it / ring.n, kept as counters (no division by the runtime ring size on the
  // chain of every tile).
  int slot = 0;
  unsigned parity = 0;
};

// The step's RoPE rotations, once per block at the start instead of a sincosf per element in every layer's
// attention (~40 dependent instructions each on the chain); the same expression as norm_rope_warp's, so the
// same values. Read after the barrier that every attention_inputs starts with.
constexpr int kMaxRope = 64;  // head_dim / 2
__device__ __forceinline__ void rope_table(Ctx& c, float2* rope) {
  for (int i = threadIdx.x; i < c.a.head_dim / 2; i += kConsumers) {
    float s, co;
    sincosf(static_cast<float>(c.pos) * c.a.inv_freq[i], &s, &co);
    rope[i] = make_float2(co, s);
  }
  c.rope = rope;
}

__device__ __forceinline__ unsigned long long globaltimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Trace fields of a phase: start, input read (every word it polled carried its tag), input vector built,
// tiles consumed, end, data wait (ns).
enum Mark { kMarkStart = 0, kMarkReady, kMarkFilled, kMarkComputed, kMarkEnd };
__device__ __forceinline__ void mark(Ctx& c, int k) {
  if (c.a.trace && threadIdx.x == 0) {
    unsigned long long* e =
        c.a.trace + (static_cast<size_t>(blockIdx.x) * (c.a.layers * kPhases + 1) + c.trace_slot) * kTraceFields;
    e[k] = globaltimer();
    if (k == kMarkEnd) e[kTraceFields - 1] = c.data_wait_ns, c.data_wait_ns = 0;
  }
}
__device__ __forceinline__ void begin_phase(Ctx& c, int slot) {
  c.trace_slot = slot;
  mark(c, kMarkStart);
}

// ---- Activations between blocks: {float value, tag} in one 8-byte word (the file's header explains why).
using Word = unsigned long long;
// The tag of phase ph of layer l in this step; never 0 (what the zeroed buffers hold) within 2^32 / (5 L) steps.
__device__ __forceinline__ unsigned tag_of(const Ctx& c, int l, Phase ph) {
  return (c.step * static_cast<unsigned>(c.a.layers) + static_cast<unsigned>(l)) * kPhases + ph + 1;
}
__device__ __forceinline__ unsigned tag_word(Word w) { return static_cast<unsigned>(w >> 32); }
__device__ __forceinline__ float value_word(Word w) { return __uint_as_float(static_cast<unsigned>(w)); }
__device__ __forceinline__ void ll_store(Word* dst, float v, unsigned tag) {
  const Word w = (static_cast<Word>(tag) << 32) | __float_as_uint(v);
  asm volatile("st.relaxed.gpu.global.b64 [%0], %1;" ::"l"(dst), "l"(w) : "memory");
}
__device__ __forceinline__ Word ll_load(const Word* p) {
  Word w;
  asm volatile("ld.relaxed.gpu.global.b64 %0, [%1];" : "=l"(w) : "l"(p) : "memory");
  return w;
}
// Two words (16-byte aligned); each is single-copy atomic on its own.
__device__ __forceinline__ void ll_load2(const Word* p, Word& w0, Word& w1) {
  asm volatile("ld.relaxed.gpu.global.v2.b64 {%0, %1}, [%2];" : "=l"(w0), "=l"(w1) : "l"(p) : "memory");
}
// A short pause between polls (Plan::poll_ns), so that blocks waiting for a vector leave L2 to the others.
__device__ __forceinline__ void poll_pause(unsigned ns) {
  if (ns) __nanosleep(ns);
}

// N words, addr(i) for i < N (null: not wanted), all loaded at once, then polled until each carries tag.
template <int N, class Addr>
__device__ __forceinline__ void ll_gather(unsigned tag, float (&out)[N], unsigned pause_ns, Addr&& addr) {
  Word w[N];
#pragma unroll
  for (int i = 0; i < N; ++i) w[i] = addr(i) ? ll_load(addr(i)) : static_cast<Word>(tag) << 32;
  for (;;) {
    bool ok = true;
#pragma unroll
    for (int i = 0; i < N; ++i) ok = ok && tag_word(w[i]) == tag;
    if (ok) break;
    poll_pause(pause_ns);
#pragma unroll
    for (int i = 0; i < N; ++i)
      if (tag_word(w[i]) != tag) w[i] = ll_load(addr(i));
  }
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = value_word(w[i]);
}
__device__ __forceinline__ float ll_get(const Word* p, unsigned tag, unsigned pause_ns) {
  float v[1];
  ll_gather<1>(tag, v, pause_ns, [&](int) { return p; });
  return v[0];
}

// A vector of up to 4 N kConsumers floats spread over the compute threads, 4 consecutive elements per float4:
// the fills load every element at once (one round trip to L2, not one per loop iteration).
template <int N>
struct Vec {
  static constexpr int n = N;
  float4 v[N];
};
__device__ __forceinline__ int vec_index(int j) { return (static_cast<int>(threadIdx.x) + j * kConsumers) * 4; }

// src[0..n) as other blocks write it in this step with `tag` (n a multiple of 4).
template <int kVec>
__device__ __forceinline__ void ll_read(const Word* src, int n, unsigned tag, unsigned pause_ns, Vec<kVec>& r) {
  Word w[kVec][4];
  auto load = [&](int j) {
    ll_load2(src + vec_index(j), w[j][0], w[j][1]);
    ll_load2(src + vec_index(j) + 2, w[j][2], w[j][3]);
  };
  auto ready = [&](int j) {
    return vec_index(j) >= n || (tag_word(w[j][0]) == tag && tag_word(w[j][1]) == tag &&
                                 tag_word(w[j][2]) == tag && tag_word(w[j][3]) == tag);
  };
#pragma unroll
  for (int j = 0; j < kVec; ++j)
    if (vec_index(j) < n) load(j);
  for (;;) {
    bool ok = true;
#pragma unroll
    for (int j = 0; j < kVec; ++j) ok = ok && ready(j);
    if (ok) break;
    poll_pause(pause_ns);
#pragma unroll
    for (int j = 0; j < kVec; ++j)
      if (!ready(j)) load(j);
  }
#pragma unroll
  for (int j = 0; j < kVec; ++j)
    r.v[j] = make_float4(value_word(w[j][0]), value_word(w[j][1]), value_word(w[j][2]), value_word(w[j][3]));
}
// Read-only bf16 data (norm weights, an embedding row), kept as bf16 (half the registers of floats).
template <int N>
struct BVec {
  uint2 v[N];
};
template <int kVec>
__device__ __forceinline__ void load_vec(const bf16* src, int n, BVec<kVec>& r) {
#pragma unroll
  for (int j = 0; j < kVec; ++j)
    if (vec_index(j) < n) r.v[j] = __ldg(reinterpret_cast<const uint2*>(src + vec_index(j)));
}
__device__ __forceinline__ float4 to_float4(uint2 u) {
  return make_float4(bf16_lo(u.x), bf16_hi(u.x), bf16_lo(u.y), bf16_hi(u.y));
}
// The input vector as the mma's B operand: x = hi + mid + lo, three bf16 terms (each the rounding of what the
// previous ones leave: 24 significant bits, the float input), term j at xs[j (n + kTermPad) ...] as bf16 (the
// padding puts the terms' words of one k-step in different banks).
// Two terms (16 bits) gave GEMVs 6-17x less precise than fp32 FMAs (2.3-2.9e-6 vs 1.4-4.5e-7 relative, on the
// H200) and logits drifting up to 9e-4 from the unfused step's on the tiny random models.
constexpr int kTerms = 3, kTermPad = 8;
__device__ __forceinline__ uint32_t bf16x2_bits(__nv_bfloat162 v) { return *reinterpret_cast<const uint32_t*>(&v); }
// Elements [off, off + 4 kVec kConsumers) of an n-element input (store_vec: all of it, then the barrier).
template <int kVec>
__device__ __forceinline__ void store_vec_at(const Ctx& c, int n, int off, const Vec<kVec>& x) {
  bf16* out = reinterpret_cast<bf16*>(c.xs);
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const int i = off + vec_index(j);
    if (i >= n) continue;
    float4 r = x.v[j];  // what the terms so far leave
#pragma unroll
    for (int term = 0; term < kTerms; ++term) {
      const __nv_bfloat162 a = __floats2bfloat162_rn(r.x, r.y), b = __floats2bfloat162_rn(r.z, r.w);
      *reinterpret_cast<uint2*>(out + term * (n + kTermPad) + i) = uint2{bf16x2_bits(a), bf16x2_bits(b)};
      r = make_float4(r.x - __low2float(a), r.y - __high2float(a), r.z - __low2float(b), r.w - __high2float(b));
    }
  }
}
template <int kVec>
__device__ __forceinline__ void store_vec(const Ctx& c, int n, const Vec<kVec>& x) {
  store_vec_at(c, n, 0, x);
  consumer_sync();
}
// A plain (not normalised) GEMV input of n elements that other blocks write in this step with `tag`, into c.xs:
// read and stored 4 kVec kConsumers elements at a time, so n may exceed what the registers hold (Qwen3-4B's
// and 8B's intermediate sizes). mark(kMarkReady) once the last part has arrived.
template <int kVec>
__device__ __forceinline__ void read_input(Ctx& c, const Word* src, int n, unsigned tag) {
  constexpr int kPart = 4 * kVec * kConsumers;
  for (int off = 0; off < n; off += kPart) {
    Vec<kVec> v;
    ll_read(src + off, n - off, tag, c.p.poll_ns, v);
    if (off + kPart >= n) mark(c, kMarkReady);
    store_vec_at(c, n, off, v);
  }
  consumer_sync();
}
// xs = x * w / rms(x) (Qwen3's RMSNorm, as the per-layer kernels compute it).
template <int kVec>
__device__ __forceinline__ void store_rmsnorm(const Ctx& c, int n, const Vec<kVec>& x, const BVec<kVec>& wb) {
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kVec; ++j)
    if (vec_index(j) < n) ss += x.v[j].x * x.v[j].x + x.v[j].y * x.v[j].y + x.v[j].z * x.v[j].z + x.v[j].w * x.v[j].w;
  const float inv = 1.0f / sqrtf(consumer_sum(ss, c.red) / static_cast<float>(n) + c.a.eps);
  Vec<kVec> y;
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const float4 w = to_float4(wb.v[j]);
    y.v[j] = make_float4(x.v[j].x * inv * w.x, x.v[j].y * inv * w.y, x.v[j].z * inv * w.z, x.v[j].w * inv * w.w);
  }
  store_vec(c, n, y);
}

__device__ __forceinline__ const char* acquire_stage(Ctx& c) {
  const int s = c.slot;
  const unsigned parity = c.parity;
  if (c.a.trace && threadIdx.x == 0) {
    const unsigned long long t0 = globaltimer();
    mbar_wait(&c.ring.full[s], parity);
    c.data_wait_ns += globaltimer() - t0;
  }
  mbar_wait(&c.ring.full[s], parity);
  return c.ring.stages + static_cast<size_t>(s) * c.ring.bytes;
}
__device__ __forceinline__ void release_stage(Ctx& c) {
  __syncwarp();
  if (c.lane == 0) mbar_arrive(&c.ring.empty[c.slot]);
  ++c.it;
  if (++c.slot == c.ring.n) c.slot = 0, c.parity ^= 1u;
}

// ---- Tensor-core GEMV: y = W x for a tile of W's rows, as mma.m16n8k16 (launch.cuh) with A = 16 rows x 16 k
// of W (by ldmatrix from the padded stage) and B = [x_hi x_mid x_lo ...] (16 k x 8): columns 0..2 of D are
// W times each term, their sum the row's value. One mma replaces 256 scalar FMAs and the bf16 unpacking.

// A tile of few rows on CUDA cores: the mma reads 16 rows per k-step whatever the tile holds, so a tile of 2 rows
// (Qwen3-8B's down: 2 of 12,288 bf16 per 64 KiB stage) costs 8 times its bytes in shared-memory reads, which then
// bound the phase (v20 of docs/engine-cuda-log.md). Here each compute thread takes 8-element chunks t, t + 256,
// ... of k for every row: the row bytes are read once, the input once per tile (its three bf16 terms summed back
// into the float), and the sums meet as the mma path's do (part[warp][row], added in warp order by the caller).
constexpr int kMaxFmaRows = 8;
static_assert(kMaxFmaRows <= 16 && kConsumerWarps == 8);  // one block of rows: part[warp][row] as the mma writes it
// x[e] = the input's elements [8 ch, 8 ch + 8): its three bf16 terms summed back into the float.
__device__ __forceinline__ void fma_input(const bf16* xt, int k, int ch, float (&x)[8]) {
  float mid[8], lo[8];
  unpack8(*reinterpret_cast<const uint4*>(xt + ch * 8), x);
  unpack8(*reinterpret_cast<const uint4*>(xt + (k + kTermPad) + ch * 8), mid);
  unpack8(*reinterpret_cast<const uint4*>(xt + 2 * (k + kTermPad) + ch * 8), lo);
#pragma unroll
  for (int e = 0; e < 8; ++e) x[e] = (x[e] + mid[e]) + lo[e];
}
template <int R>
__device__ __forceinline__ void gemv_tile_fma(const bf16* xt, const bf16* tile, int pitch, int k, float* part) {
  const int n = k / 8;
  float acc[R] = {};
  int ch = static_cast<int>(threadIdx.x);
  // Two chunks per iteration, every load before the first FMA (8 warps per SM leave little to hide latency).
#pragma unroll 1
  for (; ch + kConsumers < n; ch += 2 * kConsumers) {
    float x0[8], x1[8];
    uint4 w0[R], w1[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      w0[r] = *reinterpret_cast<const uint4*>(tile + static_cast<size_t>(r) * pitch + ch * 8);
      w1[r] = *reinterpret_cast<const uint4*>(tile + static_cast<size_t>(r) * pitch + (ch + kConsumers) * 8);
    }
    fma_input(xt, k, ch, x0);
    fma_input(xt, k, ch + kConsumers, x1);
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] += dot8_regs(w0[r], x0) + dot8_regs(w1[r], x1);
  }
  if (ch < n) {
    float x[8];
    fma_input(xt, k, ch, x);
#pragma unroll
    for (int r = 0; r < R; ++r)
      acc[r] += dot8_regs(*reinterpret_cast<const uint4*>(tile + static_cast<size_t>(r) * pitch + ch * 8), x);
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float v = warp_sum(acc[r]);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32 * 16 + r] = v;
  }
}
// Not inlined: one copy per kernel instead of one per phase (each phase's GEMV would carry all eight). xt: the
// input's terms (c.xs).
__device__ __noinline__ void gemv_tile_fma(const bf16* xt, const bf16* tile, int pitch, int k, int rows, float* part) {
  switch (rows) {
    case 1: return gemv_tile_fma<1>(xt, tile, pitch, k, part);
    case 2: return gemv_tile_fma<2>(xt, tile, pitch, k, part);
    case 3: return gemv_tile_fma<3>(xt, tile, pitch, k, part);
    case 4: return gemv_tile_fma<4>(xt, tile, pitch, k, part);
    case 5: return gemv_tile_fma<5>(xt, tile, pitch, k, part);
    case 6: return gemv_tile_fma<6>(xt, tile, pitch, k, part);
    case 7: return gemv_tile_fma<7>(xt, tile, pitch, k, part);
    default: return gemv_tile_fma<8>(xt, tile, pitch, k, part);
  }
}

// What a phase's output rows add to, for gemv_tiles: load(row) issues the row's read when its tile arrives, and
// value(row, loaded) is needed only after the tile's GEMV, so the L2 round trip overlaps it (the load's result is
// not waited for until it is used). None: gemv_tiles' default.
struct NoResidual {
  __device__ Word load(int) const { return 0; }
  __device__ float value(int, Word) const { return 0.f; }
};
// The residual stream of o_proj and down: words written a phase or more before (so their tag is there; polled
// otherwise), or at layer 0 the token's embedding row.
struct Residual {
  const Word* src;
  unsigned tag, poll_ns;
  const bf16* emb;
  __device__ Word load(int row) const {
    return emb ? static_cast<Word>(__bfloat16_as_ushort(emb[row])) : ll_load(src + row);
  }
  __device__ float value(int row, Word w) const {
    if (emb) return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(w)));
    return tag_word(w) == tag ? value_word(w) : ll_get(src + row, tag, poll_ns);
  }
};
// The block's tiles of m against the input vector in c.xs (store_vec): r's (Plan::dynamic: those its producer
// claimed, until the stage that says the phase is over). A tile's rows (pairs: first halves, then second halves)
// form blocks of 16; each block's k-steps are spread over kConsumerWarps / blocks warps (at least one), whose
// partial sums meet in shared memory and are added in warp order (deterministic). Then finish(row, residual +
// value), or finish(row, first, second) for pairs, the residual (NoResidual: none) read by the row's thread.
template <class Finish, class Resid = NoResidual>
__device__ __forceinline__ void gemv_tiles(Ctx& c, const Mat& m, const Tiles& r, Finish&& finish, const Resid& resid = {}) {
  static_assert(kMaxTileRows <= kConsumers, "a tile's rows are finished by one thread each");
  const int pitch = row_pitch(m.k), steps = m.k / 16;
  const int g = c.lane >> 2, t = c.lane & 3;
  // B fragment words of lane (g, t) at k-step s: x[16 s + 2 t ..] and x[16 s + 8 + 2 t ..] of term g (g < 3;
  // the other columns of D are not used).
  const uint32_t* xb = reinterpret_cast<const uint32_t*>(c.xs) + (g < kTerms ? g : 0) * ((m.k + kTermPad) / 2) + t;
#pragma unroll 1
  for (int ti = r.first;; ti += r.step) {
    if (!c.p.dynamic && ti >= r.end) break;
    const bf16* tile = reinterpret_cast<const bf16*>(acquire_stage(c));
    if (c.p.dynamic) {
      ti = c.ring.tile[c.slot];
      if (ti < 0) {  // the phase is over for this block
        release_stage(c);
        break;
      }
    }
    const int row0 = ti * m.rows, nr = min(m.rows, m.n - row0), rows = m.pairs ? 2 * nr : nr;
    const int me = static_cast<int>(threadIdx.x);
    const Word rw = me < nr ? resid.load(row0 + me) : 0;
    const int blocks = (rows + 15) / 16;
    // Warps per block of rows (for eight warps without a division by a runtime value: ~20 dependent instructions).
    const int wpb = kConsumerWarps == 8 ? (blocks == 1 ? 8 : blocks == 2 ? 4 : blocks <= 4 ? 2 : 1)
                                        : max(1, kConsumerWarps / blocks);
    float* part = c.gpart + (c.it & 1) * kPartFloats;  // [block][warp of it][16]
    const int mat = c.lane >> 3;  // ldmatrix: lane supplies row (lane % 8) of matrix mat (a0..a3 order)
    // A tile of few rows on CUDA cores instead (then blocks == 1 and wpb == kConsumerWarps, so it writes the same
    // part[warp][row] the mma loop below would, and that loop starts past the last block: it runs no block).
    const bool fma = rows <= c.p.fma_rows;
    if (fma) gemv_tile_fma(reinterpret_cast<const bf16*>(c.xs), tile, pitch, m.k, rows, part);
#pragma unroll 1
    for (int rb = fma ? blocks : c.warp / wpb; rb < blocks; rb += kConsumerWarps / wpb) {
      const int wi = c.warp % wpb;
      const int row = min(rb * 16 + (c.lane & 7) + (mat & 1) * 8, rows - 1);  // rows past the tile: ignored
      const bf16* arow = tile + static_cast<size_t>(row) * pitch + (mat >> 1) * 8;
      // Four independent accumulator chains (the mma and ldmatrix latencies overlap), summed in order.
      float d[4][4] = {};
      int s = wi;
#pragma unroll 1
      for (; s + 3 * wpb < steps; s += 4 * wpb) {
        uint32_t a[4][4];
#pragma unroll
        for (int u = 0; u < 4; ++u) ldmatrix_x4(a[u], smem_u32(arow + (s + u * wpb) * 16));
#pragma unroll
        for (int u = 0; u < 4; ++u) mma_bf16(d[u], a[u], xb[(s + u * wpb) * 8], xb[(s + u * wpb) * 8 + 4]);
      }
      for (; s < steps; s += wpb) {  // the rest (up to three steps), one by one
        uint32_t a[4];
        ldmatrix_x4(a, smem_u32(arow + s * 16));
        mma_bf16(d[0], a, xb[s * 8], xb[s * 8 + 4]);
      }
#pragma unroll
      for (int q = 0; q < 4; ++q) d[0][q] = (d[0][q] + d[1][q]) + (d[2][q] + d[3][q]);
      float (&d0)[4] = d[0];
      // Row g's terms: columns 0, 1 at lane (g, 0), column 2 at lane (g, 1); rows g + 8 likewise.
      float ra = t == 0 ? d0[0] + d0[1] : d0[0];
      float rb8 = t == 0 ? d0[2] + d0[3] : d0[2];
      ra += __shfl_down_sync(0xffffffffu, ra, 1);
      rb8 += __shfl_down_sync(0xffffffffu, rb8, 1);
      if (t == 0) {
        float* dst = part + (rb * wpb + wi) * 16;
        dst[g] = ra;
        dst[g + 8] = rb8;
      }
    }
    // The stage's data is in registers by now. part is double-buffered by tile parity: a warp can write the
    // next tile's partials while the finishing threads still read this one's, not the tile's after (it waits
    // at the next barrier first); between phases the fills' barriers separate them.
    release_stage(c);
    consumer_sync();
    auto value = [&](int row) {  // the warps' partials in warp order: independent loads, then the adds
      const float* src = part + row / 16 * wpb * 16 + row % 16;
      float p[kConsumerWarps];
#pragma unroll
      for (int w = 0; w < kConsumerWarps; ++w) p[w] = w < wpb ? src[w * 16] : 0.f;
      float v = p[0];
#pragma unroll
      for (int w = 1; w < kConsumerWarps; ++w) v += p[w];
      return v;
    };
    if (me < nr) {
      if constexpr (std::is_invocable_v<Finish, int, float, float>) {
        if (m.pairs) finish(row0 + me, value(me), value(nr + me));
      } else if constexpr (std::is_same_v<Resid, NoResidual>) {
        finish(row0 + me, value(me));
      } else {
        finish(row0 + me, resid.value(row0 + me, rw) + value(me));
      }
    }
  }
}

// (m, l) weights of merging a state with max ma into a total with max M; empty states (m = -inf) weigh 0.
__device__ __forceinline__ float merge_weight(float ma, float M) { return ma == -INFINITY ? 0.f : exp2f(ma - M); }

// The inputs of an attention split of KV head kvh: its G query heads normalised and rotated (c.res[g * D + d]);
// in the split holding the new key also that key (normalised, rotated) and its value, which it writes to the
// cache and keeps as bf16 after the queries (what the cache holds). load(h, v): lane's D / 32 values (lane +
// 32 e) of query head h < G, of k (h = G) or of v (h = G + 1), from wherever the layout keeps this step's qkv.
template <int D, int G, class Load>
__device__ __forceinline__ void attention_inputs(Ctx& c, int l, int kvh, bool new_key, Load&& load) {
  const PersistentDecodeArgs& a = c.a;
  constexpr int E = D / 32;
  bf16* kv_new = reinterpret_cast<bf16*>(c.res + G * D);
  const PersistentLayer& w = a.layer[l];
  consumer_sync();  // c.res may still be read by the slowest thread of an earlier phase
  for (int h = c.warp; h < G + (new_key ? 2 : 0); h += kConsumerWarps) {
    float v[E];
    load(h, v);
    if (h < G) {
      norm_rope_warp(v, w.q_norm, a.inv_freq, c.pos, a.eps, c.lane, c.rope);
#pragma unroll
      for (int e = 0; e < E; ++e) c.res[h * D + c.lane + 32 * e] = v[e];
      continue;
    }
    if (h == G) norm_rope_warp(v, w.k_norm, a.inv_freq, c.pos, a.eps, c.lane, c.rope);
    bf16* cache = (h == G ? a.k_cache : a.v_cache) +
                  ((static_cast<size_t>(l) * a.n_kv + kvh) * a.capacity + c.pos) * D;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const bf16 b = __float2bfloat16(v[e]);
      cache[c.lane + 32 * e] = b;
      kv_new[(h - G) * D + c.lane + 32 * e] = b;
    }
  }
  consumer_sync();
}

// A block's attention result for (query head g, dim d) from the attention's partial states at scr (P states of
// [G][D + 2]: o[D], m, l; gqa/decode_abi.cuh), merged in order (M: the max, L: the sum of weights, O: the
// unnormalised output).
template <int D, int G>
__device__ __forceinline__ void warps_merged(const float* scr, int parts, int g, int d, float& M, float& L, float& O) {
  constexpr int W = D + 2;
  M = -INFINITY;
  for (int w = 0; w < parts; ++w) M = fmaxf(M, scr[(w * G + g) * W + D]);
  L = 0.f, O = 0.f;
  for (int w = 0; w < parts; ++w) {
    const float* src = scr + (w * G + g) * W;
    const float wt = merge_weight(src[D], M);
    L += src[D + 1] * wt;
    O += src[d] * wt;
  }
}

// Rows (pairs: row pairs, halves = 2) per tile of an n x k matrix: what a stage holds, at most kMaxTileRows,
// and no more than spreads the matrix over every SM. balance: of the row counts from half of that up to it, the
// largest whose busiest block (tiles t, t + sms, ...) gets within 3% of the fewest rows any of them allows (1%
// would cut Qwen3-8B's gate/up tiles to 2 pairs for 2%). A phase lasts as long as its busiest block: Qwen3-4B's
// o_proj in 8-row tiles is 320 tiles, 3 on some blocks and 2 on others (24 rows against 19.4 on average); in
// 5-row tiles every block gets 3 or 4 (at most 20 rows).
inline int rows_per_tile(int n, int k, int sms, int stage_bytes, int halves = 1, bool balance = false) {
  const int fit = std::min(stage_bytes / (2 * row_pitch(k)), kMaxTileRows) / halves, spread = (n + sms - 1) / sms;
  const int most = std::max(1, std::min(fit, spread));
  if (!balance) return most;
  auto busiest = [&](int r) { return ((n + r - 1) / r + sms - 1) / sms * r; };
  int fewest = busiest(most);
  for (int r = most; r >= (most + 1) / 2; --r) fewest = std::min(fewest, busiest(r));
  for (int r = most;; --r)
    if (busiest(r) * 100 <= fewest * 103) return r;
}
// Whether balancing pays (the default, persistent_balance_tiles -1), as measured on an H100 (v22 of
// docs/engine-cuda-log.md): only where the busiest block has at least three tiles (with one or two, the phase's
// time is its rounds of tiles, not its rows: Qwen3-0.6B's gate/up balanced, two tiles of 12 pairs instead of 16,
// was 2% slower) and the tiles stay on the same GEMV path (the mma costs per 16-row block, the CUDA-core path
// per row: Qwen3-1.7B's down balanced from 5 rows to 4, which then went to CUDA cores, was 3.4% slower). Of the
// Qwen3 sizes the persistent step runs, it changes Qwen3-4B's plan only (+2.3% at ctx 128, +1.5% at 8K).
inline bool balance_pays(int n, int k, int sms, int stage_bytes, int halves, int fma_rows) {
  const int most = rows_per_tile(n, k, sms, stage_bytes, halves), bal = rows_per_tile(n, k, sms, stage_bytes, halves, true);
  const int busiest_tiles = ((n + most - 1) / most + sms - 1) / sms;
  return busiest_tiles >= 3 && (most * halves > fma_rows) == (bal * halves > fma_rows);
}

}  // namespace
}  // namespace gqa::cuda
