// The decode step's layouts (CudaEngineOptions::Decode), one file each: every one enqueues one whole step for
// the token in b.token at position *b.pos (logits into b.logits, *b.pos advanced) on ex.stream, allocating
// nothing and never synchronising, so that the engine captures it once into a CUDA graph.
//   step_persistent.cpp  the default: the whole step as one launch (decode_persistent.cu)
//   step_fused.cpp       per layer one kernel for everything but attention, plus attention (programs run here)
//   step_unfused.cpp     one kernel per operation: the oracle the tests hold the others to
#pragma once
#include "engine/cuda/cuda_engine.h"
#include "engine/cuda/engine_state.h"
#include "engine/cuda/decode_program.h"
#include "engine/cuda/program_attention.h"

namespace gqa::cuda {

struct StepContext {
  const DeviceModel& m;
  const Buffers& b;
  const CudaEngineOptions& opts;
  ProgramAttention* program;  // null: the stock attention (fused and unfused steps only)
  LoadedDecodeProgram* decode_program = nullptr;  // the persistent step's attention (null: the built-in one)
};

void enqueue_unfused_step(const Exec& ex, const StepContext& c);
void enqueue_fused_step(const Exec& ex, const StepContext& c);
void enqueue_persistent_step(const Exec& ex, const StepContext& c);

// The persistent step's launch arguments; persistent_decode_configure(ex, them) outside graph capture says
// whether this GPU can hold the launch.
PersistentDecodeArgs persistent_step_args(const StepContext& c);

// The attention of decode layer `layer`, q (b.q, float) -> b.att (float), as the fused and unfused steps
// call it: the stock split-KV kernel or the attention program.
void decode_attention(const Exec& ex, const StepContext& c, int64_t layer, bool fused);

}  // namespace gqa::cuda
