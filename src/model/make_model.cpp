// Random-weight Qwen3 models in HF format (presets, seeded generator, streaming writer).
// Values come from integer-only arithmetic plus one IEEE multiply (or fma), never libm or <random>
// distributions, so the same seed gives the same bytes with any compiler, libc or CPU.
#include "model/make_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/rng.h"
#include "model/safetensors.h"

namespace gqa {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Qwen3 vocabulary ids shared by every preset: <|endoftext|> and <|im_end|>.
constexpr int64_t kEndOfText = 151643;
constexpr int64_t kImEnd = 151645;

ModelConfig qwen3_06b() {
  ModelConfig c;
  c.vocab_size = 151936;
  c.hidden_size = 1024;
  c.intermediate_size = 3072;
  c.num_hidden_layers = 28;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.max_position_embeddings = 40960;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1e6;
  c.tie_word_embeddings = true;
  c.dtype = "bfloat16";
  c.bos_token_id = kEndOfText;
  c.eos_token_ids = {kImEnd};
  return c;
}

// xoshiro256++ (Blackman & Vigna): fast, and its output is fully specified by the algorithm.
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (uint64_t& w : s_) w = splitmix64(seed);
  }
  uint64_t next() {
    uint64_t result = rotl(s_[0] + s_[3], 23) + s_[0];
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// Sum of the four 16-bit lanes of a random word, centred: a bell-shaped (Irwin–Hall) integer in
// [-131070, 131070] with mean 0 and standard deviation sqrt((65536^2 - 1) / 3).
inline int32_t centred_lane_sum(uint64_t r) {
  auto sum = static_cast<int32_t>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
  return sum - 131070;
}
const double kLaneSumStd = std::sqrt((65536.0 * 65536.0 - 1.0) / 3.0);

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

// How one tensor is drawn: mean + std * (approximately standard normal).
struct Init {
  double mean;
  double std;
};

// Elements are drawn in fixed blocks, each from its own stream seeded by (seed, tensor name, block),
// so the bytes do not depend on how many threads fill the tensor.
constexpr int64_t kBlock = 1 << 16;

void fill_block(uint16_t* out, int64_t n, uint64_t stream_seed, Init init) {
  Xoshiro256 rng(stream_seed);
  const float k = static_cast<float>(init.std / kLaneSumStd);
  if (init.mean == 0.0) {
    for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(static_cast<float>(centred_lane_sum(rng.next())) * k);
  } else {
    // Explicit fma: whether a compiler would contract mean + x * k is not portable.
    const float mean = static_cast<float>(init.mean);
    for (int64_t i = 0; i < n; ++i)
      out[i] = f32_to_bf16(std::fma(static_cast<float>(centred_lane_sum(rng.next())), k, mean));
  }
}

void fill_tensor(uint16_t* out, int64_t numel, uint64_t seed, const std::string& name, Init init) {
  uint64_t tensor_state = seed ^ fnv1a(name);
  const uint64_t tensor_seed = splitmix64(tensor_state);
  const int64_t blocks = (numel + kBlock - 1) / kBlock;
  auto run = [&](int64_t first, int64_t step) {
    for (int64_t b = first; b < blocks; b += step) {
      uint64_t s = tensor_seed + static_cast<uint64_t>(b) * 0x9e3779b97f4a7c15ull;
      int64_t begin = b * kBlock;
      fill_block(out + begin, std::min(kBlock, numel - begin), splitmix64(s), init);
    }
  };
  const int64_t threads = std::min<int64_t>(blocks, std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 16));
  if (threads <= 1) {
    run(0, 1);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(run, t, threads);
  run(0, threads);
  for (auto& th : pool) th.join();
}

struct RandomTensor {
  TensorSpec spec;
  Init init;
};

// Scales, chosen by measuring greedy generation with transformers (docs/model-files.md):
// - q/k/v/gate/up N(0, 1/fan_in), so every block sees O(1) activations (RMSNorm precedes each block);
// - o_proj/down_proj std 2/sqrt(fan_in): the blocks, not the token embedding, dominate the residual;
// - embeddings and lm_head std 0.5/sqrt(hidden) and the final norm weight ~8, so the unit-RMS final
//   state gives logits of std ~4 (clear but unsaturated choices, top-1/top-2 gaps that survive bf16).
//   With tied weights a large embedding would make the model repeat its last token: every generated
//   token, fed back, pushes the residual toward its own lm_head row;
// - q_norm/k_norm weights ~1, as in trained checkpoints. (~2 made attention sharper and greedy output more
//   varied, but so sensitive that rounding q/k/v to bf16 changed the 2nd greedy token of tiny-gqa4 and the
//   GPU engine could not be checked against the CPU: measured 1/48 agreeing tokens, against 48/48 at ~1);
// - the other norm weights 1 + small noise.
std::vector<RandomTensor> qwen3_tensors(const ModelConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  const Init norm{1.0, 0.05}, qk_norm{1.0, 0.05}, final_norm{8.0, 0.4};
  auto linear = [](int64_t fan_in, double gain) { return Init{0.0, gain / std::sqrt(static_cast<double>(fan_in))}; };
  const Init embed{0.0, 0.5 / std::sqrt(h)};
  std::vector<RandomTensor> t;
  auto add = [&](std::string name, std::vector<int64_t> shape, Init init) {
    t.push_back({TensorSpec{std::move(name), DType::BF16, std::move(shape)}, init});
  };
  add("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, embed);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string p = fmt::format("model.layers.{}.", i);
    add(p + "input_layernorm.weight", {c.hidden_size}, norm);
    add(p + "self_attn.q_proj.weight", {c.q_dim(), c.hidden_size}, linear(c.hidden_size, 1));
    add(p + "self_attn.k_proj.weight", {c.kv_dim(), c.hidden_size}, linear(c.hidden_size, 1));
    add(p + "self_attn.v_proj.weight", {c.kv_dim(), c.hidden_size}, linear(c.hidden_size, 1));
    add(p + "self_attn.o_proj.weight", {c.hidden_size, c.q_dim()}, linear(c.q_dim(), 2));
    add(p + "self_attn.q_norm.weight", {c.head_dim}, qk_norm);
    add(p + "self_attn.k_norm.weight", {c.head_dim}, qk_norm);
    add(p + "post_attention_layernorm.weight", {c.hidden_size}, norm);
    add(p + "mlp.gate_proj.weight", {c.intermediate_size, c.hidden_size}, linear(c.hidden_size, 1));
    add(p + "mlp.up_proj.weight", {c.intermediate_size, c.hidden_size}, linear(c.hidden_size, 1));
    add(p + "mlp.down_proj.weight", {c.hidden_size, c.intermediate_size}, linear(c.intermediate_size, 2));
  }
  add("model.norm.weight", {c.hidden_size}, final_norm);
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, c.hidden_size}, embed);
  return t;
}

std::string pretty(const json& j) {
  return j.dump(2) + "\n";
}

}  // namespace

std::vector<std::string> preset_names() {
  return {"qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b", "tiny", "tiny-gqa4", "tiny-32x8"};
}

ModelConfig preset_config(const std::string& preset) {
  ModelConfig c = qwen3_06b();
  if (preset == "qwen3-0.6b") return c;
  // The dense Qwen3 sizes as their published config.json files give them: everything else (vocabulary,
  // head_dim 128, 8 KV heads, RoPE theta, eps, context) is 0.6B's.
  struct Size {
    const char* name;
    int64_t hidden, inter, layers, heads;
    bool tied;
  };
  for (const Size& z : {Size{"qwen3-1.7b", 2048, 6144, 28, 16, true}, Size{"qwen3-4b", 2560, 9728, 36, 32, true},
                        Size{"qwen3-8b", 4096, 12288, 36, 32, false}, Size{"qwen3-14b", 5120, 17408, 40, 40, false},
                        Size{"qwen3-32b", 5120, 25600, 64, 64, false}}) {
    if (preset != z.name) continue;
    c.hidden_size = z.hidden;
    c.intermediate_size = z.inter;
    c.num_hidden_layers = z.layers;
    c.num_attention_heads = z.heads;
    c.tie_word_embeddings = z.tied;
    return c;
  }
  if (preset == "tiny") {
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_hidden_layers = 2;
    c.max_position_embeddings = 4096;
    return c;
  }
  if (preset == "tiny-gqa4") {
    c.hidden_size = 96;
    c.intermediate_size = 192;
    c.num_hidden_layers = 3;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.max_position_embeddings = 4096;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = false;
    return c;
  }
  if (preset == "tiny-32x8") {  // Qwen3-4B's and 8B's attention (32 query heads on 8 KV heads of 128) on narrow layers
    c.hidden_size = 256;
    c.intermediate_size = 512;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 32;
    c.max_position_embeddings = 4096;
    return c;
  }
  fail("make-model", "unknown preset '{}' (known: {})", preset, fmt::join(preset_names(), ", "));
}

void make_random_model(const ModelConfig& config, uint64_t seed, const std::string& out_dir,
                       const std::string& tokenizer_dir) {
  // The weights are bf16 whatever the caller's config says, and config.json must say so.
  ModelConfig written = config;
  written.dtype = "bfloat16";
  // Round-trip through config.json's form: the written file must pass the same validation as a loaded one.
  const json config_json = written.to_hf_json();
  ModelConfig::from_json(config_json, out_dir + "/config.json");

  const std::vector<std::string> tokenizer_files = {"tokenizer.json", "tokenizer_config.json"};
  if (!tokenizer_dir.empty()) {
    for (const auto& f : tokenizer_files) {
      fs::path src = fs::path(tokenizer_dir) / f;
      std::error_code ec;
      if (!fs::is_regular_file(src, ec))
        fail("make-model", "{}: missing (needed because a tokenizer directory was given)", src.string());
    }
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail("make-model", "{}: cannot create directory: {}", out_dir, ec.message());

  const std::vector<RandomTensor> tensors = qwen3_tensors(config);
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back(t.spec);
  // transformers refuses safetensors files whose metadata lacks format "pt".
  write_safetensors_streamed((fs::path(out_dir) / "model.safetensors").string(), specs,
                             [&](size_t i, void* out, size_t nbytes) {
                               fill_tensor(static_cast<uint16_t*>(out), static_cast<int64_t>(nbytes / 2), seed,
                                           tensors[i].spec.name, tensors[i].init);
                             },
                             {{"format", "pt"}});

  // Qwen3's generation_config ends generation on <|endoftext|> (its bos id) as well as the config's eos.
  json eos = config.eos_token_ids;
  if (config.bos_token_id >= 0 && std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(),
                                            config.bos_token_id) == config.eos_token_ids.end())
    eos.push_back(config.bos_token_id);
  json generation = {
      {"bos_token_id", config.bos_token_id >= 0 ? json(config.bos_token_id) : json(nullptr)},
      {"eos_token_id", eos},
      {"do_sample", false},
  };
  write_file_atomic((fs::path(out_dir) / "generation_config.json").string(), pretty(generation), "make-model");
  for (const auto& f : tokenizer_files) {
    if (tokenizer_dir.empty()) break;
    std::string text = read_file((fs::path(tokenizer_dir) / f).string(), "make-model");
    write_file_atomic((fs::path(out_dir) / f).string(), text, "make-model");
  }
  write_file_atomic((fs::path(out_dir) / "config.json").string(), pretty(config_json), "make-model");
}

}  // namespace gqa
