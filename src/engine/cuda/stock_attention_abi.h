// The CUDA engine's stock attention kernels (attention_decode.cu, attention_prefill.cu) behind the attention
// ABI (include/gqa/abi.h), so that the evaluator times candidates against exactly what the engine runs.
#pragma once
#include <cstddef>

#include "gqa/abi.h"

namespace gqa::cuda {

// The whole call as a gqa_attention_fn: prepare + engine kernels below. Supports what the engine's kernels
// address: head_dim 64/128, groups 1/2/4/8, the engine's head-major KV layout (k_stride_pos = head_dim,
// k_stride_head = capacity * head_dim, v strides equal to k's; any sequence stride), decode batches of any
// size up to 65535 (one launch for the whole ragged batch) and single-sequence prefill with exact host bounds
// (total_q = max_q_len = the query count). Anything else: GQA_ERR_UNSUPPORTED. Workspace:
// stock_attention_workspace_bytes(a), which gqa_workspace_min_bytes covers for the shapes above.
int stock_attention_abi(const gqa_attention_args* a);

// The two parts, so that a benchmark can time the engine's kernels alone. `prepare`: decode zeroes the
// split counters; prefill writes the start position into the workspace (its kernel reads the bf16 q). `engine_kernels`: decode = the split-KV kernel over the whole batch (bf16 q in, bf16 out);
// prefill = the engine's prefill kernel (bf16 out). Both enqueue on a->stream, graph-safe. After one
// `prepare`, `engine_kernels` may be called again on the same workspace (decode re-arms its counters).
int stock_attention_prepare(const gqa_attention_args* a);
int stock_attention_engine_kernels(const gqa_attention_args* a);

size_t stock_attention_workspace_bytes(const gqa_attention_args* a);
// Split count the wrapper uses for a decode: attention_decode_splits over the whole batch, at most
// GQA_MAX_KV_SPLITS (the ABI's workspace guarantee).
int stock_attention_decode_splits(const gqa_attention_args* a);

}  // namespace gqa::cuda
