// The CUDA engine's stock attention kernels (attention_decode.cu, attention_prefill.cu) behind the attention
// ABI (include/gqa/abi.h), so that the evaluator times candidates against exactly what the engine runs.
#pragma once
#include <cstddef>

#include "gqa/abi.h"

namespace gqa::cuda {

// The whole call as a gqa_attention_fn: prepare + engine kernels + finish below. Supports what the engine
// does: head_dim 64/128, groups 1/2/4/8, the engine's head-major KV layout (k_stride_pos = head_dim,
// k_stride_head = capacity * head_dim, v strides equal to k's), decode batches of any size (one launch per
// sequence) and single-sequence prefill with exact host bounds (total_q = max_q_len = the query count).
// Anything else: GQA_ERR_UNSUPPORTED. Workspace: stock_attention_workspace_bytes(a), which
// gqa_workspace_min_bytes covers for the shapes above.
int stock_attention_abi(const gqa_attention_args* a);

// The three parts, so that a benchmark can time the engine's kernels alone. The engine keeps q and the
// decode output in float32, while the ABI passes bf16: `prepare` converts q into the workspace, writes the
// per-sequence start positions and zeroes the split counters; `engine_kernels` is what the engine launches
// per layer (decode: one split-KV kernel per sequence; prefill: the tiled kernel, writing bf16 into out);
// `finish` converts the decode output to bf16 (nothing for prefill). All enqueue on a->stream, graph-safe.
int stock_attention_prepare(const gqa_attention_args* a);
int stock_attention_engine_kernels(const gqa_attention_args* a);
int stock_attention_finish(const gqa_attention_args* a);

size_t stock_attention_workspace_bytes(const gqa_attention_args* a);
// Split count the wrapper uses (the engine's rule with max_kv_len in place of the cache capacity).
int stock_attention_decode_splits(const gqa_attention_args* a);

}  // namespace gqa::cuda
