// Qwen3 forward pass on the CPU: embedding, per layer RMSNorm → q/k/v → per-head q/k RMSNorm → RoPE →
// causal GQA attention over the cache → o_proj + residual → RMSNorm → SiLU MLP + residual; final
// RMSNorm and lm_head. Long prompts run in chunks so that scratch memory stays bounded.
#include "engine/cpu/cpu_engine.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "common/dtype.h"
#include "common/error.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/ops.h"

namespace gqa {

namespace {
constexpr int64_t kPrefillChunk = 256;

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, t.data, out.data(), out.size());
  return out;
}
}  // namespace

std::unique_ptr<CpuEngine> CpuEngine::open(const std::string& model_dir) {
  ModelConfig cfg = ModelConfig::load(model_dir + "/config.json");
  WeightStore store = WeightStore::open(model_dir);
  return std::make_unique<CpuEngine>(std::move(cfg), std::move(store));
}

CpuEngine::CpuEngine(ModelConfig config, WeightStore store) : cfg_(std::move(config)), store_(std::move(store)) {
  w_ = load_qwen3_weights(store_, cfg_);
  for (const auto& l : w_.layers)
    norms_.push_back({to_f32(l.input_layernorm), to_f32(l.post_attention_layernorm), to_f32(l.q_norm), to_f32(l.k_norm)});
  final_norm_ = to_f32(w_.norm);
  prefault_weights();
}

// Touches every page of the mapped weights once, so that page faults are paid at load time rather than
// inside the first (timed) prefill.
void CpuEngine::prefault_weights() const {
  std::vector<const Tensor*> all{&w_.embed_tokens, &w_.norm, &w_.lm_head};
  for (const auto& l : w_.layers)
    for (const Tensor* t : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      all.push_back(t);
  volatile uint8_t sink = 0;
  for (const Tensor* t : all) {
    const auto* p = static_cast<const uint8_t*>(t->data);
    uint8_t acc = 0;
    for (size_t off = 0; off < t->nbytes(); off += 4096) acc ^= p[off];
    sink = sink ^ acc;
  }
}

std::string CpuEngine::device_name() const {
  return fmt::format("cpu ({} threads)", omp_get_max_threads());
}

void CpuEngine::reset(int64_t capacity) {
  if (capacity <= 0) fail("engine", "cache capacity must be positive, got {}", capacity);
  if (capacity > cfg_.max_position_embeddings)
    fail("engine", "{} positions requested, but the model supports at most {} (max_position_embeddings)",
         capacity, cfg_.max_position_embeddings);
  if (cache_.capacity() != capacity) cache_ = KVCache(cfg_.num_hidden_layers, capacity, cfg_.kv_dim());
  cache_.length = 0;
  if (program_ && bf16_capacity_ != capacity) {
    const size_t n = static_cast<size_t>(cfg_.num_hidden_layers * capacity * cfg_.kv_dim());
    k_bf16_.assign(n, 0);
    v_bf16_.assign(n, 0);
    gqa_attention_args a{};
    a.num_seqs = 1, a.num_q_heads = static_cast<int32_t>(cfg_.num_attention_heads);
    a.head_dim = static_cast<int32_t>(cfg_.head_dim), a.total_q = static_cast<int32_t>(kPrefillChunk);
    a.max_q_len = a.total_q;
    a.max_kv_len = static_cast<int32_t>(capacity);
    workspace_.assign(gqa_workspace_min_bytes(&a) / 8 + 1, 0);
    bf16_capacity_ = capacity;
  }
}

// Attention of this chunk through the attention program: bf16 cache and q in, bf16 out, counted.
void CpuEngine::program_attention(int64_t layer, int64_t T, int64_t pos0) {
  if (bf16_capacity_ != cache_.capacity())
    fail("engine", "an attention program was set after reset(): call reset() again before forward");
  const int64_t D = cfg_.head_dim, nh = cfg_.num_attention_heads, kvd = cfg_.kv_dim();
  const int64_t layer_off = layer * bf16_capacity_ * kvd;
  for (int64_t i = 0; i < T * kvd; ++i) {
    k_bf16_[layer_off + pos0 * kvd + i] = f32_to_bf16(k_[i]);
    v_bf16_[layer_off + pos0 * kvd + i] = f32_to_bf16(v_[i]);
  }
  q_bf16_.resize(static_cast<size_t>(T * nh * D));
  out_bf16_.resize(q_bf16_.size());
  for (size_t i = 0; i < q_bf16_.size(); ++i) q_bf16_[i] = f32_to_bf16(q_[i]);
  const int32_t cu[2] = {0, static_cast<int32_t>(T)};
  const int32_t kv_len = static_cast<int32_t>(pos0 + T);
  gqa_attention_args a{};
  a.abi_version = GQA_ABI_VERSION;
  a.num_seqs = 1, a.num_q_heads = static_cast<int32_t>(nh), a.num_kv_heads = static_cast<int32_t>(cfg_.num_key_value_heads);
  a.head_dim = static_cast<int32_t>(D), a.total_q = static_cast<int32_t>(T), a.max_q_len = a.total_q;
  a.max_kv_len = kv_len, a.cu_q_lens = cu, a.kv_lens = &kv_len;
  a.q = q_bf16_.data(), a.k = k_bf16_.data() + layer_off, a.v = v_bf16_.data() + layer_off;
  a.k_stride_seq = a.v_stride_seq = 0, a.k_stride_pos = a.v_stride_pos = kvd, a.k_stride_head = a.v_stride_head = D;
  a.out = out_bf16_.data(), a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  a.num_threads = omp_get_max_threads();
  a.workspace = workspace_.data(), a.workspace_bytes = workspace_.size() * 8;
  ++program_calls_;
  if (int rc = program_(&a); rc != GQA_OK)
    fail("engine", "the attention program returned error {} at layer {} (positions {}..{})", rc, layer, pos0, pos0 + T - 1);
  for (size_t i = 0; i < out_bf16_.size(); ++i) att_[i] = bf16_to_f32(out_bf16_[i]);
}

void CpuEngine::ensure_scratch(int64_t T) {
  if (T <= scratch_T_) return;
  scratch_T_ = T;
  auto sz = [&](int64_t n) { return static_cast<size_t>(T * n); };
  x_.resize(sz(cfg_.hidden_size));
  h_.resize(sz(cfg_.hidden_size));
  q_.resize(sz(cfg_.q_dim()));
  k_.resize(sz(cfg_.kv_dim()));
  v_.resize(sz(cfg_.kv_dim()));
  att_.resize(sz(cfg_.q_dim()));
  gate_.resize(sz(cfg_.intermediate_size));
  up_.resize(sz(cfg_.intermediate_size));
}

const float* CpuEngine::forward(std::span<const int32_t> tokens, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) fail("engine", "forward called with no tokens");
  if (cache_.length + n > cache_.capacity())
    fail("engine", "KV cache full: {} positions + {} new tokens exceed its capacity {}", cache_.length, n,
         cache_.capacity());
  for (int32_t t : tokens)
    if (t < 0 || t >= cfg_.vocab_size) fail("engine", "token id {} is outside the vocabulary [0, {})", t, cfg_.vocab_size);
  logits_.resize(static_cast<size_t>((all_logits ? n : 1) * cfg_.vocab_size));
  for (int64_t start = 0; start < n; start += kPrefillChunk) {
    const int64_t T = std::min(kPrefillChunk, n - start);
    const bool last_chunk = start + T == n;
    float* out = all_logits ? logits_.data() + start * cfg_.vocab_size : (last_chunk ? logits_.data() : nullptr);
    forward_chunk(tokens.data() + start, T, out, all_logits);
  }
  return logits_.data();
}

void CpuEngine::forward_chunk(const int32_t* tokens, int64_t T, float* logits, bool all_logits) {
  ensure_scratch(T);
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, D = cfg_.head_dim;
  const int64_t nh = cfg_.num_attention_heads, nkv = cfg_.num_key_value_heads;
  const int64_t qd = cfg_.q_dim(), kvd = cfg_.kv_dim();
  const int64_t pos0 = cache_.length;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  for (int64_t t = 0; t < T; ++t) cpu::tensor_row_to_f32(w_.embed_tokens, tokens[t], H, x_.data() + t * H);

  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    const auto& lw = w_.layers[static_cast<size_t>(l)];
    const auto& ln = norms_[static_cast<size_t>(l)];
    cpu::rmsnorm(h_.data(), x_.data(), ln.input.data(), T, H, eps);
    cpu::matmul(q_.data(), h_.data(), lw.q_proj, T, qd, H);
    cpu::matmul(k_.data(), h_.data(), lw.k_proj, T, kvd, H);
    cpu::matmul(v_.data(), h_.data(), lw.v_proj, T, kvd, H);
    cpu::rmsnorm(q_.data(), q_.data(), ln.q.data(), T * nh, D, eps);
    cpu::rmsnorm(k_.data(), k_.data(), ln.k.data(), T * nkv, D, eps);
    cpu::rope(q_.data(), T, nh, D, pos0, cfg_.rope_theta);
    cpu::rope(k_.data(), T, nkv, D, pos0, cfg_.rope_theta);
    if (program_) {
      program_attention(l, T, pos0);
    } else {
      std::copy(k_.begin(), k_.begin() + T * kvd, cache_.k(l) + pos0 * kvd);
      std::copy(v_.begin(), v_.begin() + T * kvd, cache_.v(l) + pos0 * kvd);
      cpu::attention(att_.data(), q_.data(), cache_.k(l), cache_.v(l), T, pos0, nh, nkv, D, scale);
    }
    cpu::matmul(h_.data(), att_.data(), lw.o_proj, T, H, qd);
    for (int64_t i = 0; i < T * H; ++i) x_[i] += h_[i];

    cpu::rmsnorm(h_.data(), x_.data(), ln.post.data(), T, H, eps);
    cpu::matmul(gate_.data(), h_.data(), lw.gate_proj, T, I, H);
    cpu::matmul(up_.data(), h_.data(), lw.up_proj, T, I, H);
    cpu::silu_mul(gate_.data(), up_.data(), T * I);
    cpu::matmul(h_.data(), gate_.data(), lw.down_proj, T, H, I);
    for (int64_t i = 0; i < T * H; ++i) x_[i] += h_[i];
  }
  cache_.length = pos0 + T;
  if (!logits) return;
  if (all_logits) {
    cpu::rmsnorm(h_.data(), x_.data(), final_norm_.data(), T, H, eps);
    cpu::matmul(logits, h_.data(), w_.lm_head, T, cfg_.vocab_size, H);
  } else {
    cpu::rmsnorm(h_.data(), x_.data() + (T - 1) * H, final_norm_.data(), 1, H, eps);
    cpu::matmul(logits, h_.data(), w_.lm_head, 1, cfg_.vocab_size, H);
  }
}

}  // namespace gqa
