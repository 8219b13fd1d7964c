// The evaluator's harness for a program's device entry (gqa_decode_attend_v2, include/gqa/decode_abi.cuh):
// compiled to LTO IR only, embedded in the evaluator, and linked with the program at run time (as the engine's
// persistent step is) into kernels that call the entry exactly as the step does, but on inputs the evaluator
// chose, with everything around the call watched. One block is one split of one KV head at position `pos`:
// its 256 compute threads get q and the new key/value in shared memory, the split's K/V tiles one at a time
// (the step's tiling: tile t holds keys t * keys_per_tile .., the split's tiles are split, split + num_splits,
// ...), a scratch area poisoned with NaN and fenced by canaries, and an idle 9th warp in the producer's place.
// After the call the partial states and the count go to global memory with a word of violations:
//   bit 0  a canary around the scratch area, q, the new key or the tile stage was overwritten
//   bit 1  q or the new key/value changed
//   bit 2  a tile was acquired before every warp released the one before, or after the last
//   bit 3  a warp released a tile it did not hold, or not every tile
//   bit 4  the tile in the stage changed while it was held
// The host merges the states in float64 and compares with its own float64 reference (decode_entry_check.cpp).
#include <cuda_runtime.h>

#include "evaluate/decode_entry_harness.h"
#include "gqa/decode_abi.cuh"

namespace {

constexpr unsigned kCanary = 0x5a17c0deu;
constexpr int kWarps = GQA_DECODE_THREADS / 32;

__device__ __forceinline__ void sync_compute() { asm volatile("bar.sync 1, %0;" ::"n"(GQA_DECODE_THREADS) : "memory"); }

// A block-wide AND over the compute threads (bar.red on barrier 1; never barrier 0, which the entry may not use).
__device__ __forceinline__ bool all_compute(bool p) {
  unsigned r;
  asm volatile(
      "{ .reg .pred q; setp.ne.u32 q, %1, 0; bar.red.and.pred q, 1, %2, q; selp.u32 %0, 1, 0, q; }"
      : "=r"(r)
      : "r"(static_cast<unsigned>(p)), "n"(GQA_DECODE_THREADS)
      : "memory");
  return r != 0;
}

// Per thread: where it is in the split's tiles (every thread calls acquire the same number of times).
struct HarnessState {
  const gqa::eval::HarnessArgs* a;
  char* stage;
  unsigned* flags;     // shared: the block's violations
  int* released;       // shared [kWarps]: tiles released per warp
  int acquired;        // tiles this thread acquired
  int tile_keys;       // keys of the tile in the stage
  int tile_first_key;  // its first key
};

__device__ __forceinline__ bool canary_ok(const unsigned* p) {
  bool ok = true;
  for (int i = 0; i < gqa::eval::kCanaryWords; ++i) ok &= p[i] == kCanary;
  return ok;
}

// Whether the stage still holds the tile's keys as the global copy has them (all compute threads, then synced).
__device__ __forceinline__ bool stage_intact(const HarnessState& h, int D) {
  const uint16_t* st = reinterpret_cast<const uint16_t*>(h.stage);
  const uint16_t* k = h.a->k + static_cast<size_t>(h.tile_first_key) * D;
  const uint16_t* v = h.a->v + static_cast<size_t>(h.tile_first_key) * D;
  const int n = h.tile_keys * D;
  bool ok = true;
  for (int i = threadIdx.x; i < n; i += GQA_DECODE_THREADS) ok &= st[i] == k[i] && st[n + i] == v[i];
  return all_compute(ok);
}

}  // namespace

extern "C" __device__ const void* gqa_decode_tile_acquire(gqa_decode_split* s) {
  HarnessState& h = *static_cast<HarnessState*>(s->step);
  const int D = s->head_dim;
  sync_compute();
  if (h.acquired > 0) {  // every warp must have released the tile before this one
    bool released = true;
    for (int w = 0; w < kWarps; ++w) released &= h.released[w] == h.acquired;
    if (!released && threadIdx.x == 0) atomicOr(h.flags, 4u);
    if (!stage_intact(h, D) && threadIdx.x == 0) atomicOr(h.flags, 16u);
  }
  if (h.acquired >= s->num_tiles) {
    if (threadIdx.x == 0) atomicOr(h.flags, 4u);
    return h.stage;  // the last tile again: the violation is recorded
  }
  const int t = s->first_tile + h.acquired * s->tile_step;
  h.tile_first_key = t * s->keys_per_tile;
  h.tile_keys = gqa_decode_tile_keys(s, h.acquired);
  // K then V of the tile's keys, 16 bytes at a time.
  const int n16 = h.tile_keys * D / 8;
  const uint4* k = reinterpret_cast<const uint4*>(h.a->k + static_cast<size_t>(h.tile_first_key) * D);
  const uint4* v = reinterpret_cast<const uint4*>(h.a->v + static_cast<size_t>(h.tile_first_key) * D);
  uint4* st = reinterpret_cast<uint4*>(h.stage);
  for (int i = threadIdx.x; i < n16; i += GQA_DECODE_THREADS) st[i] = k[i], st[n16 + i] = v[i];
  ++h.acquired;
  sync_compute();
  return h.stage;
}

extern "C" __device__ void gqa_decode_tile_release(gqa_decode_split* s) {
  HarnessState& h = *static_cast<HarnessState*>(s->step);
  __syncwarp();
  if (threadIdx.x % 32 == 0) {
    int& r = h.released[threadIdx.x / 32];
    if (r >= h.acquired) atomicOr(h.flags, 8u);  // released more than it acquired
    ++r;
  }
  __syncwarp();
}

extern "C" __device__ void gqa_decode_sync(void) { sync_compute(); }

namespace {

template <int D, int G>
__device__ __forceinline__ void harness_body(const gqa::eval::HarnessArgs& a) {
  using namespace gqa::eval;
  extern __shared__ __align__(128) char smem[];
  __shared__ unsigned flags;
  __shared__ int released[kWarps];
  const HarnessLayout L = harness_layout(D, G, a.stage_bytes, a.scratch_bytes);
  unsigned* c0 = reinterpret_cast<unsigned*>(smem + L.canary0);
  unsigned* c1 = reinterpret_cast<unsigned*>(smem + L.canary1);
  unsigned* c2 = reinterpret_cast<unsigned*>(smem + L.canary2);
  float* q = reinterpret_cast<float*>(smem + L.q);
  uint16_t* new_kv = reinterpret_cast<uint16_t*>(smem + L.new_kv);
  float* scratch = reinterpret_cast<float*>(smem + L.scratch);
  const int split = static_cast<int>(blockIdx.x);
  if (threadIdx.x >= GQA_DECODE_THREADS) return;  // the producer's place: idle
  const int S = a.num_splits, tiles = (a.pos + a.keys_per_tile - 1) / a.keys_per_tile;
  for (int i = threadIdx.x; i < kCanaryWords; i += GQA_DECODE_THREADS) c0[i] = c1[i] = c2[i] = kCanary;
  for (int i = threadIdx.x; i < G * D; i += GQA_DECODE_THREADS) q[i] = a.q[i];
  for (int i = threadIdx.x; i < 2 * D; i += GQA_DECODE_THREADS) new_kv[i] = a.new_kv[i];
  for (int i = threadIdx.x; i < a.scratch_bytes / 4; i += GQA_DECODE_THREADS) scratch[i] = __int_as_float(0x7fc00000);
  if (threadIdx.x == 0) flags = 0;
  if (threadIdx.x < kWarps) released[threadIdx.x] = 0;
  sync_compute();
  HarnessState h{&a, smem + L.stage, &flags, released, 0, 0, 0};
  gqa_decode_split s{};
  s.head_dim = D, s.group = G, s.kv_head = 0, s.split = split, s.num_splits = S, s.pos = a.pos;
  s.keys_per_tile = a.keys_per_tile, s.first_tile = split, s.tile_step = S;
  s.num_tiles = split < tiles ? (tiles - split + S - 1) / S : 0;
  s.has_new_key = split == S - 1, s.max_parts = GQA_DECODE_MAX_PARTS, s.scratch_bytes = a.scratch_bytes;
  s.scale_log2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;
  s.q = q, s.new_kv = new_kv, s.scratch = scratch, s.step = &h;
  const int parts = gqa_decode_attend_v2(&s);
  sync_compute();
  bool ok_inputs = true;
  for (int i = threadIdx.x; i < G * D; i += GQA_DECODE_THREADS) ok_inputs &= q[i] == a.q[i];
  for (int i = threadIdx.x; i < 2 * D; i += GQA_DECODE_THREADS) ok_inputs &= new_kv[i] == a.new_kv[i];
  ok_inputs = all_compute(ok_inputs);
  const bool ok_canaries = all_compute(canary_ok(c0) && canary_ok(c1) && canary_ok(c2));
  bool ok_release = true;
  if (threadIdx.x < kWarps) ok_release = released[threadIdx.x] == s.num_tiles;
  ok_release = all_compute(ok_release) && h.acquired == s.num_tiles;
  const bool ok_stage = s.num_tiles == 0 || stage_intact(h, D);
  if (threadIdx.x == 0) {
    unsigned f = flags;
    if (!ok_canaries) f |= 1u;
    if (!ok_inputs) f |= 2u;
    if (!ok_release) f |= 8u;
    if (!ok_stage) f |= 16u;
    a.violations[split] = f;
    a.parts_out[split] = parts;
  }
  const int n = (parts >= 1 && parts <= GQA_DECODE_MAX_PARTS ? parts : 0) * G * (D + 2);
  float* out = a.states_out + static_cast<size_t>(split) * GQA_DECODE_MAX_PARTS * G * (D + 2);
  for (int i = threadIdx.x; i < n; i += GQA_DECODE_THREADS) out[i] = scratch[i];
}

}  // namespace

#define GQA_DECODE_HARNESS(D, G)                                                                     \
  extern "C" __global__ void __launch_bounds__(GQA_DECODE_THREADS + 32, 1)                          \
      gqa_decode_harness_d##D##_g##G(const __grid_constant__ gqa::eval::HarnessArgs a) {             \
    harness_body<D, G>(a);                                                                           \
  }

GQA_DECODE_HARNESS(128, 1)
GQA_DECODE_HARNESS(128, 2)
GQA_DECODE_HARNESS(128, 4)
GQA_DECODE_HARNESS(128, 5)
GQA_DECODE_HARNESS(128, 8)
GQA_DECODE_HARNESS(64, 2)
GQA_DECODE_HARNESS(64, 4)
