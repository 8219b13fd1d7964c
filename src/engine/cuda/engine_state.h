// What the CUDA engine's pieces share: the model on the device (fixed after load) and the buffers of one
// cache capacity (made by reset()). Plain structs of non-owning pointers; the engine owns the memory.
#pragma once
#include <cstdint>

#include "engine/cuda/device_weights.h"
#include "engine/cuda/ops.h"
#include "model/config.h"

namespace gqa::cuda {

// The model as the kernels read it.
struct DeviceModel {
  const ModelConfig* cfg = nullptr;
  const DeviceWeights* w = nullptr;
  const float* inv_freq = nullptr;             // [head_dim / 2], computed on the host as transformers does
  const PersistentLayer* layer_table = nullptr;  // [layers] (the persistent step reads weights through it)
};

// Buffers of one cache capacity. Prefill rows: up to kPrefillChunk tokens at a time.
struct Buffers {
  int64_t capacity = 0;
  bf16 *k_cache = nullptr, *v_cache = nullptr;  // each [layer][kv_head][capacity][head_dim]
  float *x = nullptr, *qkv = nullptr, *q = nullptr, *att = nullptr, *gu = nullptr;  // float activations
  bf16 *hb = nullptr, *attb = nullptr, *actb = nullptr;  // bf16 GEMM inputs of prefill
  int32_t* tokens = nullptr;                            // prefill chunk's token ids
  // Stock decode attention of the fused and unfused steps: n_splits partials per head, splits finished per
  // KV head (zeroed once; the merging block re-zeroes its own).
  int n_splits = 1;
  float *part_o = nullptr, *part_ml = nullptr;
  unsigned* counters = nullptr;
  unsigned* layer_sync = nullptr;  // fused step: grid barrier and per-head counters (zeroed once)
  unsigned* pers_sync = nullptr;         // persistent step: step number, exit count (zeroed once)
  unsigned long long* pers_ll = nullptr;  // persistent step: activations as {value, tag} words (zeroed once)
  unsigned long long* trace = nullptr;    // persistent step's trace, when asked for
  void* sample_scratch = nullptr;
  // Decode state, read and advanced by the device: the token, its position, the sampler's generator.
  int32_t* token = nullptr;
  int* pos = nullptr;
  unsigned long long* rng = nullptr;
  float* logits = nullptr;  // [logit rows][vocab]
};

constexpr int64_t kPrefillChunk = 512;  // rows of prefill activations (bounds scratch memory)

}  // namespace gqa::cuda
