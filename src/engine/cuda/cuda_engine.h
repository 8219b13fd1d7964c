// The CUDA engine's public face: whether this build and machine have one, and how to open it. No CUDA
// types here, so the CLI and tests include it in every build (without CUDA, opening throws).
#pragma once
#include <memory>
#include <string>

#include "engine/engine.h"

namespace gqa {

struct CudaEngineOptions {
  int device = 0;
  // Programmatic dependent launch: each decode kernel starts loading its weights while the previous one
  // finishes (sm_90+; ignored on older GPUs).
  bool programmatic_launch = true;
  // Replay the decode step as one CUDA graph (false: launch its kernels one by one; for measuring).
  bool cuda_graph = true;
  // Decode step layout. Persistent: the whole step (every layer, the stock attention, lm_head) as one
  // launch of one block per SM (falls back to Fused in attention-program mode, where attention must be a
  // separate call, and for shapes it does not support). Fused: per layer one persistent kernel for
  // everything but attention plus the attention launch (59 kernels per token). Unfused: the original 170
  // kernels. Cluster: the persistent step with its blocks in clusters of 8, one KV head's attention block
  // per cluster (falls back to Persistent where the GPU cannot hold one cluster per KV head). The environment
  // variable GQA_CUDA_DECODE=persistent|cluster|fused|unfused overrides this when set.
  enum class Decode { Persistent, Fused, Unfused, Cluster };
  Decode decode = Decode::Persistent;
  // Tuning knobs of the decode step (results do not depend on them; GQA_CUDA_LAYER_PREFETCH and
  // GQA_CUDA_SPLIT_KEYS override them when set). layer_prefetch: -1 no L2 bulk prefetch of a fused layer
  // launch's weights, else how many of its matrices are prefetched before it waits for attention (0..4).
  // split_keys: the decode attention uses about capacity / split_keys KV splits (at most kMaxDecodeSplits
  // and 4 blocks per SM).
  int layer_prefetch = -1;
  int split_keys = 32;
  // persistent_split_keys (GQA_CUDA_PERSISTENT_SPLIT_KEYS): an attention split of the persistent step
  // covers at least this many keys (at most 16 splits per KV head and one split per SM).
  int persistent_split_keys = 64;
  // persistent_tile_kib (GQA_CUDA_PERSISTENT_TILE_KIB): weight bytes per ring stage of the persistent step,
  // 32..192 (a larger tile means fewer, longer tiles per block and phase; results differ by rounding; a size
  // whose two stages do not fit in shared memory means the fused layout).
  int persistent_tile_kib = 64;
  // persistent_poll_ns (GQA_CUDA_PERSISTENT_POLL_NS): the persistent step's pause between two polls of
  // activations other blocks have not written yet, 0..10000 ns.
  int persistent_poll_ns = 32;
  // persistent_kv_tile_kib (GQA_CUDA_PERSISTENT_KV_TILE_KIB): KV bytes per attention tile of the persistent
  // and clustered steps (keys = KiB * 1024 / (4 head_dim)), 8..persistent_tile_kib.
  int persistent_kv_tile_kib = 32;
  // persistent_merge_chunk (GQA_CUDA_PERSISTENT_MERGE_CHUNK): how many attention splits' partials the merging
  // split polls at once, 0..64 (0: as many as fit; 1: one per L2 round trip, as before v11).
  int persistent_merge_chunk = 0;
  // persistent_kv_mma (GQA_CUDA_PERSISTENT_KV_MMA, 0 or 1): the persistent step's attention tiles on tensor
  // cores where the query group has 1 or 2 heads (rounding differs from the CUDA-core tiles'; 1-2% slower on
  // the H200, docs/engine-cuda.md v12).
  bool persistent_kv_mma = false;
};

// The layout's name as GQA_CUDA_DECODE spells it.
inline const char* decode_layout_name(CudaEngineOptions::Decode d) {
  using Decode = CudaEngineOptions::Decode;
  return d == Decode::Persistent ? "persistent" : d == Decode::Cluster ? "cluster" : d == Decode::Fused ? "fused" : "unfused";
}

// True when this binary was built with the CUDA engine.
bool cuda_engine_built();
// Number of CUDA devices usable by this binary (0 without CUDA, without a driver, or without a GPU).
int cuda_device_count();
// Throws "[cuda] this build has no CUDA engine" in builds without CUDA, and "[cuda] no CUDA device ..."
// when none is present.
std::unique_ptr<Engine> open_cuda_engine(const std::string& model_dir, const CudaEngineOptions& options = {});
// The decode layout the engine's steps use now (after reset(): the persistent one can be unavailable for a
// model's shape or a tile size this GPU cannot hold, and attention programs run in the fused one). Throws
// for an engine that open_cuda_engine did not make.
CudaEngineOptions::Decode cuda_decode_layout(const Engine& engine);
// Whether the persistent step's attention tiles run on tensor cores now (after reset(); persistent_kv_mma asked
// and available). Throws for an engine that open_cuda_engine did not make.
bool cuda_persistent_kv_mma(const Engine& engine);

}  // namespace gqa
