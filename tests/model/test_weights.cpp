// WeightStore and load_qwen3_weights tests: single-file and sharded checkpoints, and the errors for
// missing, misshapen, mistyped, unexpected and duplicated tensors.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/weights.h"
#include "model_test_util.h"

namespace gqa {
namespace {

using nlohmann::json;
using testing::TempDir;

ModelConfig small_config(bool tied) {
  ModelConfig c;
  c.vocab_size = 64;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 128;
  c.rope_theta = 10000;
  c.tie_word_embeddings = tied;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

std::vector<TensorSpec> qwen3_specs(const ModelConfig& c, DType dt) {
  std::vector<TensorSpec> s;
  const int64_t h = c.hidden_size, i = c.intermediate_size;
  s.push_back({"model.embed_tokens.weight", dt, {c.vocab_size, h}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    s.push_back({p + "input_layernorm.weight", dt, {h}});
    s.push_back({p + "self_attn.q_proj.weight", dt, {c.q_dim(), h}});
    s.push_back({p + "self_attn.k_proj.weight", dt, {c.kv_dim(), h}});
    s.push_back({p + "self_attn.v_proj.weight", dt, {c.kv_dim(), h}});
    s.push_back({p + "self_attn.o_proj.weight", dt, {h, c.q_dim()}});
    s.push_back({p + "self_attn.q_norm.weight", dt, {c.head_dim}});
    s.push_back({p + "self_attn.k_norm.weight", dt, {c.head_dim}});
    s.push_back({p + "post_attention_layernorm.weight", dt, {h}});
    s.push_back({p + "mlp.gate_proj.weight", dt, {i, h}});
    s.push_back({p + "mlp.up_proj.weight", dt, {i, h}});
    s.push_back({p + "mlp.down_proj.weight", dt, {h, i}});
  }
  s.push_back({"model.norm.weight", dt, {h}});
  if (!c.tie_word_embeddings) s.push_back({"lm_head.weight", dt, {c.vocab_size, h}});
  return s;
}

// Each tensor's bytes are its index repeated, so tests can tell which tensor a view points at.
void write_specs(const std::string& path, const std::vector<TensorSpec>& specs) {
  write_safetensors_streamed(path, specs, [](size_t i, void* out, size_t n) { std::memset(out, int(i + 1), n); });
}

TensorSpec* find(std::vector<TensorSpec>& specs, const std::string& name) {
  for (auto& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

void remove_tensor(std::vector<TensorSpec>& specs, const std::string& name) {
  std::erase_if(specs, [&](const TensorSpec& s) { return s.name == name; });
}

uint8_t first_byte(const Tensor& t) {
  return *static_cast<const uint8_t*>(t.data);
}

class Qwen3Load : public ::testing::TestWithParam<DType> {};

TEST_P(Qwen3Load, LoadsEveryTensorWithShapes) {
  TempDir tmp;
  ModelConfig c = small_config(false);
  auto specs = qwen3_specs(c, GetParam());
  write_specs(tmp.file("model.safetensors"), specs);
  WeightStore store = WeightStore::open(tmp.path());
  Qwen3Weights w = load_qwen3_weights(store, c);
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.embed_tokens.shape, (std::vector<int64_t>{64, 16}));
  EXPECT_EQ(w.layers[1].q_proj.shape, (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(w.layers[1].k_proj.shape, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(w.layers[1].o_proj.shape, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(w.layers[1].down_proj.shape, (std::vector<int64_t>{16, 24}));
  EXPECT_EQ(w.layers[0].q_norm.dtype, GetParam());
  // Views point at the right bytes: tensor k (in write order) is filled with k + 1.
  EXPECT_EQ(first_byte(w.embed_tokens), 1);
  EXPECT_EQ(first_byte(w.layers[0].q_proj), 3);
  EXPECT_EQ(first_byte(w.layers[1].down_proj), 23);
  EXPECT_EQ(first_byte(w.norm), 24);
  EXPECT_EQ(first_byte(w.lm_head), 25);
  EXPECT_EQ(store.names().size(), specs.size());
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, Qwen3Load, ::testing::Values(DType::BF16, DType::F16, DType::F32),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Qwen3LoadTied, LmHeadIsEmbedding) {
  TempDir tmp;
  ModelConfig c = small_config(true);
  write_specs(tmp.file("model.safetensors"), qwen3_specs(c, DType::BF16));
  WeightStore store = WeightStore::open(tmp.path());
  Qwen3Weights w = load_qwen3_weights(store, c);
  EXPECT_EQ(w.lm_head.data, w.embed_tokens.data);
  EXPECT_EQ(w.lm_head.shape, w.embed_tokens.shape);
}

TEST(Qwen3LoadTied, StoredCopyOfLmHeadIsIgnored) {
  TempDir tmp;
  ModelConfig c = small_config(true);
  auto specs = qwen3_specs(c, DType::BF16);
  specs.push_back({"lm_head.weight", DType::BF16, {c.vocab_size, c.hidden_size}});
  write_specs(tmp.file("model.safetensors"), specs);
  Qwen3Weights w = load_qwen3_weights(WeightStore::open(tmp.path()), c);
  EXPECT_EQ(w.lm_head.data, w.embed_tokens.data);
}

struct BrokenCheckpoint {
  const char* label;
  bool tied;
  std::function<void(std::vector<TensorSpec>&)> edit;
  std::string expected;
};

TEST(Qwen3LoadErrors, EachBrokenCheckpointIsReported) {
  const std::vector<BrokenCheckpoint> cases = {
      {"missing_tensor", false, [](auto& s) { remove_tensor(s, "model.layers.1.mlp.up_proj.weight"); },
       "missing tensor 'model.layers.1.mlp.up_proj.weight'"},
      {"missing_norm", true, [](auto& s) { remove_tensor(s, "model.norm.weight"); },
       "missing tensor 'model.norm.weight'"},
      {"untied_without_lm_head", false, [](auto& s) { remove_tensor(s, "lm_head.weight"); },
       "missing tensor 'lm_head.weight' (config.json says tie_word_embeddings is false)"},
      {"wrong_shape", false,
       [](auto& s) {
         find(s, "model.layers.0.self_attn.k_proj.weight")->shape = {32, 16};
       },
       "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [32, 16], expected [16, 16]"},
      {"transposed", false,
       [](auto& s) {
         find(s, "model.layers.1.mlp.down_proj.weight")->shape = {24, 16};
       },
       "tensor 'model.layers.1.mlp.down_proj.weight' has shape [24, 16], expected [16, 24]"},
      {"wrong_rank", true,
       [](auto& s) {
         find(s, "model.layers.0.self_attn.q_norm.weight")->shape = {1, 8};
       },
       "has shape [1, 8], expected [8]"},
      {"odd_dtype", false, [](auto& s) { find(s, "model.layers.1.self_attn.v_proj.weight")->dtype = DType::F32; },
       "tensor 'model.layers.1.self_attn.v_proj.weight' has dtype F32 but 'model.embed_tokens.weight' has BF16"},
      {"odd_lm_head_dtype", false, [](auto& s) { find(s, "lm_head.weight")->dtype = DType::F16; },
       "tensor 'lm_head.weight' has dtype F16"},
      {"bias_present", true,
       [](auto& s) {
         s.push_back({"model.layers.0.self_attn.q_proj.bias", DType::BF16, {32}});
       },
       "unexpected tensor 'model.layers.0.self_attn.q_proj.bias'"},
      {"extra_layer", true,
       [](auto& s) {
         s.push_back({"model.layers.2.input_layernorm.weight", DType::BF16, {16}});
       },
       "unexpected tensor 'model.layers.2.input_layernorm.weight'"},
  };
  for (const BrokenCheckpoint& bc : cases) {
    SCOPED_TRACE(bc.label);
    TempDir tmp;
    ModelConfig c = small_config(bc.tied);
    auto specs = qwen3_specs(c, DType::BF16);
    bc.edit(specs);
    write_specs(tmp.file("model.safetensors"), specs);
    std::string msg = testing::error_of([&] { load_qwen3_weights(WeightStore::open(tmp.path()), c); });
    EXPECT_EQ(msg.rfind("[weights] " + tmp.path(), 0), 0u) << msg;
    EXPECT_NE(msg.find(bc.expected), std::string::npos) << "expected: " << bc.expected << "\n     got: " << msg;
  }
}

TEST(Qwen3LoadErrors, RotaryBuffersOfOldCheckpointsAreIgnored) {
  TempDir tmp;
  ModelConfig c = small_config(true);
  auto specs = qwen3_specs(c, DType::BF16);
  specs.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", DType::F32, {4}});
  // inv_freq is F32 while weights are BF16: it must not take part in the dtype check either.
  write_specs(tmp.file("model.safetensors"), specs);
  EXPECT_EQ(load_qwen3_weights(WeightStore::open(tmp.path()), c).layers.size(), 2u);
}

// Writes the checkpoint as two shards plus model.safetensors.index.json.
void write_sharded(const TempDir& dir, const std::vector<TensorSpec>& specs, const json& weight_map_override = {}) {
  size_t half = specs.size() / 2;
  std::vector<TensorSpec> a(specs.begin(), specs.begin() + half), b(specs.begin() + half, specs.end());
  write_specs(dir.file("model-00001-of-00002.safetensors"), a);
  write_specs(dir.file("model-00002-of-00002.safetensors"), b);
  json wm = json::object();
  for (const auto& s : a) wm[s.name] = "model-00001-of-00002.safetensors";
  for (const auto& s : b) wm[s.name] = "model-00002-of-00002.safetensors";
  if (!weight_map_override.is_null()) wm.update(weight_map_override);
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", wm}};
  testing::write_bytes(dir.file("model.safetensors.index.json"), index.dump(2));
}

TEST(WeightStoreSharded, LoadsLikeSingleFile) {
  TempDir tmp;
  ModelConfig c = small_config(false);
  auto specs = qwen3_specs(c, DType::BF16);
  write_sharded(tmp, specs);
  WeightStore store = WeightStore::open(tmp.path());
  EXPECT_EQ(store.names().size(), specs.size());
  EXPECT_TRUE(store.has("lm_head.weight"));
  EXPECT_FALSE(store.has("lm_head.bias"));
  Qwen3Weights w = load_qwen3_weights(store, c);
  EXPECT_EQ(w.layers.size(), 2u);
  // write_specs numbers tensors per file from 1: lm_head is the last of the second shard's 13.
  EXPECT_EQ(first_byte(w.embed_tokens), 1);
  EXPECT_EQ(first_byte(w.lm_head), specs.size() - specs.size() / 2);
  EXPECT_EQ(w.lm_head.numel(), 64 * 16);
}

TEST(WeightStoreSharded, Errors) {
  ModelConfig c = small_config(false);
  auto specs = qwen3_specs(c, DType::BF16);
  const std::string index = "model.safetensors.index.json";
  {
    TempDir tmp;
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()),
                          "[weights] " + tmp.path() + ": no model.safetensors or model.safetensors.index.json");
  }
  {
    TempDir tmp;
    testing::write_bytes(tmp.file(index), "{\"weight_map\": {\"a\": }");
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()),
                          "[weights] " + tmp.file(index) + ": invalid JSON: parse error at line 1, column 22");
  }
  {
    TempDir tmp;
    testing::write_bytes(tmp.file(index), "{\"metadata\": {}}");
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()), tmp.file(index) + ": 'weight_map' is missing");
  }
  {
    TempDir tmp;
    testing::write_bytes(tmp.file(index), R"({"weight_map": {"a": 3}})");
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()), "weight_map entry for 'a' must be a file name string");
  }
  {
    TempDir tmp;
    testing::write_bytes(tmp.file(index), R"({"weight_map": {"a": "../model.safetensors"}})");
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()), "is not a plain file name: '../model.safetensors'");
  }
  {
    TempDir tmp;
    write_sharded(tmp, specs, {{"model.norm.weight", "model-00003-of-00003.safetensors"}});
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()),
                          "[weights] " + tmp.file("model-00003-of-00003.safetensors") +
                              ": shard listed in model.safetensors.index.json does not exist");
  }
  {
    TempDir tmp;
    write_sharded(tmp, specs, {{"model.layers.9.mlp.up_proj.weight", "model-00001-of-00002.safetensors"}});
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()),
                          "[weights] " + tmp.file("model-00001-of-00002.safetensors") +
                              ": tensor 'model.layers.9.mlp.up_proj.weight' is listed in "
                              "model.safetensors.index.json but absent from this shard");
  }
  {
    TempDir tmp;
    // lm_head is in shard 2 but the index says shard 1.
    write_sharded(tmp, specs, {{"lm_head.weight", "model-00001-of-00002.safetensors"}});
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()), "tensor 'lm_head.weight' is listed in");
  }
  {
    TempDir tmp;
    write_sharded(tmp, specs);
    // Overwrite shard 2 with a copy that also holds the embeddings of shard 1.
    std::vector<TensorSpec> b(specs.begin() + specs.size() / 2, specs.end());
    b.push_back(specs[0]);
    write_specs(tmp.file("model-00002-of-00002.safetensors"), b);
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()), "[weights] " + tmp.path() +
                                                             ": tensor 'model.embed_tokens.weight' is in two shards: " +
                                                             tmp.file("model-00001-of-00002.safetensors") + " and " +
                                                             tmp.file("model-00002-of-00002.safetensors"));
  }
  {
    TempDir tmp;
    write_sharded(tmp, specs);
    testing::write_bytes(tmp.file("model-00002-of-00002.safetensors"), "garbage");
    EXPECT_ERROR_CONTAINS(WeightStore::open(tmp.path()),
                          "[safetensors] " + tmp.file("model-00002-of-00002.safetensors") + ": file is 7 bytes");
  }
}

TEST(WeightStore, GetChecksShapeAndNamesAreSorted) {
  TempDir tmp;
  ModelConfig c = small_config(true);
  write_specs(tmp.file("model.safetensors"), qwen3_specs(c, DType::F32));
  WeightStore store = WeightStore::open(tmp.path());
  EXPECT_EQ(store.get("model.norm.weight", {16}).nbytes(), 64u);
  EXPECT_ERROR_CONTAINS(
      store.get("model.norm.weight", {17}),
      "[weights] " + tmp.file("model.safetensors") + ": tensor 'model.norm.weight' has shape [16], expected [17]");
  EXPECT_ERROR_CONTAINS(store.get("nope", {1}), "[weights] " + tmp.path() + ": missing tensor 'nope'");
  auto names = store.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(store.dir(), tmp.path());
}

}  // namespace
}  // namespace gqa
