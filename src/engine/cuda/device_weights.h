// Qwen3 weights on the GPU: uploaded once, all bf16 (F16/F32 checkpoints are converted on the way), in one
// allocation. q/k/v projections are stacked into one [q_dim + 2 kv_dim, hidden] matrix and gate/up into one
// [2 intermediate, hidden] matrix, so that a decode step reads each layer with four matrix-vector products.
#pragma once
#include <vector>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/ops.h"
#include "model/weights.h"

namespace gqa::cuda {

struct DeviceLayer {
  const bf16* attn_norm;  // [hidden]
  const bf16* wqkv;       // [q_dim + 2 kv_dim][hidden]: rows of q_proj, then k_proj, then v_proj
  const bf16* q_norm;     // [head_dim]
  const bf16* k_norm;     // [head_dim]
  const bf16* wo;         // [hidden][q_dim]
  const bf16* mlp_norm;   // [hidden]
  const bf16* wgu;        // [2 intermediate][hidden]: rows of gate_proj, then up_proj
  const bf16* wdown;      // [hidden][intermediate]
};

struct DeviceWeights {
  DeviceBuffer storage;
  const bf16* embed = nullptr;    // [vocab][hidden]
  std::vector<DeviceLayer> layers;
  const bf16* final_norm = nullptr;
  const bf16* lm_head = nullptr;  // == embed when the embeddings are tied
  size_t bytes = 0;               // bytes of weights (what a decode step streams, embeddings aside)
};

// Synchronous; throws gqa::Error on a CUDA failure.
DeviceWeights upload_weights(const Qwen3Weights& w, cudaStream_t stream);

}  // namespace gqa::cuda
