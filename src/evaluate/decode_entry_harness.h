// What the evaluator's device-entry harness (decode_entry_harness.cu, linked with a program at run time) and its
// host side (decode_entry_check.cpp) share: the kernel's arguments and its shared-memory layout.
#pragma once
#include <cstddef>
#include <cstdint>

#ifdef __CUDACC__
#define GQA_HARNESS_HD __host__ __device__
#else
#define GQA_HARNESS_HD
#endif

namespace gqa::eval {

// One launch: num_splits blocks, each one split of one KV head at position pos (keys 0..pos-1 in k/v, the new key
// at pos in new_kv), 288 threads.
struct HarnessArgs {
  const float* q = nullptr;          // [G][D], normalised and rotated (as the step gives it)
  const uint16_t* k = nullptr;       // [pos][D] bf16
  const uint16_t* v = nullptr;       // [pos][D] bf16
  const uint16_t* new_kv = nullptr;  // [2][D] bf16: the new key, then its value
  int pos = 0, keys_per_tile = 0, num_splits = 1, stage_bytes = 0, scratch_bytes = 0;
  float* states_out = nullptr;       // [num_splits][GQA_DECODE_MAX_PARTS][G][D + 2]
  int* parts_out = nullptr;          // [num_splits]: what the entry returned
  unsigned* violations = nullptr;    // [num_splits]: the harness's violation bits (decode_entry_harness.cu)
};

constexpr int kCanaryWords = 64;  // 256 bytes of canary before q, between the stage and scratch, after scratch

struct HarnessLayout {
  size_t canary0, q, new_kv, stage, canary1, scratch, canary2, total;
};
// Byte offsets in the block's dynamic shared memory (128-byte aligned), every part 16-byte aligned and the tile
// stage 128-byte aligned, as the contract promises (the engine's stages are 1024-byte aligned).
GQA_HARNESS_HD inline HarnessLayout harness_layout(int D, int G, int stage_bytes, int scratch_bytes) {
  auto up = [](size_t x) { return (x + 15) / 16 * 16; };
  HarnessLayout l{};
  l.canary0 = 0;
  l.q = l.canary0 + kCanaryWords * 4;
  l.new_kv = up(l.q + static_cast<size_t>(G) * D * 4);
  l.stage = (l.new_kv + static_cast<size_t>(2) * D * 2 + 127) / 128 * 128;
  l.canary1 = up(l.stage + static_cast<size_t>(stage_bytes));
  l.scratch = l.canary1 + kCanaryWords * 4;
  l.canary2 = up(l.scratch + static_cast<size_t>(scratch_bytes));
  l.total = l.canary2 + kCanaryWords * 4;
  return l;
}

}  // namespace gqa::eval
