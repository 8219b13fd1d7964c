// The CUDA engine's public face: whether this build and machine have one, and how to open it. No CUDA
// types here, so the CLI and tests include it in every build (without CUDA, opening throws).
#pragma once
#include <memory>
#include <string>

#include "engine/engine.h"

namespace gqa {

// Filled by the caller (the CLI's --decode-layout / --cuda-option / --trace, tests, benchmarks); the engine
// reads nothing from the environment. validate() says what is wrong with a bad value.
struct CudaEngineOptions {
  int device = 0;
  // Programmatic dependent launch: each decode kernel starts loading its weights while the previous one
  // finishes (sm_90+; ignored on older GPUs).
  bool programmatic_launch = true;
  // Replay the decode step as one CUDA graph (false: launch its kernels one by one; for measuring).
  bool cuda_graph = true;
  // Decode step layout (docs/engine-cuda.md). Persistent: the whole step (every layer, the stock attention,
  // lm_head) as one launch of one block per SM; it falls back to Fused with an attention program (attention
  // must then be a call of its own) and for shapes or tile sizes it cannot hold. Fused: per layer one kernel
  // for everything but attention plus the attention launch (2 L + 2 kernels). Unfused: ~6 kernels per layer,
  // the simple oracle the tests compare the others with.
  enum class Decode { Persistent, Fused, Unfused };
  Decode decode = Decode::Persistent;
  // Tuning knobs (the results do not depend on them unless said). split_keys: the fused and unfused steps'
  // decode attention uses about capacity / split_keys KV splits (at most kMaxDecodeSplits and 4 blocks per SM).
  int split_keys = 32;
  // An attention split of the persistent step covers at least this many keys (at most 16 splits per KV head
  // and one split per SM).
  int persistent_split_keys = 64;
  // Weight bytes per ring stage of the persistent step, 32..192 KiB (rounding differs with the tile); where two
  // stages of it do not fit in shared memory beside the input buffer, the largest that do, down to 32 KiB; where
  // those do not hold a weight row, or hold one row of down_proj (Qwen3-14B: 57 KiB, slower than fused), the fused
  // layout.
  // 0: the largest stage up to 64 KiB that leaves room for three stages (else 64).
  int persistent_tile_kib = 64;
  // The persistent step's pause between two polls of activations other blocks have not written yet (ns).
  int persistent_poll_ns = 32;
  // KV bytes per attention tile of the persistent step (keys = KiB * 1024 / (4 head_dim)), 8..tile_kib; the
  // keys' summation order, so rounding, differs with it.
  int persistent_kv_tile_kib = 32;
  // How many attention splits' partials the persistent step's merging split polls at once, 0..64 (1: one per L2
  // round trip; 0: one for groups of 4 or more query heads per KV head, as many as fit for smaller groups, as
  // measured best: log v24). Same results.
  int persistent_merge_chunk = 0;
  // Weight tiles of the persistent step with at most this many rows (gate/up: both halves counted), 0..8, are
  // multiplied on CUDA cores instead of tensor cores (few-row tiles waste the mma's 16 rows); rounding differs.
  // 4: down's tiles at Qwen3-4B (3 rows) and 8B (2 rows), +3% and +16% decode (v20 of docs/engine-cuda-log.md).
  int persistent_fma_rows = 4;
  // A bit per matrix (1 qkv, 2 o, 4 gate/up, 8 down, 16 lm_head), 0..31: the persistent step picks its rows per
  // weight tile so that the busiest block gets within 3% of the fewest rows possible (bit clear: as many rows as a
  // stage holds); -1: for the matrices where that was measured to pay (Qwen3-4B's, +2.3%; log v22); rounding differs.
  int persistent_balance_tiles = -1;
  // 1: the persistent step's blocks claim weight tiles at run time, when their ring has room, so that the blocks
  // that stream faster take more (0: tile t goes to block t mod blocks). Same results.
  int persistent_dynamic_tiles = 0;
  // When set, the persistent step records per block and phase when it started, got its input, ... (see
  // docs/engine-cuda.md) and each decode_on_device writes the last step's times to this CSV file (with another
  // layout asked for, validate() refuses it; where the persistent step falls back, a note says no file was written).
  std::string trace_file;
};

// The layout's name as --decode-layout spells it, and back (an unknown name is an error that lists the known).
const char* decode_layout_name(CudaEngineOptions::Decode d);
CudaEngineOptions::Decode parse_decode_layout(const std::string& name);
// Sets one tuning knob from "KEY=VALUE" (--cuda-option): KEY one of cuda_option_keys(), VALUE an integer in
// its range. Errors name the key or value and what is wrong.
void set_cuda_option(CudaEngineOptions& o, const std::string& key_value);
std::string cuda_option_keys();
// Throws, naming the field and its range, when an option is out of range.
void validate(const CudaEngineOptions& o);

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
// The plan of that layout in words: for the persistent step its build, ring stages, rows per weight tile of each
// matrix and attention splits, as chosen from the model's shapes and the GPU (persistent_decode_plan).
std::string cuda_decode_plan(const Engine& engine);

}  // namespace gqa
