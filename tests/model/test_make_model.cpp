// make_model tests: preset values, byte-for-byte determinism (pinned by a golden hash so a change of
// generator, compiler or machine shows up), the written directory loading back, and weight statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/dtype.h"
#include "model/make_model.h"
#include "model/weights.h"
#include "model_test_util.h"

namespace gqa {
namespace {

using nlohmann::json;
using testing::TempDir;

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// One written model per (preset, seed) for the tests that only read it.
const std::string& model_dir(const std::string& preset, uint64_t seed) {
  static TempDir root;
  static std::map<std::string, std::string> made;
  std::string key = preset + "-" + std::to_string(seed);
  auto it = made.find(key);
  if (it == made.end()) {
    std::string dir = root.file(key);
    make_random_model(preset_config(preset), seed, dir, "");
    it = made.emplace(key, dir).first;
  }
  return it->second;
}

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, t.data, v.data(), v.size());
  return v;
}

struct Moments {
  double mean, std;
};
Moments moments(const std::vector<float>& v) {
  double s = 0, s2 = 0;
  for (float x : v) s += x;
  double mean = s / static_cast<double>(v.size());
  for (float x : v) s2 += (x - mean) * (x - mean);
  return {mean, std::sqrt(s2 / static_cast<double>(v.size()))};
}

TEST(Presets, NamesAndUnknown) {
  EXPECT_EQ(preset_names(), (std::vector<std::string>{"qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b",
                                                      "qwen3-32b", "tiny", "tiny-gqa4", "tiny-32x8"}));
  EXPECT_ERROR_CONTAINS(preset_config("qwen3-7b"),
                        "[make-model] unknown preset 'qwen3-7b' (known: qwen3-0.6b, qwen3-1.7b, qwen3-4b, qwen3-8b, "
                        "qwen3-14b, qwen3-32b, tiny, tiny-gqa4, tiny-32x8)");
}

// The larger dense sizes: their published config.json values, and the parameter counts their model cards give
// (total and without the embeddings, to the cards' precision: 1.7B (1.4B), 4.0B (3.6B), 8.2B (6.95B),
// 14.8B (13.2B), 32.8B (31.2B)).
TEST(Presets, LargerQwen3SizesAreTheRealConfigs) {
  struct Want {
    const char* name;
    int64_t hidden, inter, layers, heads;
    bool tied;
    int64_t params, non_embedding;
  };
  for (const Want& w : {Want{"qwen3-1.7b", 2048, 6144, 28, 16, true, 1'720'574'976, 1'409'410'048},
                        Want{"qwen3-4b", 2560, 9728, 36, 32, true, 4'022'468'096, 3'633'511'936},
                        Want{"qwen3-8b", 4096, 12288, 36, 32, false, 8'190'735'360, 6'946'075'648},
                        Want{"qwen3-14b", 5120, 17408, 40, 40, false, 14'768'307'200, 13'212'482'560},
                        Want{"qwen3-32b", 5120, 25600, 64, 64, false, 32'762'123'264, 31'206'298'624}}) {
    const ModelConfig c = preset_config(w.name);
    EXPECT_EQ(c.hidden_size, w.hidden) << w.name;
    EXPECT_EQ(c.intermediate_size, w.inter) << w.name;
    EXPECT_EQ(c.num_hidden_layers, w.layers) << w.name;
    EXPECT_EQ(c.num_attention_heads, w.heads) << w.name;
    EXPECT_EQ(c.num_key_value_heads, 8) << w.name;
    EXPECT_EQ(c.head_dim, 128) << w.name;
    EXPECT_EQ(c.tie_word_embeddings, w.tied) << w.name;
    EXPECT_EQ(c.vocab_size, 151936) << w.name;
    EXPECT_EQ(c.parameter_count(), w.params) << w.name;
    const int64_t embeddings = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
    EXPECT_EQ(c.parameter_count() - embeddings, w.non_embedding) << w.name;
  }
}

TEST(Presets, Qwen3_06bIsTheRealConfig) {
  ModelConfig c = preset_config("qwen3-0.6b");
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.num_hidden_layers, 28);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{151645});
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.parameter_count(), 596'049'920);
}

TEST(Presets, TinyPresets) {
  ModelConfig t = preset_config("tiny");
  EXPECT_EQ(t.num_attention_heads, 16);
  EXPECT_EQ(t.num_key_value_heads, 8);
  EXPECT_EQ(t.head_dim, 128);
  EXPECT_EQ(t.hidden_size, 64);
  EXPECT_EQ(t.intermediate_size, 128);
  EXPECT_EQ(t.num_hidden_layers, 2);
  EXPECT_EQ(t.vocab_size, 151936);
  EXPECT_EQ(t.max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(t.rope_theta, 1e6);
  EXPECT_TRUE(t.tie_word_embeddings);

  ModelConfig w = preset_config("tiny-32x8");
  EXPECT_EQ(w.num_attention_heads, 32);
  EXPECT_EQ(w.num_key_value_heads, 8);
  EXPECT_EQ(w.head_dim, 128);
  EXPECT_EQ(w.q_dim(), 4096);
  EXPECT_EQ(w.hidden_size, 256);
  EXPECT_TRUE(w.tie_word_embeddings);

  ModelConfig g = preset_config("tiny-gqa4");
  EXPECT_EQ(g.num_attention_heads, 8);
  EXPECT_EQ(g.num_key_value_heads, 2);
  EXPECT_EQ(g.gqa_group(), 4);
  EXPECT_EQ(g.head_dim, 64);
  EXPECT_EQ(g.hidden_size, 96);
  EXPECT_EQ(g.intermediate_size, 192);
  EXPECT_EQ(g.num_hidden_layers, 3);
  EXPECT_FALSE(g.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(g.rope_theta, 10000.0);
  EXPECT_EQ(g.vocab_size, 151936);
  EXPECT_EQ(g.max_position_embeddings, 4096);
}

class Determinism : public ::testing::TestWithParam<std::string> {};

TEST_P(Determinism, SameSeedSameBytesOtherSeedOtherWeights) {
  TempDir tmp;
  const ModelConfig c = preset_config(GetParam());
  make_random_model(c, 7, tmp.file("a"), "");
  make_random_model(c, 7, tmp.file("b"), "");
  make_random_model(c, 8, tmp.file("c"), "");
  for (const char* f : {"model.safetensors", "config.json", "generation_config.json"}) {
    SCOPED_TRACE(f);
    std::string a = testing::read_bytes(tmp.file(std::string("a/") + f));
    ASSERT_FALSE(a.empty());
    EXPECT_TRUE(a == testing::read_bytes(tmp.file(std::string("b/") + f)));
  }
  EXPECT_EQ(testing::read_bytes(tmp.file("a/config.json")), testing::read_bytes(tmp.file("c/config.json")));
  // Every tensor, not just the file, must change with the seed.
  SafetensorsFile a(tmp.file("a/model.safetensors")), other(tmp.file("c/model.safetensors"));
  ASSERT_EQ(a.header().tensors.size(), other.header().tensors.size());
  for (size_t i = 0; i < a.header().tensors.size(); ++i) {
    Tensor x = a.tensor(a.header().tensors[i]), y = other.tensor(other.header().tensors[i]);
    ASSERT_EQ(x.name, y.name);
    EXPECT_NE(std::memcmp(x.data, y.data, x.nbytes()), 0) << x.name;
  }
}

INSTANTIATE_TEST_SUITE_P(TinyPresets, Determinism, ::testing::Values("tiny", "tiny-gqa4"),
                         [](const auto& info) { return info.param == "tiny" ? std::string("tiny") : "tiny_gqa4"; });

TEST(MakeModel, GoldenBytes) {
  // Pins the generator: these hashes must be the same on every machine and compiler. If the
  // generator is changed on purpose, update them (and say so: every random model changes).
  EXPECT_EQ(fnv1a(testing::read_bytes(model_dir("tiny", 0) + "/model.safetensors")), 0xf084fd9717bd3d1cull);
  EXPECT_EQ(fnv1a(testing::read_bytes(model_dir("tiny-gqa4", 1) + "/model.safetensors")), 0x4759229e67c093a9ull);
}

TEST(MakeModel, WrittenDirectoryLoadsBack) {
  for (const std::string preset : {"tiny", "tiny-gqa4"}) {
    SCOPED_TRACE(preset);
    const std::string& dir = model_dir(preset, 0);
    ModelConfig want = preset_config(preset);
    ModelConfig c = ModelConfig::load(dir + "/config.json");
    EXPECT_EQ(c.to_hf_json(), want.to_hf_json());
    WeightStore store = WeightStore::open(dir);
    Qwen3Weights w = load_qwen3_weights(store, c);
    EXPECT_EQ(w.layers.size(), static_cast<size_t>(want.num_hidden_layers));
    EXPECT_EQ(w.embed_tokens.dtype, DType::BF16);
    EXPECT_EQ(w.lm_head.data == w.embed_tokens.data, want.tie_word_embeddings);
    SafetensorsFile f(dir + "/model.safetensors");
    int64_t params = 0;
    for (const TensorInfo& t : f.header().tensors) params += t.numel();
    EXPECT_EQ(params, want.parameter_count());
    // transformers refuses safetensors files without format "pt" in the metadata.
    EXPECT_EQ(f.header().metadata.at("format"), "pt");

    json gen = json::parse(testing::read_bytes(dir + "/generation_config.json"));
    EXPECT_EQ(gen, json({{"bos_token_id", 151643}, {"eos_token_id", {151645, 151643}}, {"do_sample", false}}));
  }
}

// Intended init: q/k/v/gate/up std 1/sqrt(fan_in), o/down 2/sqrt(fan_in), layer norms 1 + N(0, 0.05),
// q/k norms 2 + N(0, 0.1), final norm 8 + N(0, 0.4), embeddings and lm_head std 0.5/sqrt(hidden).
TEST(MakeModel, WeightStatisticsMatchIntent) {
  const ModelConfig c = preset_config("tiny-gqa4");
  WeightStore store = WeightStore::open(model_dir("tiny-gqa4", 0));
  Qwen3Weights w = load_qwen3_weights(store, c);
  auto check = [](const Tensor& t, double mean, double std) {
    SCOPED_TRACE(t.name);
    Moments m = moments(to_f32(t));
    // Small tensors (norms: 64-96 values) get a sampling tolerance; big ones must be tight.
    double tol = t.numel() < 1000 ? 0.3 : 0.03;
    EXPECT_NEAR(m.mean, mean, std * (t.numel() < 1000 ? 0.5 : 0.05));
    EXPECT_NEAR(m.std, std, std * tol);
  };
  const double h = static_cast<double>(c.hidden_size);
  check(w.embed_tokens, 0, 0.5 / std::sqrt(h));
  check(w.lm_head, 0, 0.5 / std::sqrt(h));
  check(w.norm, 8, 0.4);
  for (const Qwen3LayerWeights& l : w.layers) {
    check(l.input_layernorm, 1, 0.05);
    check(l.post_attention_layernorm, 1, 0.05);
    check(l.q_norm, 1, 0.05);
    check(l.k_norm, 1, 0.05);
    check(l.q_proj, 0, 1 / std::sqrt(h));
    check(l.k_proj, 0, 1 / std::sqrt(h));
    check(l.v_proj, 0, 1 / std::sqrt(h));
    check(l.gate_proj, 0, 1 / std::sqrt(h));
    check(l.up_proj, 0, 1 / std::sqrt(h));
    check(l.o_proj, 0, 2 / std::sqrt(static_cast<double>(c.q_dim())));
    check(l.down_proj, 0, 2 / std::sqrt(static_cast<double>(c.intermediate_size)));
  }
  // Bell-shaped, not uniform: about 68% of a normal's mass lies within one std (uniform: 58%).
  std::vector<float> e = to_f32(w.embed_tokens);
  Moments m = moments(e);
  size_t within = 0;
  for (float x : e) within += std::fabs(x - m.mean) < m.std;
  double frac = static_cast<double>(within) / static_cast<double>(e.size());
  EXPECT_GT(frac, 0.64);
  EXPECT_LT(frac, 0.72);
}

// A forward-free check that logits are meaningful: a unit-RMS hidden state (what the final RMSNorm
// produces) against the lm_head gives logits with std ~4, so softmax is neither flat nor one-hot.
TEST(MakeModel, LogitsAreSpreadButNotSaturated) {
  for (const std::string preset : {"tiny", "tiny-gqa4"}) {
    SCOPED_TRACE(preset);
    const ModelConfig c = preset_config(preset);
    WeightStore store = WeightStore::open(model_dir(preset, 3));
    Qwen3Weights w = load_qwen3_weights(store, c);
    std::vector<float> head = to_f32(w.lm_head), embed = to_f32(w.embed_tokens), norm = to_f32(w.norm);
    const size_t hdim = static_cast<size_t>(c.hidden_size), vocab = static_cast<size_t>(c.vocab_size);
    for (size_t token : {size_t{0}, size_t{1000}, size_t{151645}}) {
      // Hidden state = RMSNorm(embedding of another token) * norm weight: unit RMS, unrelated to rows.
      std::vector<float> x(embed.begin() + (token + 7) * hdim, embed.begin() + (token + 8) * hdim);
      double ss = 0;
      for (float v : x) ss += v * v;
      double inv = 1 / std::sqrt(ss / static_cast<double>(hdim));
      for (size_t i = 0; i < hdim; ++i) x[i] = static_cast<float>(x[i] * inv * norm[i]);
      std::vector<float> logits(vocab);
      for (size_t v = 0; v < vocab; ++v) {
        double acc = 0;
        for (size_t i = 0; i < hdim; ++i) acc += static_cast<double>(head[v * hdim + i]) * x[i];
        logits[v] = static_cast<float>(acc);
      }
      logits[token + 7] = 0;  // with tied weights the state's own token scores |x|^2; leave it out
      Moments m = moments(logits);
      EXPECT_GT(m.std, 3.0);
      EXPECT_LT(m.std, 5.0);
      double mx = *std::max_element(logits.begin(), logits.end()), z = 0;
      for (float l : logits) z += std::exp(l - mx);
      double top_p = 1 / z;
      EXPECT_GT(top_p, 1e-3) << "softmax is nearly flat";
      EXPECT_LT(top_p, 0.95) << "softmax is saturated";
    }
  }
}

TEST(MakeModel, CopiesTokenizerFiles) {
  TempDir tmp;
  std::string tok = tmp.file("tok");
  std::filesystem::create_directories(tok);
  testing::write_bytes(tok + "/tokenizer.json", "{\"model\": {}}");
  testing::write_bytes(tok + "/tokenizer_config.json", "{\"x\": 1}");
  make_random_model(preset_config("tiny"), 0, tmp.file("out"), tok);
  EXPECT_EQ(testing::read_bytes(tmp.file("out/tokenizer.json")), "{\"model\": {}}");
  EXPECT_EQ(testing::read_bytes(tmp.file("out/tokenizer_config.json")), "{\"x\": 1}");

  std::filesystem::remove(tok + "/tokenizer_config.json");
  EXPECT_ERROR_CONTAINS(make_random_model(preset_config("tiny"), 0, tmp.file("out2"), tok),
                        "[make-model] " + tok + "/tokenizer_config.json: missing");
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out2/model.safetensors"))) << "checked before writing";
}

TEST(MakeModel, RejectsInvalidConfig) {
  TempDir tmp;
  ModelConfig c = preset_config("tiny");
  c.num_key_value_heads = 3;
  EXPECT_ERROR_CONTAINS(make_random_model(c, 0, tmp.file("out"), ""), "field 'num_key_value_heads' (3) must divide");
}

}  // namespace
}  // namespace gqa
