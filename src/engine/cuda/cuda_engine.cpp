// The CUDA engine: Qwen3 forward on the GPU (docs/engine-cuda.md). This file holds the engine's life cycle:
// load (weights up once), reset (every buffer of a cache size in one allocation, never while decoding), forward
// (prefill chunks in prefill.cpp; one token through the decode step) and the device decode loop, which replays
// the decode step (a layout of decode_steps.h, captured once into a CUDA graph: the position lives in device
// memory, so the same graph serves every step) and the sampler, several steps in flight.
//
// KV cache layout (bf16): k and v each [layer][kv_head][capacity][head_dim]; position p of a head is one
// contiguous head_dim row, and a head's positions are contiguous, so a split of the decode attention
// streams one contiguous range per KV head.
#include "engine/cuda/cuda_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "common/error.h"
#include "engine/cuda/arena.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/decode_program.h"
#include "engine/cuda/decode_steps.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/ops.h"
#include "engine/cuda/prefill.h"
#include "engine/cuda/program_attention.h"
#include "engine/cuda/trace_writer.h"

namespace gqa {

namespace {

using cuda::bf16;
using Decode = CudaEngineOptions::Decode;

constexpr int kInFlight = 4;  // decode steps queued ahead of the token the host reads
constexpr size_t kCublasWorkspace = 16u << 20;

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
  uint64_t attention_program_calls() const override {
    return (program_ ? program_->calls : 0) + decode_program_calls_;
  }
  DecodeProgramLink set_decode_attention_program(const std::string& lto, const std::string& name,
                                                 const std::string& cache_dir) override;
  std::string decode_layout() const override { return decode_layout_name(step_layout()); }

  // The layout decode steps use now: the persistent one runs its own attention or a program's device entry, so
  // with only a host-entry attention program (or a shape or tile size it cannot hold) the step is the fused one.
  Decode step_layout() const {
    if (opts_.decode == Decode::Persistent)
      return persistent_ok_ && (!program_ || decode_program_) ? Decode::Persistent : Decode::Fused;
    return opts_.decode;
  }
  // The plan of that layout, in words.
  std::string step_plan() const {
    switch (step_layout()) {
      case Decode::Persistent: return persistent_plan_;
      case Decode::Fused:
        return fmt::format("fused, {} blocks: per layer one decode_layer launch and one attention launch", ex_.sms);
      default: return "unfused: per layer six kernels";
    }
  }

 private:
  void check_supported(const std::string& dir) const;
  void allocate_buffers(int64_t capacity);
  void check_room(int64_t n) const;
  void upload_position(int64_t pos);
  void enqueue_decode_step();
  void run_decode_step();  // graph replay, or the kernels one by one
  void ensure_logit_rows(int64_t rows);
  cuda::StepContext step_context() {
    return cuda::StepContext{model_, buf_, opts_, program_ ? &*program_ : nullptr, decode_program_.get()};
  }

  CudaEngineOptions opts_;
  int device_;  // selected before any member below touches CUDA
  ModelConfig cfg_;
  std::string device_name_;
  cuda::Stream stream_;
  cuda::Exec ex_;
  cuda::CublasHandle cublas_;
  cuda::DeviceBuffer cublas_ws_;
  cuda::DeviceWeights w_;
  cuda::DeviceBuffer inv_freq_;     // [head_dim / 2] float
  cuda::DeviceBuffer layer_table_;  // [layers] cuda::PersistentLayer
  cuda::DeviceModel model_;
  bool shape_persistent_ok_ = false;  // the model's shape is one the persistent step supports
  bool persistent_ok_ = false;        // ... and this GPU holds its launch with these options (after reset())
  std::string persistent_plan_;       // ... with this plan (persistent_decode_configure)

  // Per reset(): cache, activations, logits, decode state (buf_ points into them).
  int64_t pos_ = 0;
  cuda::Buffers buf_;
  cuda::DeviceBuffer kv_, act_, logits_;
  int64_t logit_rows_ = 0;
  gqa_attention_fn program_next_ = nullptr, program_fn_ = nullptr;
  std::optional<cuda::ProgramAttention> program_;
  // A program's device entry linked into the persistent step (set_decode_attention_program): takes effect at once
  // for graphs captured from then on (reset() drops the old ones).
  std::unique_ptr<cuda::LoadedDecodeProgram> decode_program_;
  uint64_t decode_program_calls_ = 0;
  std::vector<float> host_logits_;
  cuda::PinnedBuffer ring_;  // kInFlight + 1 token slots read back by decode_on_device
  std::vector<cuda::Event> ring_events_;
  cuda::Graph step_graph_, sample_graph_;
  SamplingParams sample_graph_params_{};
};

int select_device(int device) {
  GQA_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

CudaEngine::CudaEngine(const std::string& dir, const CudaEngineOptions& opts)
    : opts_(opts), device_(select_device(opts.device)) {
  validate(opts_);
  cfg_ = ModelConfig::load(dir + "/config.json");
  cudaDeviceProp prop{};
  GQA_CUDA_CHECK(cudaGetDeviceProperties(&prop, opts.device));
  device_name_ = fmt::format("cuda ({}, sm_{}{})", prop.name, prop.major, prop.minor);
  ex_ = cuda::Exec{stream_.get(), opts.programmatic_launch && prop.major >= 9, prop.multiProcessorCount};

  check_supported(dir);

  WeightStore store = WeightStore::open(dir);
  Qwen3Weights hw = load_qwen3_weights(store, cfg_);
  w_ = cuda::upload_weights(hw, stream_.get());
  const std::string why_not = cuda::persistent_decode_unsupported(
      static_cast<int>(cfg_.hidden_size), static_cast<int>(cfg_.intermediate_size),
      static_cast<int>(cfg_.num_attention_heads), static_cast<int>(cfg_.num_key_value_heads),
      static_cast<int>(cfg_.head_dim));
  shape_persistent_ok_ = why_not.empty();
  persistent_ok_ = shape_persistent_ok_;  // until reset() has tried the launch with a cache size
  if (!shape_persistent_ok_ && opts_.decode == Decode::Persistent)
    std::fprintf(stderr, "note: the persistent decode step does not support this model (%s); decoding with the fused "
                 "layout\n", why_not.c_str());
  if (shape_persistent_ok_) {  // the persistent step reads each layer's weights through a table in device memory
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
  model_ = cuda::DeviceModel{.cfg = &cfg_,
                             .w = &w_,
                             .inv_freq = inv_freq_.as<float>(),
                             .layer_table = layer_table_.as<cuda::PersistentLayer>()};

  cublas_ws_ = cuda::DeviceBuffer(kCublasWorkspace);
  GQA_CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
  GQA_CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_ws_.get(), kCublasWorkspace));
  GQA_CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), CUBLAS_DEFAULT_MATH));
  cuda::configure_kernels();
  ring_ = cuda::PinnedBuffer((kInFlight + 1) * sizeof(int32_t));
  for (int i = 0; i <= kInFlight; ++i) ring_events_.emplace_back(false);
}

CudaEngine::~CudaEngine() { cudaStreamSynchronize(stream_.get()); }

// What every decode layout needs of the model's shape; an error names the field of config.json and the limit.
void CudaEngine::check_supported(const std::string& dir) const {
  const std::string where = dir + "/config.json";
  const int64_t nh = cfg_.num_attention_heads, nkv = cfg_.num_key_value_heads, D = cfg_.head_dim;
  if (nkv <= 0 || nh % nkv != 0)
    fail("cuda", "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", where, nh, nkv);
  if (!cuda::attention_prefill_supported(static_cast<int>(D)))
    fail("cuda", "{}: head_dim {} is not one the CUDA attention kernels support (64 or 128)", where, D);
  if (!cuda::attention_decode_supported(static_cast<int>(D), static_cast<int>(nh / nkv)))
    fail("cuda", "{}: {} query heads per KV head (num_attention_heads {} / num_key_value_heads {}) is not a group the "
         "CUDA decode attention supports (1, 2, 4, 5 or 8)", where, nh / nkv, nh, nkv);
  const std::pair<const char*, int64_t> inputs[] = {
      {"hidden_size", cfg_.hidden_size}, {"intermediate_size", cfg_.intermediate_size},
      {"num_attention_heads x head_dim", cfg_.q_dim()}};
  for (const auto& [name, k] : inputs) {
    if (k % 8 != 0) fail("cuda", "{}: {} {} is not a multiple of 8 (the decode GEMV's 16-byte loads)", where, name, k);
    if (k > cuda::kGemvMaxInput)
      fail("cuda", "{}: {} {} exceeds {}, the longest input vector the decode GEMV holds in shared memory", where,
           name, k, cuda::kGemvMaxInput);
  }
}

void CudaEngine::reset(int64_t capacity) {
  if (capacity <= 0) fail("engine", "cache capacity must be positive, got {}", capacity);
  if (capacity > cfg_.max_position_embeddings)
    fail("engine", "{} positions requested, but the model supports at most {} (max_position_embeddings)", capacity,
         cfg_.max_position_embeddings);
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  pos_ = 0;
  const bool program_changed = program_next_ != program_fn_ || (program_fn_ && capacity != buf_.capacity);
  if (program_changed) {  // attention-program mode on, off, or resized
    program_.reset();
    program_fn_ = program_next_;
    step_graph_ = cuda::Graph();
  }
  if (capacity != buf_.capacity) allocate_buffers(capacity);
  if (program_fn_ && !program_) program_.emplace(program_fn_, cfg_, buf_, stream_.get());
  if (decode_program_ && step_layout() != Decode::Persistent)
    fail("cuda", "the attention program's device entry runs in the persistent decode step, which is unavailable "
         "here (--decode-layout {}{}); see the note above", decode_layout_name(opts_.decode),
         persistent_ok_ ? "" : ", or the step cannot hold this model or cache");
  cuda::reset_device_bytes_peak();
}

Engine::DecodeProgramLink CudaEngine::set_decode_attention_program(const std::string& lto, const std::string& name,
                                                                   const std::string& cache_dir) {
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  step_graph_ = cuda::Graph();
  decode_program_.reset();
  decode_program_calls_ = 0;
  if (lto.empty()) return {};
  if (!shape_persistent_ok_)
    fail("cuda", "{}: a program's device entry runs in the persistent decode step, which does not support this "
         "model (see the note above)", name);
  const int D = static_cast<int>(cfg_.head_dim), G = static_cast<int>(cfg_.num_attention_heads / cfg_.num_key_value_heads);
  const bool wide = cuda::persistent_decode_wide(static_cast<int>(cfg_.hidden_size),
                                                 static_cast<int>(cfg_.intermediate_size),
                                                 static_cast<int>(cfg_.num_attention_heads), D);
  const std::string kernel = cuda::persistent_linkable_kernel_name(D, G, wide);
  cudaDeviceProp prop{};
  GQA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  if (prop.major != 9 || prop.minor != 0)
    fail("cuda", "{}: programs' device entries link into the persistent step for Hopper (sm_90a) only; this GPU is "
         "sm_{}{}", name, prop.major, prop.minor);
  const cuda::DecodeLink link = cuda::link_decode_program(lto, kernel, "sm_90a", cache_dir);
  auto loaded = std::make_unique<cuda::LoadedDecodeProgram>(link, kernel, name);
  if (loaded->plan().has)
    if (const std::string why = cuda::check_decode_plan(loaded->plan().plan, D); !why.empty())
      fail("cuda", "{}: {}", name, why);
  decode_program_ = std::move(loaded);
  if (buf_.capacity > 0) {  // the launch checked now, as reset() would
    persistent_ok_ = shape_persistent_ok_;
    persistent_plan_ =
        cuda::persistent_decode_configure(ex_, cuda::persistent_step_args(step_context()), &decode_program_->kernel());
  }
  return {link.seconds, link.cached};
}

// Every buffer of a cache size, then the persistent step's launch checked outside graph capture: a launch
// this GPU cannot hold means the fused layout, said once per cache size to whoever asked for the persistent
// one, so that no timing passes one layout off as another.
void CudaEngine::allocate_buffers(int64_t capacity) {
  step_graph_ = cuda::Graph();
  sample_graph_ = cuda::Graph();
  kv_.release();
  act_.release();
  logits_.release();
  logit_rows_ = 0;
  cuda::reset_device_bytes_peak();

  const int64_t L = cfg_.num_hidden_layers, H = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), nh = cfg_.num_attention_heads, D = cfg_.head_dim;
  const int nkv = static_cast<int>(cfg_.num_key_value_heads);
  buf_ = cuda::Buffers{};
  buf_.capacity = capacity;
  const size_t kv_elems = static_cast<size_t>(L * capacity * kvd);
  cuda::Arena kv;
  kv.add(buf_.k_cache, kv_elems);
  kv.add(buf_.v_cache, kv_elems);
  kv_ = kv.allocate(stream_.get());

  // Splits of the fused and unfused steps' decode attention: about split_keys keys each, ~4 blocks per SM.
  const int max_splits = std::clamp<int>(4 * ex_.sms / nkv, 1, cuda::kMaxDecodeSplits);
  buf_.n_splits = static_cast<int>(std::clamp<int64_t>((capacity + opts_.split_keys - 1) / opts_.split_keys, 1,
                                                       max_splits));
  const int64_t R = std::min(capacity, cuda::kPrefillChunk);
  const size_t splits = static_cast<size_t>(buf_.n_splits);
  cuda::Arena a;
  a.add(buf_.x, R * H);
  a.add(buf_.qkv, R * (qd + 2 * kvd));
  a.add(buf_.q, R * qd);
  a.add(buf_.att, qd);
  a.add(buf_.gu, R * 2 * I);
  a.add(buf_.hb, R * H);
  a.add(buf_.attb, R * qd);
  a.add(buf_.actb, R * I);
  a.add(buf_.part_o, splits * nh * D);
  a.add(buf_.part_ml, splits * nh * 2);
  a.add(buf_.tokens, R);
  a.add(buf_.counters, nkv, /*zeroed=*/true);
  a.add(buf_.layer_sync, cuda::decode_layer_sync_words(static_cast<int>(nh), nkv), /*zeroed=*/true);
  char* sample_scratch = nullptr;
  a.add(sample_scratch, cuda::sample_scratch_bytes(static_cast<int>(cfg_.vocab_size)));
  a.add(buf_.pers_sync, cuda::persistent_decode_sync_words(static_cast<int>(L)), /*zeroed=*/true);
  // Tags of 0 match no step, so zeroed once and never between steps.
  a.add(buf_.pers_ll,
        cuda::persistent_decode_ll_words(static_cast<int>(H), static_cast<int>(I), static_cast<int>(nh), nkv,
                                         static_cast<int>(D), ex_.sms),
        /*zeroed=*/true);
  if (shape_persistent_ok_ && !opts_.trace_file.empty())
    a.add(buf_.trace, cuda::trace_words(ex_.sms, static_cast<int>(L)));
  a.add(buf_.token, 4, /*zeroed=*/true);
  a.add(buf_.pos, 4, /*zeroed=*/true);
  a.add(buf_.rng, 2, /*zeroed=*/true);
  act_ = a.allocate(stream_.get());
  buf_.sample_scratch = sample_scratch;
  ensure_logit_rows(1);

  persistent_ok_ = shape_persistent_ok_;
  if (persistent_ok_) {
    try {
      persistent_plan_ = cuda::persistent_decode_configure(ex_, cuda::persistent_step_args(step_context()),
                                                           decode_program_ ? &decode_program_->kernel() : nullptr);
    } catch (const Error& e) {
      persistent_ok_ = false;
      if (opts_.decode == Decode::Persistent)
        std::fprintf(stderr, "note: the persistent decode step is unavailable here (%s); decoding with the fused "
                     "layout\n", e.what());
    }
  }
}

void CudaEngine::ensure_logit_rows(int64_t rows) {
  if (rows <= logit_rows_) return;
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  step_graph_ = cuda::Graph();  // they wrote into the old buffer
  sample_graph_ = cuda::Graph();
  logits_ = cuda::DeviceBuffer(static_cast<size_t>(rows * cfg_.vocab_size) * sizeof(float));
  buf_.logits = logits_.as<float>();
  logit_rows_ = rows;
}

void CudaEngine::check_room(int64_t n) const {
  if (buf_.capacity == 0) fail("engine", "reset(capacity) must be called before forward");
  if (pos_ + n > buf_.capacity)
    fail("engine", "KV cache full: {} positions + {} new tokens exceed its capacity {}", pos_, n, buf_.capacity);
}

void CudaEngine::upload_position(int64_t pos) {
  const int p = static_cast<int>(pos);
  // Pageable source: the copy has taken the value when the call returns.
  GQA_CUDA_CHECK(cudaMemcpyAsync(buf_.pos, &p, sizeof(int), cudaMemcpyHostToDevice, stream_.get()));
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
    GQA_CUDA_CHECK(cudaMemcpyAsync(buf_.token, tokens.data(), sizeof(int32_t), cudaMemcpyHostToDevice, stream_.get()));
    upload_position(pos_);
    run_decode_step();
    GQA_CUDA_CHECK(cudaMemcpyAsync(host_logits_.data(), buf_.logits, V * sizeof(float), cudaMemcpyDeviceToHost,
                                   stream_.get()));
    GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    pos_ += 1;
    return host_logits_.data();
  }
  if (all_logits) ensure_logit_rows(std::min(cuda::kLogitRows, n));
  const cuda::PrefillContext pc{ex_, cublas_.get(), model_, buf_, program_ ? &*program_ : nullptr};
  const int64_t R = std::min(buf_.capacity, cuda::kPrefillChunk);
  for (int64_t start = 0; start < n; start += R) {
    const int64_t T = std::min(R, n - start);
    GQA_CUDA_CHECK(cudaMemcpyAsync(buf_.tokens, tokens.data() + start, T * sizeof(int32_t), cudaMemcpyHostToDevice,
                                   stream_.get()));
    upload_position(pos_);
    cuda::prefill_chunk(pc, pos_, T, start + T == n, all_logits,
                        all_logits ? host_logits_.data() + start * V : host_logits_.data());
    pos_ += T;
  }
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  return host_logits_.data();
}

// One decode step for the token in buf_.token at position *buf_.pos: logits into buf_.logits, *buf_.pos advanced.
void CudaEngine::enqueue_decode_step() {
  const cuda::StepContext c = step_context();
  switch (step_layout()) {
    case Decode::Persistent: cuda::enqueue_persistent_step(ex_, c); break;
    case Decode::Fused: cuda::enqueue_fused_step(ex_, c); break;
    case Decode::Unfused: cuda::enqueue_unfused_step(ex_, c); break;
  }
}

void CudaEngine::run_decode_step() {
  const uint64_t L = static_cast<uint64_t>(cfg_.num_hidden_layers);
  if (step_layout() == Decode::Persistent) {
    if (decode_program_) decode_program_calls_ += L;
  } else if (program_) {
    program_->calls += L;
  }
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

  const cuda::SampleArgs sa{.logits = buf_.logits,
                            .vocab = static_cast<int>(cfg_.vocab_size),
                            .temperature = sampling.temperature,
                            .top_k = sampling.top_k,
                            .top_p = sampling.top_p,
                            .rng_state = buf_.rng,
                            .token = buf_.token,
                            .scratch = buf_.sample_scratch};
  const bool same_params = sample_graph_params_.temperature == sampling.temperature &&
                           sample_graph_params_.top_k == sampling.top_k && sample_graph_params_.top_p == sampling.top_p;
  if (opts_.cuda_graph && (!sample_graph_ || !same_params)) {
    sample_graph_ = cuda::Graph::capture(stream_.get(), [&] { cuda::sample(ex_, sa); });
    sample_graph_params_ = sampling;
  }
  if (opts_.cuda_graph && !step_graph_)
    step_graph_ = cuda::Graph::capture(stream_.get(), [&] { enqueue_decode_step(); });

  const unsigned long long rng = rng_state;
  GQA_CUDA_CHECK(cudaMemcpyAsync(buf_.token, &first, sizeof(int32_t), cudaMemcpyHostToDevice, stream_.get()));
  GQA_CUDA_CHECK(cudaMemcpyAsync(buf_.rng, &rng, sizeof(rng), cudaMemcpyHostToDevice, stream_.get()));
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
      GQA_CUDA_CHECK(cudaMemcpyAsync(ring + slot, buf_.token, sizeof(int32_t), cudaMemcpyDeviceToHost, stream_.get()));
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
  if (!opts_.trace_file.empty()) {
    if (buf_.trace && step_layout() == Decode::Persistent)
      cuda::write_trace(opts_.trace_file, buf_.trace, ex_.sms, static_cast<int>(cfg_.num_hidden_layers));
    else
      std::fprintf(stderr, "note: no trace written to %s: it records the persistent decode step, and this one ran "
                   "the %s layout\n", opts_.trace_file.c_str(), decode_layout_name(step_layout()));
  }
  return emitted;
}

}  // namespace

bool cuda_engine_built() { return true; }

int cuda_device_count() { return cuda::device_count(); }

std::unique_ptr<Engine> open_cuda_engine(const std::string& model_dir, const CudaEngineOptions& options) {
  validate(options);
  const int n = cuda::device_count();
  if (n == 0) fail("cuda", "no CUDA device is available (cudaGetDeviceCount found none); use --device cpu");
  if (options.device >= n)
    fail("cuda", "device {} requested but only {} CUDA device(s) are present", options.device, n);
  return std::make_unique<CudaEngine>(model_dir, options);
}

CudaEngineOptions::Decode cuda_decode_layout(const Engine& engine) {
  const auto* cuda = dynamic_cast<const CudaEngine*>(&engine);
  if (!cuda) fail("cuda", "cuda_decode_layout: not a CUDA engine ({})", engine.device_name());
  return cuda->step_layout();
}

std::string cuda_decode_plan(const Engine& engine) {
  const auto* cuda = dynamic_cast<const CudaEngine*>(&engine);
  if (!cuda) fail("cuda", "cuda_decode_plan: not a CUDA engine ({})", engine.device_name());
  return cuda->step_plan();
}

}  // namespace gqa
