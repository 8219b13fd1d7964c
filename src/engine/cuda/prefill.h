// Prefill of one chunk of prompt tokens: cuBLAS tensor-core GEMMs for the projections, the tensor-core flash
// attention (or the attention program) over the cache, which gets the chunk's keys and values.
#pragma once
#include <cublas_v2.h>

#include "engine/cuda/engine_state.h"
#include "engine/cuda/program_attention.h"

namespace gqa::cuda {

constexpr int64_t kLogitRows = 64;  // rows of the all-logits lm_head GEMM at a time (b.logits holds as many)

struct PrefillContext {
  const Exec& ex;
  cublasHandle_t cublas;
  const DeviceModel& m;
  const Buffers& b;
  ProgramAttention* program;  // null: the stock attention
};

// The chunk's T token ids are in b.tokens and its first position `pos` in *b.pos too. Logits go to host_rows: every
// row's with all_logits ([T][vocab], synchronously), else the last row's when last_chunk (asynchronously).
void prefill_chunk(const PrefillContext& c, int64_t pos, int64_t T, bool last_chunk, bool all_logits, float* host_rows);

}  // namespace gqa::cuda
