/* gqa/abi.h: the one C ABI between gqa-evolve's engines and attention programs (version 1). Plain C so
 * that any compiler can build a program against it; a program includes this header and nothing of ours. */
#ifndef GQA_ABI_H
#define GQA_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a field, a layout or a rule below changes meaning. A program returns it from
 * gqa_abi_version(); the loader refuses a program built against another version. */
#define GQA_ABI_VERSION 1

/* Return codes of gqa_attention. Anything non-zero is an error; the engine stops and reports the code. */
#define GQA_OK 0
#define GQA_ERR_UNSUPPORTED 1   /* this program does not handle these shapes (head_dim, group, ...) */
#define GQA_ERR_WORKSPACE 2     /* the workspace given is smaller than the program needs */
#define GQA_ERR_INVALID 3       /* arguments break the rules below */
#define GQA_ERR_LAUNCH 4        /* a CUDA launch failed */

/* Element type of q, k, v and out: bfloat16, stored as its 16-bit pattern (the upper half of a float32). */
typedef uint16_t gqa_bf16;

/* Most KV splits the workspace guarantee below has room for (split-KV partials). */
#define GQA_MAX_KV_SPLITS 64

/*
 * One call computes causal grouped-query attention for a ragged batch of sequences.
 *
 * Sizes: num_seqs >= 1 sequences; num_q_heads query heads, num_kv_heads KV heads, num_q_heads a multiple
 * of num_kv_heads; query head h reads KV head h / (num_q_heads / num_kv_heads); head_dim elements per head.
 *
 * Ragged queries: sequence s owns the query rows cu_q_lens[s] .. cu_q_lens[s+1]-1 (cu_q_lens[0] = 0,
 * cu_q_lens[num_seqs] = total_q), so q_len(s) = cu_q_lens[s+1] - cu_q_lens[s] >= 1.
 *
 * Layouts (all bf16):
 *   q   [total_q][num_q_heads][head_dim], contiguous (row stride num_q_heads * head_dim).
 *   out [total_q][num_q_heads][head_dim], contiguous, same layout as q. Every element must be written.
 *   k, v: the KV cache, described by strides (in elements) so that each engine's own cache is passed
 *         without copying: key of sequence s, position p, KV head g, element i is
 *           k[s * k_stride_seq + p * k_stride_pos + g * k_stride_head + i]
 *         (head_dim elements of one (s, p, g) are contiguous). Same for v with the v_* strides.
 *         CPU engine: [pos][kv_head][head_dim]; CUDA engine: [kv_head][capacity][head_dim].
 *   kv_lens[s] >= q_len(s) keys are valid for sequence s; they already include the keys of the new
 *   queries (the engine appends them to the cache before calling).
 *
 * Causal rule: query i (0-based) of sequence s sits at position kv_lens[s] - q_len(s) + i and attends to
 * keys 0 .. that position, inclusive. Decode is q_len = 1 (attends to all kv_lens[s] keys); a prefill
 * chunk on top of an existing cache is q_len > 1 with kv_lens[s] > q_len(s).
 *
 * out = softmax(scale * q . k^T) . v per (query, head), computed with float32 accumulation or better.
 *
 * Memory spaces: on the CUDA target every pointer (q, k, v, out, cu_q_lens, kv_lens, workspace) is device
 * memory and the host may not read them; on the CPU target everything is host memory. The scalars
 * total_q, max_q_len and max_kv_len are host values: upper bounds on the device arrays' contents (for
 * sizing grids; blocks past the real lengths must do nothing), exact on the CPU target.
 *
 * Workspace: `workspace` holds at least gqa_workspace_min_bytes(args) bytes, aligned to 256 bytes, with
 * unspecified contents on entry (not zeroed, not kept between calls).
 *
 * Rules for programs: no memory allocation (no malloc/new/cudaMalloc, use the workspace), no
 * synchronisation (no cudaDeviceSynchronize / cudaStreamSynchronize), no files, processes, network or
 * environment; no state that carries results between calls. CUDA programs enqueue all their work on
 * `stream` and must be capturable into a CUDA graph (the engine replays them inside one). q, k, v,
 * cu_q_lens and kv_lens are read-only. Nothing outside out and workspace may be written.
 */
typedef struct gqa_attention_args {
  uint32_t abi_version;   /* GQA_ABI_VERSION of the caller */
  int32_t num_seqs;
  int32_t num_q_heads;
  int32_t num_kv_heads;
  int32_t head_dim;
  int32_t total_q;        /* cu_q_lens[num_seqs] (an upper bound on CUDA, exact on the CPU) */
  int32_t max_q_len;      /* >= every q_len(s) */
  int32_t max_kv_len;     /* >= every kv_lens[s] */
  const int32_t* cu_q_lens;  /* [num_seqs + 1] */
  const int32_t* kv_lens;    /* [num_seqs] */
  const gqa_bf16* q;
  const gqa_bf16* k;
  const gqa_bf16* v;
  int64_t k_stride_seq, k_stride_pos, k_stride_head;
  int64_t v_stride_seq, v_stride_pos, v_stride_head;
  gqa_bf16* out;
  float scale;            /* softmax scale, 1/sqrt(head_dim) for Qwen3 */
  int32_t num_threads;    /* CPU target: threads the program may use (OpenMP); ignored on CUDA */
  void* workspace;
  size_t workspace_bytes;
  void* stream;           /* CUDA target: the cudaStream_t to enqueue on; NULL on the CPU */
} gqa_attention_args;

/* The workspace every caller provides at least: one query head's K and V expanded to float32 and its
 * float32 score matrix [max_q_len][max_kv_len] (what a naive program materialises), and float32 partials
 * (output row plus max and sum) for GQA_MAX_KV_SPLITS splits of each (sequence, head) and one more for
 * each (query, head). */
static inline size_t gqa_workspace_min_bytes(const gqa_attention_args* a) {
  size_t expanded = (size_t)a->max_kv_len * (size_t)(2 * a->head_dim) + (size_t)a->max_q_len * (size_t)a->max_kv_len;
  size_t partials = ((size_t)GQA_MAX_KV_SPLITS * (size_t)a->num_seqs + (size_t)a->total_q) *
                    (size_t)a->num_q_heads * (size_t)(a->head_dim + 2);
  return 4 * (expanded + partials) + 4096;
}

/* The two symbols a program exports. */
typedef int (*gqa_attention_fn)(const gqa_attention_args* args);
typedef int (*gqa_abi_version_fn)(void);

#if defined(_WIN32)
#define GQA_EXPORT __declspec(dllexport)
#else
#define GQA_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
}
#endif

#endif /* GQA_ABI_H */
