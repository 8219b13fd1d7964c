// Host-callable launchers of the CUDA engine's kernels, one family per .cu file. Pointers are device
// pointers; every launcher enqueues on ex.stream, allocates nothing and never synchronises, so that the
// decode step can be captured into a CUDA graph. Positions come from device memory (`pos`) so that one
// captured graph serves every decode step.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace gqa::cuda {

using bf16 = __nv_bfloat16;

// Where and how kernels are launched: the stream, programmatic dependent launch on/off, SM count.
struct Exec {
  cudaStream_t stream = nullptr;
  bool pdl = false;
  int sms = 1;
};

// ---- gemv.cu: y[n] (=|+=) W[n][k] · in(x), W bf16 row-major, float accumulation. Batch-1 decode.
enum class GemvInput {
  Plain,    // in = x[k]
  RmsNorm,  // in = rmsnorm(x[k]) * norm_w (every block normalises the vector itself)
  SiluMul,  // in = silu(x[0..k)) * x[k..2k)  (gate then up halves of the fused MLP projection)
};
struct GemvArgs {
  const bf16* w = nullptr;
  int n = 0, k = 0;
  const float* x = nullptr;
  const bf16* norm_w = nullptr;
  float eps = 0;
  float* y = nullptr;
  bool accumulate = false;     // y += W·in (residual add) instead of y = W·in
  int* advance_pos = nullptr;  // when set, one thread increments *advance_pos (end of a decode step)
};
void gemv(const Exec& ex, GemvInput input, const GemvArgs& a);
// Largest k the GEMV accepts: its input vector (k floats) lives in shared memory (128 KiB at most; Qwen3-32B's
// down projection needs 25,600).
constexpr int kGemvMaxInput = 32768;

// ---- elementwise.cu
// x[t][:] = float(table[tokens[t]][:]) for t < T.
void embed(const Exec& ex, const int32_t* tokens, int T, const bf16* table, int hidden, float* x);
// out[t] = bf16(x[t] / rms(x[t]) * w), rows of n.
void rmsnorm_rows(const Exec& ex, const float* x, const bf16* w, int T, int n, float eps, bf16* out);
// out[t][i] = bf16(silu(gu[t][i]) * gu[t][inter + i]).
void silu_mul_rows(const Exec& ex, const float* gu, int T, int inter, bf16* out);
// Per-head RMSNorm of q and k, RoPE (rotate-half) at positions *pos + t, q to q_out (float), k and v into
// the layer's cache at those positions. qkv rows are [q heads | k heads | v heads].
struct QkNormRopeArgs {
  const float* qkv = nullptr;
  int T = 0, n_heads = 0, n_kv = 0, head_dim = 0;
  const bf16* q_norm = nullptr;
  const bf16* k_norm = nullptr;
  float eps = 0;
  const float* inv_freq = nullptr;  // [head_dim / 2], computed on the host as transformers does
  const int* pos = nullptr;
  float* q_out = nullptr;  // [T][n_heads][head_dim]
  bf16* k_cache = nullptr;  // this layer: [n_kv][capacity][head_dim]
  bf16* v_cache = nullptr;
  int capacity = 0;
};
void qk_norm_rope(const Exec& ex, const QkNormRopeArgs& a);

// ---- decode_layer.cu: the fused decode step's per-layer kernel (everything but attention), one
// persistent block per SM with grid-wide barriers between its phases:
//   [previous layer]  x += wo · att;  gu = wgu · rmsnorm(x);  x += wdown · silu(gate) * up
//   [this layer]      qkv = wqkv · rmsnorm(x)  (x = embed[token] when there is no previous layer);
//                     q/k RMSNorm + RoPE -> q_out, k_cache; v -> v_cache (at position *pos)
// The first launch of a step has no previous layer (wo == nullptr), the last no next one (wqkv == nullptr).
struct DecodeLayerArgs {
  int hidden = 0, inter = 0, n_heads = 0, n_kv = 0, head_dim = 0;
  float eps = 0;
  // previous layer (all null in the step's first launch)
  const bf16* wo = nullptr;        // [hidden][q_dim]
  const bf16* mlp_norm = nullptr;  // [hidden]
  const bf16* wgu = nullptr;       // [2 inter][hidden]
  const bf16* wdown = nullptr;     // [hidden][inter]
  const float* att = nullptr;      // [q_dim] attention output (or att_bf16)
  const bf16* att_bf16 = nullptr;
  float* gu = nullptr;             // [2 inter] scratch
  // this layer (all null in the step's last launch)
  const bf16* attn_norm = nullptr;  // [hidden]
  const bf16* wqkv = nullptr;       // [q_dim + 2 kv_dim][hidden]
  const bf16* q_norm = nullptr;
  const bf16* k_norm = nullptr;
  const float* inv_freq = nullptr;  // [head_dim / 2]
  const int32_t* token = nullptr;   // first launch: the token to embed
  const bf16* embed = nullptr;      // first launch: [vocab][hidden]
  float* qkv = nullptr;             // [q_dim + kv_dim] scratch (q and k rows before their norms)
  float* q_out = nullptr;           // [q_dim] and/or q_out_bf16
  bf16* q_out_bf16 = nullptr;
  bf16* k_cache = nullptr;          // this layer: [n_kv][capacity][head_dim]
  bf16* v_cache = nullptr;
  int capacity = 0;
  const int* pos = nullptr;
  float* x = nullptr;               // [hidden] residual stream (written in the first launch)
  unsigned* sync = nullptr;         // decode_layer_sync_words(); zero before the first launch, left re-armed
};
size_t decode_layer_sync_words(int n_heads, int n_kv);
void decode_layer(const Exec& ex, const DecodeLayerArgs& a);
void configure_decode_layer_kernels();  // called by configure_kernels()

// ---- decode_persistent.cu: the whole decode step (all layers, attention included, lm_head) as one launch
// of one block per SM. Each block streams the weight tiles (and the KV tiles of its attention split) it
// will need, in order, into a ring in shared memory with bulk copies (TMA), whatever the activations are
// doing; blocks pass activations to each other as {value, tag} words that readers poll, instead of grid
// barriers or counters. The stock attention runs inside (no attention program can be routed in).
struct PersistentLayer {
  const bf16 *attn_norm, *wqkv, *q_norm, *k_norm, *wo, *mlp_norm, *wgu, *wdown;
};
struct PersistentDecodeArgs {
  int layers = 0, hidden = 0, inter = 0, n_heads = 0, n_kv = 0, head_dim = 0, vocab = 0;
  float eps = 0;
  const PersistentLayer* layer = nullptr;  // device array [layers]
  const bf16* embed = nullptr;             // [vocab][hidden]
  const bf16* final_norm = nullptr;
  const bf16* lm_head = nullptr;           // [vocab][hidden]
  const float* inv_freq = nullptr;         // [head_dim / 2]
  const int32_t* token = nullptr;          // the token of this step
  int* pos = nullptr;                      // its position; advanced by one at the end of the step
  bf16* k_cache = nullptr;                 // all layers: [layer][n_kv][capacity][head_dim]
  bf16* v_cache = nullptr;
  int capacity = 0;
  // persistent_decode_ll_words() words: the activations passed between blocks (residual stream, qkv,
  // attention output and split partials, gate/up product). Zeroed together with sync, never in between.
  unsigned long long* ll = nullptr;
  float* logits = nullptr;   // [vocab]
  unsigned* sync = nullptr;  // persistent_decode_sync_words(layers): step number, exit count, the dynamic tiles'
                             // claim counters; zeroed once (reset)
  int split_keys = 64;       // an attention split covers at least this many keys (tuning; same results)
  int tile_kib = 64;         // weight bytes per ring stage, 32..192 KiB (shrunk to the largest two that fit, down to
                             // 32), or 0: the largest up to 64 KiB that leaves room for three stages (tuning;
                             // rounding differs)
  int poll_ns = 32;          // pause between two polls of words not written yet, 0..10000 ns (tuning; same results)
  // Profiling (null: off): thread 0 of every block writes %globaltimer at the start of each phase, when its
  // own input words have arrived, when the block's input is built, when its tiles are consumed, at its end,
  // and the time it waited for the ring's data:
  // [block][layer * 5 + phase (qkv, att, o, gu, dn); layers * 5: lm_head][6].
  unsigned long long* trace = nullptr;
  // KV bytes (K and V together) per attention tile of the ring: kv_tile_kib KiB / (4 head_dim) keys, 8..tile_kib
  // and a whole number of keys (tuning; the keys' summation order, so rounding, differs).
  int kv_tile_kib = 32;
  // The merging attention split polls at most this many splits' partials at once (0: as many as fit in shared
  // memory; 1: one per L2 round trip, as before v11). Tuning; same results.
  int merge_chunk = 0;
  // Weight tiles of at most this many rows (pairs: both halves), 0..8, are multiplied with CUDA-core FMAs instead
  // of the mma (tuning; rounding differs).
  int fma_rows = 4;
  // Rows per weight tile: what a stage holds, or (the matrix's bit set: 1 qkv, 2 o, 4 gate/up, 8 down, 16 lm_head)
  // as many but so that the busiest block gets within 3% of the fewest rows possible (rows_per_tile in
  // decode_step.cuh); -1: where that was measured to pay (balance_pays). Tuning; rounding differs.
  int balance_tiles = -1;
  // Weight tiles dealt round robin (0: tile t to block t mod blocks) or claimed at run time by each block's
  // producer when it has a free stage (1: claim_tile in decode_step.cuh). Tuning; same results.
  int dynamic_tiles = 0;
};
bool persistent_decode_supported(int hidden, int inter, int n_heads, int n_kv, int head_dim);
// Why a model shape is outside what the persistent step supports ("" when it is supported).
std::string persistent_decode_unsupported(int hidden, int inter, int n_heads, int n_kv, int head_dim);
size_t persistent_decode_sync_words(int layers);
size_t persistent_decode_ll_words(int hidden, int inter, int n_heads, int n_kv, int head_dim, int sms);
constexpr int kPersistentPhases = 5;
// A persistent step kernel and the shared memory its attributes were last set for. The built-in kernels are
// the engine's own; a PersistentKernel made by decode_program.cpp is the step with an attention program linked
// in (its name says the instantiation, persistent_linkable_kernel_name).
struct PersistentKernel {
  const void* fn = nullptr;  // the kernel's handle (cudaKernel_t of a loaded library, or a symbol's address)
  std::string name;
  size_t smem = 0;
  int occupancy = 0;
};
// linked: null for the built-in kernel.
void persistent_decode(const Exec& ex, const PersistentDecodeArgs& a, PersistentKernel* linked = nullptr);
// Everything persistent_decode does but the launch (checks, kernel attributes): call it outside graph capture.
// Returns the plan it chose, in words (persistent_decode_plan).
std::string persistent_decode_configure(const Exec& ex, const PersistentDecodeArgs& a, PersistentKernel* linked = nullptr);
// The plan the step takes for a model on a GPU of `sms` SMs and `optin_smem_bytes` of shared memory per block, in
// words: its build, ring stages and their size, rows per weight tile of each matrix, attention splits and tiles.
// Host arithmetic only (no CUDA call); throws like the launch for what it cannot hold.
std::string persistent_decode_plan(const PersistentDecodeArgs& a, int sms, int optin_smem_bytes);
// Whether the model's longest input vector needs the wide build, and the linkable kernel of an instantiation
// (decode_persistent_linkable.cu), "gqa_persistent_step_d128_g2_n3".
bool persistent_decode_wide(int hidden, int inter, int n_heads, int head_dim);
std::string persistent_linkable_kernel_name(int head_dim, int group, bool wide);

// ---- attention_decode.cu: one query token per sequence against its cached keys. Split-KV: grid
// (n_kv, n_splits, num_seqs), each block reads its range of K/V once for all query heads of its KV head and
// writes its (max, sum, unnormalised output); the last block of a (sequence, KV head) to finish merges the
// splits (one kernel, no separate combine launch).
// Batch 1 (the engine): q/out float, keys 0..*pos. Batched (the ABI): kv_lens[s] keys for sequence s,
// sequences k_stride_seq / v_stride_seq elements apart, q and/or out may be bf16 (q_bf16 / out_bf16).
struct DecodeAttentionArgs {
  const float* q = nullptr;  // [num_seqs][n_heads][head_dim]; or q_bf16
  const bf16* q_bf16 = nullptr;
  const bf16* k_cache = nullptr;  // this layer: [n_kv][capacity][head_dim] per sequence
  const bf16* v_cache = nullptr;
  int capacity = 0;
  int64_t k_stride_seq = 0, v_stride_seq = 0;  // elements from one sequence's cache to the next
  const int* pos = nullptr;        // batch 1: the query's position; keys 0..*pos are attended
  const int32_t* kv_lens = nullptr;  // when set: sequence s attends keys 0..kv_lens[s]-1 (pos unused)
  int num_seqs = 1;
  int n_heads = 0, n_kv = 0, head_dim = 0, n_splits = 1;
  float scale = 0;
  float* part_o = nullptr;   // [num_seqs][n_splits][n_heads][head_dim]
  float* part_ml = nullptr;  // [num_seqs][n_splits][n_heads][2]
  unsigned* counters = nullptr;  // [num_seqs][n_kv], zero before the first call; the merging block re-zeroes its own
  float* out = nullptr;      // [num_seqs][n_heads][head_dim]; or out_bf16
  bf16* out_bf16 = nullptr;
  // q, K/V and the lengths were complete when this launch was allowed to start (the kernel before it
  // triggers its dependents only after its own griddepcontrol.wait, and writes none of them): the blocks
  // load them before griddepcontrol.wait and wait only before their first write (partials, counters, out).
  bool inputs_ready = false;
};
bool attention_decode_supported(int head_dim, int group);
constexpr int kMaxDecodeSplits = 128;
void attention_decode(const Exec& ex, const DecodeAttentionArgs& a);
// Split count for `batch` sequences of at most max_kv_len keys: as many blocks as fit on the GPU at once
// (the kernel's occupancy × ex.sms), no split shorter than kMinDecodeSplitKeys keys, at most max_splits.
constexpr int kMinDecodeSplitKeys = 32;
int attention_decode_splits(int sms, int head_dim, int group, int n_kv, int batch, int max_kv_len, int max_splits);

// ---- attention_prefill.cu: causal attention of T new tokens at positions *pos .. *pos+T-1 over the
// cache (which already holds their keys and values). Two kernels: the tensor-core flash attention of
// attention_prefill_mma.cu (head_dim 128) and the older CUDA-core one (head_dim 64 or 128). Auto picks mma
// where it applies; tests and benchmarks may ask for either.
enum class PrefillKernel { Auto, Simt, Mma };
struct PrefillAttentionArgs {
  const float* q = nullptr;  // [T][n_heads][head_dim]; or q_bf16 (exactly one of the two)
  const bf16* q_bf16 = nullptr;
  int T = 0;
  const bf16* k_cache = nullptr;  // this layer: [n_kv][capacity][head_dim]
  const bf16* v_cache = nullptr;
  int capacity = 0;
  const int* pos = nullptr;
  int n_heads = 0, n_kv = 0, head_dim = 0;
  float scale = 0;
  bf16* out = nullptr;  // [T][n_heads][head_dim]
  PrefillKernel kernel = PrefillKernel::Auto;
  int mma_rows = 0;  // mma kernel's query rows per block: 64 or 128 forces one (tests); 0 lets it choose
};
bool attention_prefill_supported(int head_dim);
void attention_prefill(const Exec& ex, const PrefillAttentionArgs& a);
// The kernel attention_prefill runs for these arguments (Simt or Mma; resolves Auto).
PrefillKernel attention_prefill_kernel(const PrefillAttentionArgs& a);
// attention_prefill_mma.cu: the tensor-core kernel alone (attention_prefill dispatches to it).
bool attention_prefill_mma_supported(int head_dim);
void attention_prefill_mma(const Exec& ex, const PrefillAttentionArgs& a);
// Query rows per block the mma kernel uses for these arguments: mma_rows if set, else 64 when 128-row blocks
// would be fewer than 2 × ex.sms.
int attention_prefill_mma_rows(const Exec& ex, const PrefillAttentionArgs& a);

// Shared-memory opt-ins of the kernels that need more than 48 KiB. Not allowed during graph capture, so
// engines call this once before capturing; the launchers call it too (it runs once per process).
void configure_kernels();

// ---- sampling.cu: the next token from logits on the device, written to *token. Same rules and the same
// splitmix64 draws as the host Sampler (engine/sampler.h), so a seed gives the same tokens.
struct SampleArgs {
  const float* logits = nullptr;
  int vocab = 0;
  float temperature = 0;  // 0: greedy
  int top_k = 0;          // 0 or 1..kMaxDeviceTopK
  float top_p = 1;
  unsigned long long* rng_state = nullptr;  // advanced once per draw (temperature > 0)
  int32_t* token = nullptr;
  void* scratch = nullptr;  // sample_scratch_bytes(vocab)
};
constexpr int kMaxDeviceTopK = 64;
size_t sample_scratch_bytes(int vocab);
// False for parameters the device sampler does not implement (top-p without a top-k of at most
// kMaxDeviceTopK): the engine then samples on the host.
bool device_sampling_supported(float temperature, int top_k, float top_p);
void sample(const Exec& ex, const SampleArgs& a);

// ---- bandwidth.cu: read bandwidth of device memory in bytes/s, from a streaming reduction over `bytes`
// (median of `reps` timed passes after a warm-up). Allocates and frees its own buffer; synchronises.
double measure_read_bandwidth(size_t bytes, int reps);
// Fills n bf16 with deterministic values in about [-scale, scale) (benchmarks, tests).
void fill_random_bf16(const Exec& ex, bf16* p, size_t n, uint64_t seed, float scale);

}  // namespace gqa::cuda
