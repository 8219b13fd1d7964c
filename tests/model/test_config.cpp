// config.json tests: the transformers 4.x and 5.x layouts of Qwen3-0.6B's config read the same, and
// every validation error names the file and the field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/make_model.h"
#include "model_test_util.h"

namespace gqa {
namespace {

using nlohmann::json;
using testing::TempDir;

// Qwen3-0.6B's config.json as published (transformers 4.51 layout).
json config_4x() {
  return json::parse(R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})");
}

// The same model as transformers 5.x saves it.
json config_5x() {
  return json::parse(R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "dtype": "bfloat16",
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_types": ["full_attention", "full_attention"],
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "pad_token_id": null,
  "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 1000000, "rope_type": "default"},
  "sliding_window": null,
  "tie_word_embeddings": true,
  "transformers_version": "5.0.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})");
}

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
}

std::string error_for(const json& j) {
  return testing::error_of([&] { ModelConfig::from_json(j, "/m/config.json"); });
}

TEST(Config, Reads4xLayout) {
  ModelConfig c = ModelConfig::from_json(config_4x(), "x");
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.num_hidden_layers, 28);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_EQ(c.kv_dim(), 1024);
  EXPECT_EQ(c.gqa_group(), 2);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{151645});
}

TEST(Config, Layouts4xAnd5xAgree) {
  expect_same(ModelConfig::from_json(config_4x(), "4x"), ModelConfig::from_json(config_5x(), "5x"));
}

TEST(Config, MatchesPresetAndParameterCount) {
  ModelConfig c = ModelConfig::from_json(config_4x(), "x");
  expect_same(c, preset_config("qwen3-0.6b"));
  // 155,582,464 embedding + 28 x 15,730,944 per layer + 1,024 final norm (tied lm_head).
  EXPECT_EQ(c.parameter_count(), 596'049'920);
  c.tie_word_embeddings = false;
  EXPECT_EQ(c.parameter_count(), 596'049'920 + 151936 * 1024);
}

TEST(Config, OptionalFieldsAndVariants) {
  json j = config_4x();
  j.erase("head_dim");  // transformers' default: hidden / heads = 64
  j["eos_token_id"] = {151645, 151643};
  j["bos_token_id"] = nullptr;
  j["rope_scaling"] = {{"rope_type", "default"}};
  j["some_future_key"] = {{"nested", true}};
  j.erase("torch_dtype");
  ModelConfig c = ModelConfig::from_json(j, "x");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151645, 151643}));
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.dtype, "bfloat16");

  j = config_4x();
  j.erase("bos_token_id");
  j.erase("tie_word_embeddings");  // Qwen3Config's default is untied
  EXPECT_EQ(ModelConfig::from_json(j, "x").bos_token_id, -1);
  EXPECT_FALSE(ModelConfig::from_json(j, "x").tie_word_embeddings);

  j = config_5x();
  j["dtype"] = "float32";
  j["torch_dtype"] = "bfloat16";  // the 5.x key wins
  EXPECT_EQ(ModelConfig::from_json(j, "x").dtype, "float32");
}

TEST(Config, ToHfJsonRoundTripsForEveryPreset) {
  for (const std::string& name : preset_names()) {
    SCOPED_TRACE(name);
    ModelConfig p = preset_config(name);
    json j = p.to_hf_json();
    expect_same(ModelConfig::from_json(j, "x"), p);
    // Both transformers generations' keys are present and agree.
    EXPECT_EQ(j["rope_theta"], j["rope_parameters"]["rope_theta"]);
    EXPECT_EQ(j["rope_parameters"]["rope_type"], "default");
    EXPECT_EQ(j["torch_dtype"], j["dtype"]);
    EXPECT_TRUE(j["rope_scaling"].is_null());
    EXPECT_EQ(j["architectures"], json({"Qwen3ForCausalLM"}));
    EXPECT_EQ(j["max_window_layers"], p.num_hidden_layers);
    EXPECT_EQ(j["hidden_act"], "silu");
    EXPECT_EQ(j["attention_bias"], false);
    EXPECT_EQ(j["use_sliding_window"], false);
  }
}

TEST(Config, LoadFromFileAndBadJson) {
  TempDir tmp;
  std::string path = tmp.file("config.json");
  testing::write_bytes(path, config_5x().dump(2));
  EXPECT_EQ(ModelConfig::load(path).hidden_size, 1024);

  testing::write_bytes(path, "{\n  \"vocab_size\": 10,\n  \"hidden_size\": ,\n}");
  EXPECT_ERROR_CONTAINS(ModelConfig::load(path),
                        "[config] " + path + ": invalid JSON: parse error at line 3, column 18");
  EXPECT_ERROR_CONTAINS(ModelConfig::load(tmp.file("absent.json")),
                        "[config] " + tmp.file("absent.json") + ": cannot open");
}

struct ConfigCase {
  const char* label;
  std::function<void(json&)> edit;
  std::string expected;
};

TEST(Config, EveryErrorNamesFileAndField) {
  const std::vector<ConfigCase> cases = {
      {"not_object", [](json& j) { j = json::array(); }, "[config] /m/config.json: must be a JSON object, got array"},
      {"missing_hidden", [](json& j) { j.erase("hidden_size"); },
       "[config] /m/config.json: field 'hidden_size' is missing"},
      {"missing_kv_heads", [](json& j) { j.erase("num_key_value_heads"); },
       "[config] /m/config.json: field 'num_key_value_heads' is missing"},
      {"missing_vocab", [](json& j) { j.erase("vocab_size"); }, "field 'vocab_size' is missing"},
      {"missing_intermediate", [](json& j) { j.erase("intermediate_size"); }, "field 'intermediate_size' is missing"},
      {"missing_layers", [](json& j) { j.erase("num_hidden_layers"); }, "field 'num_hidden_layers' is missing"},
      {"missing_heads", [](json& j) { j.erase("num_attention_heads"); }, "field 'num_attention_heads' is missing"},
      {"missing_max_pos", [](json& j) { j.erase("max_position_embeddings"); },
       "field 'max_position_embeddings' is missing"},
      {"missing_eps", [](json& j) { j.erase("rms_norm_eps"); }, "field 'rms_norm_eps' is missing"},
      {"missing_model_type", [](json& j) { j.erase("model_type"); }, "field 'model_type' is missing"},
      {"missing_rope", [](json& j) { j.erase("rope_theta"); }, "field 'rope_theta' is missing"},
      {"string_size", [](json& j) { j["num_key_value_heads"] = "8"; },
       "[config] /m/config.json: field 'num_key_value_heads' must be an integer, got string"},
      {"float_size", [](json& j) { j["hidden_size"] = 1024.0; }, "field 'hidden_size' must be an integer, got float"},
      {"zero_size", [](json& j) { j["num_hidden_layers"] = 0; }, "field 'num_hidden_layers' must be positive, got 0"},
      {"negative_size", [](json& j) { j["vocab_size"] = -5; }, "field 'vocab_size' must be positive, got -5"},
      {"huge_size", [](json& j) { j["intermediate_size"] = 1ll << 40; }, "field 'intermediate_size' is too large"},
      {"u64_size", [](json& j) { j["intermediate_size"] = ~0ull; }, "field 'intermediate_size' is too large"},
      {"zero_head_dim", [](json& j) { j["head_dim"] = 0; }, "field 'head_dim' must be positive, got 0"},
      {"odd_head_dim", [](json& j) { j["head_dim"] = 65; }, "field 'head_dim' must be even, got 65"},
      {"head_dim_underivable",
       [](json& j) {
         j.erase("head_dim");
         j["hidden_size"] = 1000;
         j["num_attention_heads"] = 16;
       },
       "field 'head_dim' is absent and hidden_size (1000) is not a multiple of num_attention_heads (16)"},
      {"kv_not_divisor", [](json& j) { j["num_key_value_heads"] = 3; },
       "field 'num_key_value_heads' (3) must divide num_attention_heads (16)"},
      {"model_type_llama", [](json& j) { j["model_type"] = "llama"; },
       "field 'model_type' is 'llama'; only 'qwen3' is supported"},
      {"model_type_not_string", [](json& j) { j["model_type"] = 3; },
       "field 'model_type' must be a string, got integer"},
      {"eps_string", [](json& j) { j["rms_norm_eps"] = "1e-6"; }, "field 'rms_norm_eps' must be a number, got string"},
      {"eps_zero", [](json& j) { j["rms_norm_eps"] = 0; }, "field 'rms_norm_eps' must be positive"},
      {"theta_negative", [](json& j) { j["rope_theta"] = -1; }, "field 'rope_theta' must be positive"},
      {"theta_disagree",
       [](json& j) {
         j["rope_parameters"] = {{"rope_theta", 10000}, {"rope_type", "default"}};
       },
       "field 'rope_theta' (1000000) disagrees with rope_parameters.rope_theta (10000)"},
      {"rope_parameters_yarn",
       [](json& j) {
         j["rope_parameters"] = {{"rope_theta", 1e6}, {"rope_type", "yarn"}};
       },
       "field 'rope_parameters.rope_type' is \"yarn\"; only \"default\" RoPE is supported"},
      {"rope_scaling_linear",
       [](json& j) {
         j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
       },
       "field 'rope_scaling.type' is \"linear\""},
      {"rope_scaling_string", [](json& j) { j["rope_scaling"] = "yarn"; },
       "field 'rope_scaling' must be an object or null, got string"},
      {"rope_parameters_array", [](json& j) { j["rope_parameters"] = json::array(); },
       "field 'rope_parameters' must be an object, got array"},
      {"tie_not_bool", [](json& j) { j["tie_word_embeddings"] = 1; },
       "field 'tie_word_embeddings' must be a boolean, got integer"},
      {"dtype_unknown", [](json& j) { j["torch_dtype"] = "float64"; },
       "field 'torch_dtype' is 'float64'; expected bfloat16, float16 or float32"},
      {"dtype_not_string", [](json& j) { j["dtype"] = 16; }, "field 'dtype' must be a string, got integer"},
      {"act_gelu", [](json& j) { j["hidden_act"] = "gelu"; }, "field 'hidden_act' is 'gelu'; only 'silu' is supported"},
      {"attention_bias", [](json& j) { j["attention_bias"] = true; }, "field 'attention_bias' is true"},
      {"sliding_window", [](json& j) { j["use_sliding_window"] = true; }, "field 'use_sliding_window' is true"},
      {"eos_outside_vocab", [](json& j) { j["eos_token_id"] = 151936; },
       "field 'eos_token_id' holds token id 151936, outside the vocabulary [0, 151936)"},
      {"eos_list_string",
       [](json& j) {
         j["eos_token_id"] = {151645, "x"};
       },
       "field 'eos_token_id' must be an integer, got string"},
      {"bos_negative", [](json& j) { j["bos_token_id"] = -1; }, "field 'bos_token_id' holds token id -1"},
      {"params_overflow",
       [](json& j) {
         j["vocab_size"] = 2000000000;
         j["hidden_size"] = 2000000000;
         j["head_dim"] = 128;
         j["num_hidden_layers"] = 2000000000;
       },
       "the sizes give a parameter count that overflows"},
  };
  for (const ConfigCase& c : cases) {
    SCOPED_TRACE(c.label);
    json j = config_4x();
    c.edit(j);
    std::string msg = error_for(j);
    EXPECT_EQ(msg.rfind("[config] /m/config.json: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << "expected: " << c.expected << "\n     got: " << msg;
  }
}

}  // namespace
}  // namespace gqa
