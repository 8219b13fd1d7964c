// The CUDA engine: Qwen3 forward on the GPU. Prefill runs in chunks of up to kPrefillChunk tokens with
// cuBLAS tensor-core GEMMs; a decode step (fused: per layer one persistent kernel for everything but
// attention, then the attention launch; unfused: 170 small kernels) is captured once into a CUDA graph
// (the position lives in device memory, so the same graph serves every step), and decode_on_device keeps
// several steps in flight, sampling on the GPU. Memory is allocated in reset(), never while decoding.
//
// KV cache layout (bf16): k and v each [layer][kv_head][capacity][head_dim]; position p of a head is one
// contiguous head_dim row, and a head's positions are contiguous, so a split of the decode attention
// streams one contiguous range per KV head.
#include "engine/cuda/cuda_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/ops.h"
#include "engine/cuda/program_hook.h"
#include "gqa/abi.h"

namespace gqa {

namespace {

using cuda::bf16;

constexpr int64_t kPrefillChunk = 512;   // rows of prefill activations (bounds scratch memory)
constexpr int64_t kLogitRows = 64;       // rows of the all-logits lm_head GEMM at a time
constexpr int kInFlight = 4;             // decode steps queued ahead of the token the host reads
constexpr size_t kCublasWorkspace = 16u << 20;

size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

class CudaEngine final : public Engine {
 public:
  CudaEngine(const std::string& dir, const CudaEngineOptions& opts);
  ~CudaEngine() override;

  const ModelConfig& config() const override { return cfg_; }
  std::string device_name() const override { return device_name_; }
  void reset(int64_t capacity) override;
  const float* forward(std::span<const int32_t> tokens, bool all_logits) override;
  int64_t position() const override { return pos_; }
  int64_t decode_on_device(int32_t first, int64_t count, const SamplingParams& sampling, uint64_t rng_state,
                           const std::function<bool(int32_t)>& on_token) override;
  size_t peak_device_memory_bytes() const override { return cuda::device_bytes_peak(); }
  // Attention-program hook (engine.h): from the next reset() on, every attention call goes through `fn`.
  void set_attention_program(gqa_attention_fn fn) override { program_next_ = fn; }
  uint64_t attention_program_calls() const override { return program_calls_; }

 private:
  void check_room(int64_t n) const;
  void upload_position(int64_t pos);
  void prefill_chunk(const int32_t* tokens, int64_t T, bool last_chunk, bool all_logits, float* host_rows);
  void enqueue_decode_step();

 public:
  CudaEngineOptions::Decode step_layout() const;
  bool kv_mma() const { return kv_mma_; }

 private:
  void enqueue_decode_step_unfused();
  void enqueue_decode_step_fused();
  void enqueue_decode_step_persistent();
  cuda::PersistentDecodeArgs persistent_args() const;
  // The one place a decode step calls attention (q_ -> att_ for `layer`), whichever step layout is used.
  void run_attention_decode(int64_t layer);
  void run_decode_step();  // graph replay, or the kernels one by one
  void ensure_logit_rows(int64_t rows);
  void gemm(const bf16* a, int64_t rows, const bf16* w, int64_t n, int64_t k, float* c, bool accumulate);
  int64_t capacity_ = 0, pos_ = 0;

  // ---- Attention-program mode (set_attention_program). Buffers sized in reset(): bf16 q for a prefill
  // chunk, bf16 attention output of a decode step, the ABI's device lengths (cu_q_lens[2], kv_lens[1]) and
  // the ABI's workspace. Calls are counted per execution: L per prefill chunk and per decode step.
  void setup_program_buffers();
  gqa_attention_args program_args(int64_t layer, int T, int64_t max_kv_len, const bf16* q, bf16* out) const;
  void call_program(const gqa_attention_args& a);
  void run_program_decode(int64_t layer);
  gqa_attention_fn program_next_ = nullptr, program_ = nullptr;
  uint64_t program_calls_ = 0;
  cuda::DeviceBuffer prog_buf_;
  bf16 *prog_q_ = nullptr, *prog_att_ = nullptr;
  int32_t* prog_lens_ = nullptr;
  void* prog_ws_ = nullptr;
  size_t prog_ws_bytes_ = 0;

  CudaEngineOptions opts_;
  int device_;  // selected before any member below touches CUDA
  ModelConfig cfg_;
  std::string device_name_;
  cuda::Stream stream_;
  cuda::Exec ex_;
  cuda::CublasHandle cublas_;
  cuda::DeviceBuffer cublas_ws_;
  cuda::DeviceWeights w_;
  cuda::DeviceBuffer inv_freq_;  // [head_dim / 2] float
  bool persistent_ok_ = false;    // the model's shape is one the persistent decode step supports
  bool cluster_ok_ = false;       // ... and the clustered one (and this GPU holds its launch, after reset())
  bool kv_mma_ = false;           // the persistent step's attention tiles run on tensor cores (after reset())
  cuda::DeviceBuffer layer_table_;  // [layers] cuda::PersistentLayer

  // Per reset(): cache, activations, attention partials, logits, decode state.
  cuda::DeviceBuffer kv_, act_, logits_, state_;
  bf16 *k_cache_ = nullptr, *v_cache_ = nullptr;
  float *x_ = nullptr, *qkv_ = nullptr, *q_ = nullptr, *att_ = nullptr, *gu_ = nullptr;
  bf16 *hb_ = nullptr, *attb_ = nullptr, *actb_ = nullptr;
  float *part_o_ = nullptr, *part_ml_ = nullptr;
  int32_t *tokens_ = nullptr, *token_ = nullptr;
  int* dpos_ = nullptr;
  unsigned* counters_ = nullptr;  // decode attention: splits finished per KV head
  unsigned* layer_sync_ = nullptr;  // fused decode: grid barrier and per-head counters
  unsigned* pers_sync_ = nullptr;         // persistent decode: step number, exit count
  unsigned long long* pers_ll_ = nullptr;  // persistent decode: activations as {value, tag} words
  // Profiling of the persistent step (GQA_CUDA_TRACE=FILE): per block and phase, written to FILE as CSV
  // after each decode_on_device (the last step's times).
  std::string trace_file_;
  cuda::DeviceBuffer trace_;
  void write_trace();
  unsigned long long* rng_ = nullptr;
  void* sample_scratch_ = nullptr;
  int64_t logit_rows_ = 0;
  int n_splits_ = 1;
  std::vector<float> host_logits_;
  cuda::PinnedBuffer ring_;  // kInFlight + 1 token slots read back by decode_on_device
  std::vector<cuda::Event> ring_events_;

  cuda::Graph step_graph_, sample_graph_;
  SamplingParams sample_graph_params_{};
};

// An integer tuning knob from the environment, or `dflt` when unset; out of [lo, hi] is an error.
int env_int(const char* name, int dflt, int lo, int hi) {
  const char* env = std::getenv(name);
  if (!env || !*env) return dflt;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  if (*end != '\0' || v < lo || v > hi) fail("cuda", "{}='{}' must be an integer in [{}, {}]", name, env, lo, hi);
  return static_cast<int>(v);
}

int select_device(int device) {
  GQA_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

CudaEngine::CudaEngine(const std::string& dir, const CudaEngineOptions& opts)
    : opts_(opts), device_(select_device(opts.device)) {
  cfg_ = ModelConfig::load(dir + "/config.json");
  cudaDeviceProp prop{};
  GQA_CUDA_CHECK(cudaGetDeviceProperties(&prop, opts.device));
  device_name_ = fmt::format("cuda ({}, sm_{}{})", prop.name, prop.major, prop.minor);
  ex_ = cuda::Exec{stream_.get(), opts.programmatic_launch && prop.major >= 9, prop.multiProcessorCount};
  if (const char* env = std::getenv("GQA_CUDA_DECODE"); env && *env) {
    if (std::strcmp(env, "persistent") == 0)
      opts_.decode = CudaEngineOptions::Decode::Persistent;
    else if (std::strcmp(env, "cluster") == 0)
      opts_.decode = CudaEngineOptions::Decode::Cluster;
    else if (std::strcmp(env, "fused") == 0)
      opts_.decode = CudaEngineOptions::Decode::Fused;
    else if (std::strcmp(env, "unfused") == 0)
      opts_.decode = CudaEngineOptions::Decode::Unfused;
    else
      fail("cuda", "GQA_CUDA_DECODE='{}' is not a decode layout (known: persistent, cluster, fused, unfused)", env);
  }
  if (const char* env = std::getenv("GQA_CUDA_TRACE"); env && *env) trace_file_ = env;
  opts_.layer_prefetch = env_int("GQA_CUDA_LAYER_PREFETCH", opts_.layer_prefetch, -1, 4);
  opts_.split_keys = env_int("GQA_CUDA_SPLIT_KEYS", opts_.split_keys, 1, 1 << 20);
  opts_.persistent_split_keys =
      env_int("GQA_CUDA_PERSISTENT_SPLIT_KEYS", opts_.persistent_split_keys, 1, 1 << 20);
  opts_.persistent_tile_kib = env_int("GQA_CUDA_PERSISTENT_TILE_KIB", opts_.persistent_tile_kib, 32, 192);
  opts_.persistent_poll_ns = env_int("GQA_CUDA_PERSISTENT_POLL_NS", opts_.persistent_poll_ns, 0, 10000);
  opts_.persistent_kv_tile_kib = env_int("GQA_CUDA_PERSISTENT_KV_TILE_KIB", opts_.persistent_kv_tile_kib, 8, 192);
  opts_.persistent_merge_chunk = env_int("GQA_CUDA_PERSISTENT_MERGE_CHUNK", opts_.persistent_merge_chunk, 0, 64);
  opts_.persistent_kv_mma = env_int("GQA_CUDA_PERSISTENT_KV_MMA", opts_.persistent_kv_mma ? 1 : 0, 0, 1) != 0;
  if (opts_.layer_prefetch < -1 || opts_.layer_prefetch > 4 || opts_.split_keys < 1 ||
      opts_.persistent_split_keys < 1 || opts_.persistent_tile_kib < 32 || opts_.persistent_tile_kib > 192 ||
      opts_.persistent_poll_ns < 0 || opts_.persistent_poll_ns > 10000 || opts_.persistent_kv_tile_kib < 8 ||
      opts_.persistent_kv_tile_kib > opts_.persistent_tile_kib || opts_.persistent_merge_chunk < 0 ||
      opts_.persistent_merge_chunk > 64)
    fail("cuda",
         "layer_prefetch must be -1..4, split_keys and persistent_split_keys positive, persistent_tile_kib 32..192, "
         "persistent_poll_ns 0..10000, persistent_kv_tile_kib 8..persistent_tile_kib, persistent_merge_chunk 0..64 "
         "(got {}, {}, {}, {}, {}, {}, {})",
         opts_.layer_prefetch, opts_.split_keys, opts_.persistent_split_keys, opts_.persistent_tile_kib,
         opts_.persistent_poll_ns, opts_.persistent_kv_tile_kib, opts_.persistent_merge_chunk);

  const int64_t G = cfg_.num_key_value_heads > 0 ? cfg_.num_attention_heads / cfg_.num_key_value_heads : 0;
  if (cfg_.num_key_value_heads <= 0 || cfg_.num_attention_heads % cfg_.num_key_value_heads != 0 ||
      !cuda::attention_decode_supported(static_cast<int>(cfg_.head_dim), static_cast<int>(G)) ||
      !cuda::attention_prefill_supported(static_cast<int>(cfg_.head_dim)))
    fail("cuda", "{}: head_dim {} with {} query heads per KV head is not supported by the CUDA attention kernels "
         "(head_dim 64 or 128, group 1, 2, 4 or 8)", dir, cfg_.head_dim, G);
  if (cfg_.hidden_size % 8 != 0 || cfg_.intermediate_size % 8 != 0 || cfg_.q_dim() % 8 != 0 ||
      2 * cfg_.intermediate_size > cuda::kGemvMaxInput || cfg_.q_dim() > cuda::kGemvMaxInput)
    fail("cuda", "{}: hidden {} / intermediate {} / q_dim {} outside what the decode GEMV supports (multiples of 8; "
         "inputs up to {})", dir, cfg_.hidden_size, cfg_.intermediate_size, cfg_.q_dim(), cuda::kGemvMaxInput);

  WeightStore store = WeightStore::open(dir);
  Qwen3Weights hw = load_qwen3_weights(store, cfg_);
  w_ = cuda::upload_weights(hw, stream_.get());
  persistent_ok_ = cuda::persistent_decode_supported(
      static_cast<int>(cfg_.hidden_size), static_cast<int>(cfg_.intermediate_size),
      static_cast<int>(cfg_.num_attention_heads), static_cast<int>(cfg_.num_key_value_heads),
      static_cast<int>(cfg_.head_dim));
  cluster_ok_ = persistent_ok_ && cuda::cluster_decode_supported(
      static_cast<int>(cfg_.hidden_size), static_cast<int>(cfg_.intermediate_size),
      static_cast<int>(cfg_.num_attention_heads), static_cast<int>(cfg_.num_key_value_heads),
      static_cast<int>(cfg_.head_dim));
  if (persistent_ok_) {  // the persistent step reads each layer's weights through a table in device memory
    std::vector<cuda::PersistentLayer> table;
    for (const auto& l : w_.layers)
      table.push_back({l.attn_norm, l.wqkv, l.q_norm, l.k_norm, l.wo, l.mlp_norm, l.wgu, l.wdown});
    layer_table_ = cuda::DeviceBuffer(table.size() * sizeof(cuda::PersistentLayer));
    GQA_CUDA_CHECK(cudaMemcpyAsync(layer_table_.get(), table.data(), table.size() * sizeof(cuda::PersistentLayer),
                                   cudaMemcpyHostToDevice, stream_.get()));
  }

  // RoPE inverse frequencies exactly as the CPU engine (and transformers) compute them.
  const int64_t half = cfg_.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv[i] = static_cast<float>(1.0 / std::pow(cfg_.rope_theta, static_cast<double>(2 * i) / cfg_.head_dim));
  inv_freq_ = cuda::DeviceBuffer(inv.size() * sizeof(float));
  GQA_CUDA_CHECK(cudaMemcpyAsync(inv_freq_.get(), inv.data(), inv.size() * sizeof(float), cudaMemcpyHostToDevice,
                                 stream_.get()));
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));

  cublas_ws_ = cuda::DeviceBuffer(kCublasWorkspace);
  GQA_CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
  GQA_CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_ws_.get(), kCublasWorkspace));
  GQA_CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), CUBLAS_DEFAULT_MATH));
  cuda::configure_kernels();
  ring_ = cuda::PinnedBuffer((kInFlight + 1) * sizeof(int32_t));
  for (int i = 0; i <= kInFlight; ++i) ring_events_.emplace_back(false);
}

CudaEngine::~CudaEngine() { cudaStreamSynchronize(stream_.get()); }

void CudaEngine::reset(int64_t capacity) {
  if (capacity <= 0) fail("engine", "cache capacity must be positive, got {}", capacity);
  if (capacity > cfg_.max_position_embeddings)
    fail("engine", "{} positions requested, but the model supports at most {} (max_position_embeddings)", capacity,
         cfg_.max_position_embeddings);
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  pos_ = 0;
  if (program_next_ != program_ || (program_ && capacity != capacity_)) {  // attention-program mode
    program_ = program_next_;
    program_calls_ = 0;
    step_graph_ = cuda::Graph();
    prog_buf_.release();
  }
  if (capacity == capacity_) {
    if (program_ && !prog_buf_.get()) setup_program_buffers();
    cuda::reset_device_bytes_peak();
    return;
  }
  step_graph_ = cuda::Graph();
  sample_graph_ = cuda::Graph();
  kv_.release();
  act_.release();
  logits_.release();
  state_.release();
  logit_rows_ = 0;
  cuda::reset_device_bytes_peak();

  const int64_t L = cfg_.num_hidden_layers, H = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), nh = cfg_.num_attention_heads;
  const size_t kv_elems = static_cast<size_t>(L * capacity * kvd);
  kv_ = cuda::DeviceBuffer(2 * kv_elems * sizeof(bf16));
  k_cache_ = kv_.as<bf16>();
  v_cache_ = k_cache_ + kv_elems;

  // Splits of the decode attention: about split_keys keys each, at most ~4 blocks per SM.
  const int max_splits = std::clamp<int>(4 * ex_.sms / static_cast<int>(cfg_.num_key_value_heads), 1,
                                         cuda::kMaxDecodeSplits);
  n_splits_ = static_cast<int>(
      std::clamp<int64_t>((capacity + opts_.split_keys - 1) / opts_.split_keys, 1, max_splits));

  const int64_t R = std::min(capacity, kPrefillChunk);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    size_t o = off;
    off += align_up(bytes);
    return o;
  };
  const size_t o_x = take(R * H * 4), o_qkv = take(R * (qd + 2 * kvd) * 4), o_q = take(R * qd * 4),
               o_att = take(qd * 4), o_gu = take(R * 2 * I * 4), o_hb = take(R * H * 2), o_attb = take(R * qd * 2),
               o_actb = take(R * I * 2), o_po = take(static_cast<size_t>(n_splits_) * nh * cfg_.head_dim * 4),
               o_pml = take(static_cast<size_t>(n_splits_) * nh * 2 * 4), o_tok = take(R * 4),
               o_cnt = take(static_cast<size_t>(cfg_.num_key_value_heads) * 4),
               o_sync = take(cuda::decode_layer_sync_words(static_cast<int>(nh), static_cast<int>(cfg_.num_key_value_heads)) * 4),
               o_ss = take(cuda::sample_scratch_bytes(static_cast<int>(cfg_.vocab_size)));
  const size_t pers_words = cuda::persistent_decode_sync_words();
  const size_t pers_ll = cuda::persistent_decode_ll_words(
      static_cast<int>(H), static_cast<int>(I), static_cast<int>(nh), static_cast<int>(cfg_.num_key_value_heads),
      static_cast<int>(cfg_.head_dim), ex_.sms);
  const size_t o_psync = take(pers_words * 4), o_pll = take(pers_ll * 8);
  act_ = cuda::DeviceBuffer(off);
  char* base = static_cast<char*>(act_.get());
  x_ = reinterpret_cast<float*>(base + o_x);
  qkv_ = reinterpret_cast<float*>(base + o_qkv);
  q_ = reinterpret_cast<float*>(base + o_q);
  att_ = reinterpret_cast<float*>(base + o_att);
  gu_ = reinterpret_cast<float*>(base + o_gu);
  hb_ = reinterpret_cast<bf16*>(base + o_hb);
  attb_ = reinterpret_cast<bf16*>(base + o_attb);
  actb_ = reinterpret_cast<bf16*>(base + o_actb);
  part_o_ = reinterpret_cast<float*>(base + o_po);
  part_ml_ = reinterpret_cast<float*>(base + o_pml);
  tokens_ = reinterpret_cast<int32_t*>(base + o_tok);
  counters_ = reinterpret_cast<unsigned*>(base + o_cnt);
  GQA_CUDA_CHECK(cudaMemsetAsync(counters_, 0, cfg_.num_key_value_heads * 4, stream_.get()));
  layer_sync_ = reinterpret_cast<unsigned*>(base + o_sync);
  GQA_CUDA_CHECK(cudaMemsetAsync(layer_sync_, 0, cuda::decode_layer_sync_words(static_cast<int>(nh),
                                 static_cast<int>(cfg_.num_key_value_heads)) * 4, stream_.get()));
  sample_scratch_ = base + o_ss;
  pers_sync_ = reinterpret_cast<unsigned*>(base + o_psync);
  GQA_CUDA_CHECK(cudaMemsetAsync(pers_sync_, 0, pers_words * 4, stream_.get()));
  pers_ll_ = reinterpret_cast<unsigned long long*>(base + o_pll);  // tags of 0 match no step
  GQA_CUDA_CHECK(cudaMemsetAsync(pers_ll_, 0, pers_ll * 8, stream_.get()));

  state_ = cuda::DeviceBuffer(256);  // token, position, generator state
  token_ = state_.as<int32_t>();
  dpos_ = reinterpret_cast<int*>(state_.as<char>() + 16);
  rng_ = reinterpret_cast<unsigned long long*>(state_.as<char>() + 32);
  GQA_CUDA_CHECK(cudaMemsetAsync(state_.get(), 0, 256, stream_.get()));
  ensure_logit_rows(1);
  capacity_ = capacity;
  if (persistent_ok_ && !trace_file_.empty())
    trace_ = cuda::DeviceBuffer(static_cast<size_t>(ex_.sms) * (L * cuda::kPersistentPhases + 1) * 6 * 8);
  // Outside graph capture. A launch shape this GPU cannot hold means the layout below it (cluster -> persistent
  // -> fused), said once per cache size to whoever asked for that layout, so that no timing passes one layout
  // off as another.
  using Decode = CudaEngineOptions::Decode;
  auto configure = [&](bool& ok, const char* what, const char* fallback, bool asked, auto&& fn) {
    if (!ok) return;
    try {
      fn(ex_, persistent_args());
    } catch (const Error& e) {
      ok = false;
      if (asked)
        std::fprintf(stderr, "note: the %s decode step is unavailable here (%s); decoding with the %s layout\n", what,
                     e.what(), fallback);
    }
  };
  configure(persistent_ok_, "persistent", "fused", opts_.decode == Decode::Persistent || opts_.decode == Decode::Cluster,
            cuda::persistent_decode_configure);
  cluster_ok_ = cluster_ok_ && persistent_ok_;
  kv_mma_ = persistent_ok_ && cuda::persistent_decode_kv_mma(ex_, persistent_args());
  if (opts_.persistent_kv_mma && persistent_ok_ && !kv_mma_)
    std::fprintf(stderr, "note: tensor-core attention tiles need 1 or 2 query heads per KV head and the driver's "
                 "tensor maps; the persistent step's attention runs on CUDA cores\n");
  configure(cluster_ok_, "clustered", "persistent", opts_.decode == Decode::Cluster, cuda::cluster_decode_configure);
  if (program_) setup_program_buffers();
}

// ---- Attention-program mode -------------------------------------------------------------------------

void CudaEngine::setup_program_buffers() {
  const int64_t R = std::min(capacity_, kPrefillChunk), qd = cfg_.q_dim();
  const gqa_attention_args bound = program_args(0, static_cast<int>(R), capacity_, nullptr, nullptr);
  prog_ws_bytes_ = align_up(gqa_workspace_min_bytes(&bound));
  const size_t o_q = 0, o_att = o_q + align_up(R * qd * 2), o_lens = o_att + align_up(qd * 2),
               o_ws = o_lens + align_up(16);
  prog_buf_ = cuda::DeviceBuffer(o_ws + prog_ws_bytes_);
  char* b = prog_buf_.as<char>();
  prog_q_ = reinterpret_cast<bf16*>(b + o_q);
  prog_att_ = reinterpret_cast<bf16*>(b + o_att);
  prog_lens_ = reinterpret_cast<int32_t*>(b + o_lens);
  prog_ws_ = b + o_ws;
}

gqa_attention_args CudaEngine::program_args(int64_t layer, int T, int64_t max_kv_len, const bf16* q, bf16* out) const {
  const int64_t D = cfg_.head_dim, kvd = cfg_.kv_dim();
  const size_t layer_kv = static_cast<size_t>(layer) * capacity_ * kvd;
  gqa_attention_args a{};
  a.abi_version = GQA_ABI_VERSION;
  a.num_seqs = 1, a.num_q_heads = static_cast<int32_t>(cfg_.num_attention_heads);
  a.num_kv_heads = static_cast<int32_t>(cfg_.num_key_value_heads), a.head_dim = static_cast<int32_t>(D);
  a.total_q = T, a.max_q_len = T, a.max_kv_len = static_cast<int32_t>(max_kv_len);
  a.cu_q_lens = prog_lens_, a.kv_lens = prog_lens_ + 2;
  a.q = reinterpret_cast<const gqa_bf16*>(q);
  a.k = reinterpret_cast<const gqa_bf16*>(k_cache_ + layer_kv);
  a.v = reinterpret_cast<const gqa_bf16*>(v_cache_ + layer_kv);
  a.k_stride_seq = a.v_stride_seq = static_cast<int64_t>(capacity_ * kvd);  // one sequence: unused
  a.k_stride_pos = a.v_stride_pos = D;                                       // the cache is [kv_head][capacity][D]
  a.k_stride_head = a.v_stride_head = capacity_ * D;
  a.out = reinterpret_cast<gqa_bf16*>(out);
  a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  a.workspace = prog_ws_, a.workspace_bytes = prog_ws_bytes_;
  a.stream = stream_.get();
  return a;
}

void CudaEngine::call_program(const gqa_attention_args& a) {
  const int rc = program_(&a);
  if (rc != GQA_OK) fail("cuda", "the attention program returned error code {}", rc);
}

// Decode: fused steps hand the program bf16 q straight from decode_layer and take its bf16 output back
// (q_out_bf16 / att_bf16); unfused steps convert around it. Lengths once per step, before layer 0.
void CudaEngine::run_program_decode(int64_t layer) {
  const size_t qd = static_cast<size_t>(cfg_.q_dim());
  const bool fused = step_layout() == CudaEngineOptions::Decode::Fused;
  if (layer == 0 || !fused) cuda::program_inputs(ex_, q_, fused ? 0 : qd, prog_q_, 1, dpos_, prog_lens_);
  call_program(program_args(layer, 1, capacity_, prog_q_, prog_att_));
  if (!fused) cuda::bf16_to_float(ex_, prog_att_, qd, att_);
}

void CudaEngine::ensure_logit_rows(int64_t rows) {
  if (rows <= logit_rows_) return;
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  step_graph_ = cuda::Graph();  // it wrote into the old buffer
  sample_graph_ = cuda::Graph();
  logits_ = cuda::DeviceBuffer(static_cast<size_t>(rows * cfg_.vocab_size) * sizeof(float));
  logit_rows_ = rows;
}

void CudaEngine::check_room(int64_t n) const {
  if (capacity_ == 0) fail("engine", "reset(capacity) must be called before forward");
  if (pos_ + n > capacity_)
    fail("engine", "KV cache full: {} positions + {} new tokens exceed its capacity {}", pos_, n, capacity_);
}

void CudaEngine::upload_position(int64_t pos) {
  const int p = static_cast<int>(pos);
  // Pageable source: the copy has taken the value when the call returns.
  GQA_CUDA_CHECK(cudaMemcpyAsync(dpos_, &p, sizeof(int), cudaMemcpyHostToDevice, stream_.get()));
}

// C[rows][n] (+)= A[rows][k] · W[n][k]^T in cuBLAS's column-major terms: C^T = W^T' · A^T.
void CudaEngine::gemm(const bf16* a, int64_t rows, const bf16* w, int64_t n, int64_t k, float* c, bool accumulate) {
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  GQA_CUBLAS_CHECK(cublasGemmEx(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(rows),
                                static_cast<int>(k), &alpha, w, CUDA_R_16BF, static_cast<int>(k), a, CUDA_R_16BF,
                                static_cast<int>(k), &beta, c, CUDA_R_32F, static_cast<int>(n), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
}

const float* CudaEngine::forward(std::span<const int32_t> tokens, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) fail("engine", "forward called with no tokens");
  check_room(n);
  for (int32_t t : tokens)
    if (t < 0 || t >= cfg_.vocab_size) fail("engine", "token id {} is outside the vocabulary [0, {})", t, cfg_.vocab_size);
  const int64_t V = cfg_.vocab_size;
  host_logits_.resize(static_cast<size_t>((all_logits ? n : 1) * V));

  if (n == 1) {  // the decode step: same graph as decode_on_device
    GQA_CUDA_CHECK(cudaMemcpyAsync(token_, tokens.data(), sizeof(int32_t), cudaMemcpyHostToDevice, stream_.get()));
    upload_position(pos_);
    run_decode_step();
    GQA_CUDA_CHECK(cudaMemcpyAsync(host_logits_.data(), logits_.get(), V * sizeof(float), cudaMemcpyDeviceToHost,
                                   stream_.get()));
    GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    pos_ += 1;
    return host_logits_.data();
  }
  const int64_t R = std::min(capacity_, kPrefillChunk);
  for (int64_t start = 0; start < n; start += R) {
    const int64_t T = std::min(R, n - start);
    prefill_chunk(tokens.data() + start, T, start + T == n, all_logits,
                  all_logits ? host_logits_.data() + start * V : host_logits_.data());
  }
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  return host_logits_.data();
}

void CudaEngine::prefill_chunk(const int32_t* tokens, int64_t T, bool last_chunk, bool all_logits, float* host_rows) {
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, D = cfg_.head_dim;
  const int64_t qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), V = cfg_.vocab_size;
  const int nh = static_cast<int>(cfg_.num_attention_heads), nkv = static_cast<int>(cfg_.num_key_value_heads);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const int t = static_cast<int>(T);
  GQA_CUDA_CHECK(cudaMemcpyAsync(tokens_, tokens, T * sizeof(int32_t), cudaMemcpyHostToDevice, stream_.get()));
  upload_position(pos_);
  cuda::embed(ex_, tokens_, t, w_.embed, static_cast<int>(H), x_);
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    const auto& lw = w_.layers[static_cast<size_t>(l)];
    const size_t layer_kv = static_cast<size_t>(l) * capacity_ * kvd;
    cuda::rmsnorm_rows(ex_, x_, lw.attn_norm, t, static_cast<int>(H), eps, hb_);
    gemm(hb_, T, lw.wqkv, qd + 2 * kvd, H, qkv_, false);
    cuda::QkNormRopeArgs qa;
    qa.qkv = qkv_, qa.T = t, qa.n_heads = nh, qa.n_kv = nkv, qa.head_dim = static_cast<int>(D);
    qa.q_norm = lw.q_norm, qa.k_norm = lw.k_norm, qa.eps = eps, qa.inv_freq = inv_freq_.as<float>(), qa.pos = dpos_;
    qa.q_out = q_, qa.k_cache = k_cache_ + layer_kv, qa.v_cache = v_cache_ + layer_kv;
    qa.capacity = static_cast<int>(capacity_);
    cuda::qk_norm_rope(ex_, qa);
    cuda::PrefillAttentionArgs pa;
    pa.q = q_, pa.T = t, pa.k_cache = qa.k_cache, pa.v_cache = qa.v_cache, pa.capacity = qa.capacity, pa.pos = dpos_;
    pa.n_heads = nh, pa.n_kv = nkv, pa.head_dim = static_cast<int>(D);
    pa.scale = 1.0f / std::sqrt(static_cast<float>(D)), pa.out = attb_;
    if (program_) {  // attention-program mode: bf16 q in, bf16 out straight into attb_
      cuda::program_inputs(ex_, q_, static_cast<size_t>(T * qd), prog_q_, t, dpos_, prog_lens_);
      call_program(program_args(l, t, pos_ + T, prog_q_, attb_));
      program_calls_ += 1;
    } else {
      cuda::attention_prefill(ex_, pa);
    }
    gemm(attb_, T, lw.wo, H, qd, x_, true);
    cuda::rmsnorm_rows(ex_, x_, lw.mlp_norm, t, static_cast<int>(H), eps, hb_);
    gemm(hb_, T, lw.wgu, 2 * I, H, gu_, false);
    cuda::silu_mul_rows(ex_, gu_, t, static_cast<int>(I), actb_);
    gemm(actb_, T, lw.wdown, H, I, x_, true);
  }
  pos_ += T;
  if (all_logits) {
    ensure_logit_rows(std::min<int64_t>(kLogitRows, T));
    for (int64_t r0 = 0; r0 < T; r0 += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, T - r0);
      cuda::rmsnorm_rows(ex_, x_ + r0 * H, w_.final_norm, static_cast<int>(rows), static_cast<int>(H), eps, hb_);
      gemm(hb_, rows, w_.lm_head, V, H, logits_.as<float>(), false);
      GQA_CUDA_CHECK(cudaMemcpyAsync(host_rows + r0 * V, logits_.get(), rows * V * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_.get()));
      GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));  // logits_ is reused by the next rows
    }
  } else if (last_chunk) {
    cuda::GemvArgs g;
    g.w = w_.lm_head, g.n = static_cast<int>(V), g.k = static_cast<int>(H), g.x = x_ + (T - 1) * H;
    g.norm_w = w_.final_norm, g.eps = eps, g.y = logits_.as<float>();
    cuda::gemv(ex_, cuda::GemvInput::RmsNorm, g);
    GQA_CUDA_CHECK(cudaMemcpyAsync(host_rows, logits_.get(), V * sizeof(float), cudaMemcpyDeviceToHost, stream_.get()));
  }
}

// The layout a decode step uses: the persistent one inlines the stock attention, so with an attention
// program (or a shape it does not support) the step is the fused one.
CudaEngineOptions::Decode CudaEngine::step_layout() const {
  using Decode = CudaEngineOptions::Decode;
  if (opts_.decode == Decode::Cluster && cluster_ok_ && !program_) return Decode::Cluster;
  if (opts_.decode == Decode::Persistent || opts_.decode == Decode::Cluster)
    return persistent_ok_ && !program_ ? Decode::Persistent : Decode::Fused;
  return opts_.decode;
}

// One decode step for the token in token_ at position *dpos_: logits into logits_, *dpos_ advanced.
void CudaEngine::enqueue_decode_step() {
  switch (step_layout()) {
    case CudaEngineOptions::Decode::Persistent: enqueue_decode_step_persistent(); break;
    case CudaEngineOptions::Decode::Cluster: cuda::cluster_decode(ex_, persistent_args()); break;
    case CudaEngineOptions::Decode::Fused: enqueue_decode_step_fused(); break;
    case CudaEngineOptions::Decode::Unfused: enqueue_decode_step_unfused(); break;
  }
}

cuda::PersistentDecodeArgs CudaEngine::persistent_args() const {
  cuda::PersistentDecodeArgs a;
  a.layers = static_cast<int>(cfg_.num_hidden_layers), a.hidden = static_cast<int>(cfg_.hidden_size);
  a.inter = static_cast<int>(cfg_.intermediate_size), a.n_heads = static_cast<int>(cfg_.num_attention_heads);
  a.n_kv = static_cast<int>(cfg_.num_key_value_heads), a.head_dim = static_cast<int>(cfg_.head_dim);
  a.vocab = static_cast<int>(cfg_.vocab_size), a.eps = static_cast<float>(cfg_.rms_norm_eps);
  a.layer = layer_table_.as<cuda::PersistentLayer>(), a.embed = w_.embed, a.final_norm = w_.final_norm;
  a.lm_head = w_.lm_head, a.inv_freq = inv_freq_.as<float>(), a.token = token_, a.pos = dpos_;
  a.k_cache = k_cache_, a.v_cache = v_cache_, a.capacity = static_cast<int>(capacity_);
  a.ll = pers_ll_, a.logits = logits_.as<float>();
  a.sync = pers_sync_, a.split_keys = opts_.persistent_split_keys, a.tile_kib = opts_.persistent_tile_kib;
  a.poll_ns = opts_.persistent_poll_ns, a.kv_tile_kib = opts_.persistent_kv_tile_kib;
  a.merge_chunk = opts_.persistent_merge_chunk, a.kv_mma = opts_.persistent_kv_mma;
  a.trace = trace_.as<unsigned long long>();
  return a;
}

void CudaEngine::enqueue_decode_step_persistent() { cuda::persistent_decode(ex_, persistent_args()); }

void CudaEngine::run_attention_decode(int64_t layer) {
  if (program_) {
    run_program_decode(layer);
    return;
  }
  const int64_t D = cfg_.head_dim;
  const size_t layer_kv = static_cast<size_t>(layer) * capacity_ * cfg_.kv_dim();
  cuda::DecodeAttentionArgs da;
  da.q = q_, da.k_cache = k_cache_ + layer_kv, da.v_cache = v_cache_ + layer_kv;
  da.capacity = static_cast<int>(capacity_), da.pos = dpos_;
  da.n_heads = static_cast<int>(cfg_.num_attention_heads), da.n_kv = static_cast<int>(cfg_.num_key_value_heads);
  da.head_dim = static_cast<int>(D), da.n_splits = n_splits_;
  da.scale = 1.0f / std::sqrt(static_cast<float>(D));
  da.part_o = part_o_, da.part_ml = part_ml_, da.counters = counters_, da.out = att_;
  cuda::attention_decode(ex_, da);
}

// Launch l (0..L) finishes layer l-1 (o_proj, MLP) and starts layer l (qkv, norms, RoPE, cache); attention
// of layer l runs between launches l and l+1: 2 L + 1 kernels, then the lm_head GEMV.
void CudaEngine::enqueue_decode_step_fused() {
  const int64_t L = cfg_.num_hidden_layers;
  const size_t kvd = static_cast<size_t>(cfg_.kv_dim());
  for (int64_t l = 0; l <= L; ++l) {
    cuda::DecodeLayerArgs a;
    a.hidden = static_cast<int>(cfg_.hidden_size), a.inter = static_cast<int>(cfg_.intermediate_size);
    a.n_heads = static_cast<int>(cfg_.num_attention_heads), a.n_kv = static_cast<int>(cfg_.num_key_value_heads);
    a.head_dim = static_cast<int>(cfg_.head_dim), a.eps = static_cast<float>(cfg_.rms_norm_eps);
    a.x = x_, a.sync = layer_sync_, a.pos = dpos_, a.early_prefetch = opts_.layer_prefetch;
    if (l > 0) {
      const auto& pw = w_.layers[static_cast<size_t>(l - 1)];
      a.wo = pw.wo, a.mlp_norm = pw.mlp_norm, a.wgu = pw.wgu, a.wdown = pw.wdown, a.att = att_, a.gu = gu_;
      if (program_) a.att = nullptr, a.att_bf16 = prog_att_;  // attention-program mode
    } else {
      a.token = token_, a.embed = w_.embed;
    }
    if (l < L) {
      const auto& lw = w_.layers[static_cast<size_t>(l)];
      a.attn_norm = lw.attn_norm, a.wqkv = lw.wqkv, a.q_norm = lw.q_norm, a.k_norm = lw.k_norm;
      a.inv_freq = inv_freq_.as<float>(), a.qkv = qkv_, a.q_out = q_;
      if (program_) a.q_out = nullptr, a.q_out_bf16 = prog_q_;  // attention-program mode
      a.k_cache = k_cache_ + static_cast<size_t>(l) * capacity_ * kvd;
      a.v_cache = v_cache_ + static_cast<size_t>(l) * capacity_ * kvd;
      a.capacity = static_cast<int>(capacity_);
    }
    cuda::decode_layer(ex_, a);
    if (l < L) run_attention_decode(l);
  }
  cuda::GemvArgs g;
  g.w = w_.lm_head, g.n = static_cast<int>(cfg_.vocab_size), g.k = static_cast<int>(cfg_.hidden_size), g.x = x_;
  g.norm_w = w_.final_norm, g.eps = static_cast<float>(cfg_.rms_norm_eps), g.y = logits_.as<float>();
  g.advance_pos = dpos_;
  cuda::gemv(ex_, cuda::GemvInput::RmsNorm, g);
}

void CudaEngine::enqueue_decode_step_unfused() {
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, D = cfg_.head_dim;
  const int64_t qd = cfg_.q_dim(), kvd = cfg_.kv_dim();
  const int nh = static_cast<int>(cfg_.num_attention_heads), nkv = static_cast<int>(cfg_.num_key_value_heads);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  cuda::embed(ex_, token_, 1, w_.embed, static_cast<int>(H), x_);
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    const auto& lw = w_.layers[static_cast<size_t>(l)];
    const size_t layer_kv = static_cast<size_t>(l) * capacity_ * kvd;
    cuda::GemvArgs g;
    g.w = lw.wqkv, g.n = static_cast<int>(qd + 2 * kvd), g.k = static_cast<int>(H), g.x = x_;
    g.norm_w = lw.attn_norm, g.eps = eps, g.y = qkv_;
    cuda::gemv(ex_, cuda::GemvInput::RmsNorm, g);

    cuda::QkNormRopeArgs qa;
    qa.qkv = qkv_, qa.T = 1, qa.n_heads = nh, qa.n_kv = nkv, qa.head_dim = static_cast<int>(D);
    qa.q_norm = lw.q_norm, qa.k_norm = lw.k_norm, qa.eps = eps, qa.inv_freq = inv_freq_.as<float>(), qa.pos = dpos_;
    qa.q_out = q_, qa.k_cache = k_cache_ + layer_kv, qa.v_cache = v_cache_ + layer_kv;
    qa.capacity = static_cast<int>(capacity_);
    cuda::qk_norm_rope(ex_, qa);

    run_attention_decode(l);

    g = cuda::GemvArgs{};
    g.w = lw.wo, g.n = static_cast<int>(H), g.k = static_cast<int>(qd), g.x = att_, g.y = x_, g.accumulate = true;
    cuda::gemv(ex_, cuda::GemvInput::Plain, g);

    g = cuda::GemvArgs{};
    g.w = lw.wgu, g.n = static_cast<int>(2 * I), g.k = static_cast<int>(H), g.x = x_;
    g.norm_w = lw.mlp_norm, g.eps = eps, g.y = gu_;
    cuda::gemv(ex_, cuda::GemvInput::RmsNorm, g);

    g = cuda::GemvArgs{};
    g.w = lw.wdown, g.n = static_cast<int>(H), g.k = static_cast<int>(I), g.x = gu_, g.y = x_, g.accumulate = true;
    cuda::gemv(ex_, cuda::GemvInput::SiluMul, g);
  }
  cuda::GemvArgs g;
  g.w = w_.lm_head, g.n = static_cast<int>(cfg_.vocab_size), g.k = static_cast<int>(H), g.x = x_;
  g.norm_w = w_.final_norm, g.eps = eps, g.y = logits_.as<float>(), g.advance_pos = dpos_;
  cuda::gemv(ex_, cuda::GemvInput::RmsNorm, g);
}

void CudaEngine::run_decode_step() {
  if (program_) program_calls_ += static_cast<uint64_t>(cfg_.num_hidden_layers);
  if (!opts_.cuda_graph) {
    enqueue_decode_step();
    return;
  }
  if (!step_graph_) step_graph_ = cuda::Graph::capture(stream_.get(), [&] { enqueue_decode_step(); });
  step_graph_.launch(stream_.get());
}

int64_t CudaEngine::decode_on_device(int32_t first, int64_t count, const SamplingParams& sampling, uint64_t rng_state,
                                     const std::function<bool(int32_t)>& on_token) {
  if (!cuda::device_sampling_supported(sampling.temperature, sampling.top_k, sampling.top_p)) return -1;
  if (count <= 0) return 0;
  if (first < 0 || first >= cfg_.vocab_size)
    fail("engine", "token id {} is outside the vocabulary [0, {})", first, cfg_.vocab_size);
  check_room(count);

  cuda::SampleArgs sa;
  sa.logits = logits_.as<float>(), sa.vocab = static_cast<int>(cfg_.vocab_size);
  sa.temperature = sampling.temperature, sa.top_k = sampling.top_k, sa.top_p = sampling.top_p;
  sa.rng_state = rng_, sa.token = token_, sa.scratch = sample_scratch_;
  const bool same_params = sample_graph_params_.temperature == sampling.temperature &&
                           sample_graph_params_.top_k == sampling.top_k && sample_graph_params_.top_p == sampling.top_p;
  if (opts_.cuda_graph && (!sample_graph_ || !same_params)) {
    sample_graph_ = cuda::Graph::capture(stream_.get(), [&] { cuda::sample(ex_, sa); });
    sample_graph_params_ = sampling;
  }
  if (opts_.cuda_graph && !step_graph_)
    step_graph_ = cuda::Graph::capture(stream_.get(), [&] { enqueue_decode_step(); });

  const unsigned long long rng = rng_state;
  GQA_CUDA_CHECK(cudaMemcpyAsync(token_, &first, sizeof(int32_t), cudaMemcpyHostToDevice, stream_.get()));
  GQA_CUDA_CHECK(cudaMemcpyAsync(rng_, &rng, sizeof(rng), cudaMemcpyHostToDevice, stream_.get()));
  upload_position(pos_);

  // Steps are queued up to kInFlight ahead of the token the host reads: the GPU never waits for the host.
  int32_t* ring = ring_.as<int32_t>();
  const int slots = kInFlight + 1;
  int64_t launched = 0, emitted = 0;
  bool stop = false;
  while (emitted < count && !stop) {
    while (launched < count && launched - emitted < kInFlight) {
      run_decode_step();
      if (opts_.cuda_graph)
        sample_graph_.launch(stream_.get());
      else
        cuda::sample(ex_, sa);
      const int slot = static_cast<int>(launched % slots);
      GQA_CUDA_CHECK(cudaMemcpyAsync(ring + slot, token_, sizeof(int32_t), cudaMemcpyDeviceToHost, stream_.get()));
      GQA_CUDA_CHECK(cudaEventRecord(ring_events_[slot].get(), stream_.get()));
      ++launched;
    }
    const int slot = static_cast<int>(emitted % slots);
    GQA_CUDA_CHECK(cudaEventSynchronize(ring_events_[slot].get()));
    const int32_t tok = ring[slot];
    ++emitted;
    stop = !on_token(tok);
  }
  // Steps queued past a stop ran ahead on the cache; they sit beyond the position and are overwritten later.
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  pos_ += emitted;
  if (trace_.get()) write_trace();
  return emitted;
}

void CudaEngine::write_trace() {
  const int64_t slots = cfg_.num_hidden_layers * cuda::kPersistentPhases + 1;
  std::vector<unsigned long long> t(static_cast<size_t>(ex_.sms * slots * 6));
  GQA_CUDA_CHECK(cudaMemcpy(t.data(), trace_.get(), t.size() * 8, cudaMemcpyDeviceToHost));
  std::FILE* f = std::fopen(trace_file_.c_str(), "w");
  if (!f) fail("cuda", "GQA_CUDA_TRACE: cannot write '{}'", trace_file_);
  std::fprintf(f, "block,slot,start_ns,ready_ns,filled_ns,computed_ns,end_ns,data_wait_ns\n");
  for (int b = 0; b < ex_.sms; ++b)
    for (int64_t s = 0; s < slots; ++s) {
      const unsigned long long* e = &t[static_cast<size_t>((b * slots + s) * 6)];
      std::fprintf(f, "%d,%lld,%llu,%llu,%llu,%llu,%llu,%llu\n", b, static_cast<long long>(s), e[0], e[1], e[2], e[3],
                   e[4], e[5]);
    }
  std::fclose(f);
}

}  // namespace

bool cuda_engine_built() { return true; }

int cuda_device_count() { return cuda::device_count(); }

std::unique_ptr<Engine> open_cuda_engine(const std::string& model_dir, const CudaEngineOptions& options) {
  const int n = cuda::device_count();
  if (n == 0) fail("cuda", "no CUDA device is available (cudaGetDeviceCount found none); use --device cpu");
  if (options.device < 0 || options.device >= n)
    fail("cuda", "device {} requested but only {} CUDA device(s) are present", options.device, n);
  return std::make_unique<CudaEngine>(model_dir, options);
}

CudaEngineOptions::Decode cuda_decode_layout(const Engine& engine) {
  const auto* cuda = dynamic_cast<const CudaEngine*>(&engine);
  if (!cuda) fail("cuda", "cuda_decode_layout: not a CUDA engine ({})", engine.device_name());
  return cuda->step_layout();
}

bool cuda_persistent_kv_mma(const Engine& engine) {
  const auto* cuda = dynamic_cast<const CudaEngine*>(&engine);
  if (!cuda) fail("cuda", "cuda_persistent_kv_mma: not a CUDA engine ({})", engine.device_name());
  return cuda->kv_mma();
}

}  // namespace gqa
