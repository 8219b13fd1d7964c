// Config loading: the example config loads; unknown keys, wrong types and out-of-range values are errors
// naming the file and the key path.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/error.h"
#include "evolve/config.h"
#include "evolve/prompt.h"
#include "programs/compiler.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using gqa::evolve::testing::temp_dir;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "cfg.yaml");
  } catch (const gqa::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(EvolveConfig, ExampleLoads) {
  EvolveConfig c = load_config(std::string(GQA_EXAMPLES_DIR) + "/config.yaml");
  EXPECT_EQ(c.target, gqa::Target::Cpu);
  EXPECT_GE(c.database.num_islands, 1);
  EXPECT_FALSE(c.llm.enabled());
  EXPECT_TRUE(c.evaluator.end_to_end);  // the end-to-end gate is on for the CPU target (its cost: docs/evaluator.md)
}

TEST(EvolveConfig, DefaultsFromEmpty) {
  EvolveConfig c = parse_config("", "empty.yaml");
  EXPECT_EQ(c.max_iterations, 100);
  EXPECT_EQ(c.database.feature_dimensions.size(), 2u);
}

TEST(EvolveConfig, ValuesAreRead) {
  EvolveConfig c = parse_config(
      "max_iterations: 7\nllm:\n  api_base: http://x/v1\n  models: [{name: a, weight: 2}, {name: b}]\n"
      "database:\n  feature_dimensions: [complexity, 'metric:speedup_geomean']\n  feature_bins: 3\n"
      "evaluator:\n  bench: false\n  seed: 9\n",
      "c.yaml");
  EXPECT_EQ(c.max_iterations, 7);
  ASSERT_EQ(c.llm.models.size(), 2u);
  EXPECT_EQ(c.llm.models[0].weight, 2.0);
  EXPECT_EQ(c.llm.models[1].weight, 1.0);
  EXPECT_EQ(c.database.feature_dimensions[1], "metric:speedup_geomean");
  EXPECT_FALSE(c.evaluator.bench);
  EXPECT_EQ(c.evaluator.seed, 9u);
  EXPECT_EQ(c.evaluator.heads, gqa::eval::HeadGeometry{});  // shapes_of absent: Qwen3-0.6B's heads
  EXPECT_EQ(parse_config("evaluator:\n  shapes_of: qwen3-32b\n", "c.yaml").evaluator.heads,
            (gqa::eval::HeadGeometry{64, 8, 128}));
}

// Each models entry takes the section's request settings for the keys it leaves out.
TEST(EvolveConfig, PerModelRequestSettings) {
  EvolveConfig c = parse_config(
      "llm:\n  api_base: http://local:8080/v1/\n  api_key_env: LOCAL_KEY\n  temperature: 0.7\n  max_tokens: 2000\n"
      "  extra_body: {top_k: 20, min_p: 0.05, chat_template_kwargs: {enable_thinking: false}, tag: '7'}\n  models:\n"
      "    - name: coder\n"
      "    - name: gpt-5-mini\n      api_base: https://api.openai.com/v1\n      api_key_env: OPENAI_API_KEY\n"
      "      temperature: default\n      max_tokens: 16000\n      max_tokens_field: max_completion_tokens\n"
      "      reasoning_effort: low\n      extra_body: {top_k: 1, seed: 3}\n",
      "m.yaml");
  ASSERT_TRUE(c.llm.enabled());
  const LlmModel& local = c.llm.models.at(0);
  EXPECT_EQ(local.api_base, "http://local:8080/v1");
  EXPECT_EQ(local.api_key_env, "LOCAL_KEY");
  EXPECT_EQ(local.temperature, 0.7);
  EXPECT_EQ(local.max_tokens, 2000);
  EXPECT_EQ(local.max_tokens_field, "max_tokens");
  EXPECT_EQ(local.reasoning_effort, "");
  EXPECT_EQ(local.extra_body.dump(), R"({"chat_template_kwargs":{"enable_thinking":false},"min_p":0.05,"tag":"7","top_k":20})");
  const LlmModel& hosted = c.llm.models.at(1);
  EXPECT_EQ(hosted.api_base, "https://api.openai.com/v1");
  EXPECT_EQ(hosted.api_key_env, "OPENAI_API_KEY");
  EXPECT_FALSE(hosted.temperature.has_value());
  EXPECT_EQ(hosted.max_tokens, 16000);
  EXPECT_EQ(hosted.max_tokens_field, "max_completion_tokens");
  EXPECT_EQ(hosted.reasoning_effort, "low");
  EXPECT_EQ(hosted.extra_body["top_k"], 1);  // the model's value over the section's
  EXPECT_EQ(hosted.extra_body["seed"], 3);
  EXPECT_EQ(hosted.extra_body["min_p"], 0.05);
  // Nothing set: no temperature is sent (the server's default), max_tokens under its usual name.
  const LlmModel plain = parse_config("llm: {api_base: 'http://x/v1', models: [{name: a}]}\n", "p.yaml").llm.models.at(0);
  EXPECT_FALSE(plain.temperature.has_value());
  EXPECT_EQ(plain.max_tokens_field, "max_tokens");
}

TEST(EvolveConfig, ErrorsNameFileAndKey) {
  EXPECT_EQ(error_of("database:\n  num_islands: 0\n"), "[config] cfg.yaml: database.num_islands must be in [1, 1024], got 0");
  EXPECT_EQ(error_of("max_iteration: 3\n"), "[config] cfg.yaml: max_iteration is not a known key");
  EXPECT_EQ(error_of("prompt:\n  histroy: 3\n"), "[config] cfg.yaml: prompt.histroy is not a known key");
  EXPECT_EQ(error_of("max_iterations: many\n"), "[config] cfg.yaml: max_iterations must be an integer, got 'many'");
  EXPECT_EQ(error_of("max_iterations: 1.5\n"), "[config] cfg.yaml: max_iterations must be an integer, got '1.5'");
  EXPECT_EQ(error_of("evaluator:\n  bench: maybe\n"), "[config] cfg.yaml: evaluator.bench must be true or false, got 'maybe'");
  EXPECT_EQ(error_of("llm:\n  temperature: 3\n"), "[config] cfg.yaml: llm.temperature must be in [0, 2], got 3");
  EXPECT_EQ(error_of("llm:\n  temperature: warm\n"),
            "[config] cfg.yaml: llm.temperature must be a number or 'default' (not sent), got 'warm'");
  EXPECT_EQ(error_of("llm:\n  max_tokens_field: max_output_tokens\n"),
            "[config] cfg.yaml: llm.max_tokens_field must be max_tokens or max_completion_tokens, got 'max_output_tokens'");
  EXPECT_EQ(error_of("llm:\n  models: [{name: a, reasoning_effort: extreme}]\n"),
            "[config] cfg.yaml: llm.models[0].reasoning_effort must be none, minimal, low, medium, high or xhigh, got 'extreme'");
  EXPECT_EQ(error_of("llm:\n  extra_body: [1]\n"), "[config] cfg.yaml: llm.extra_body must be a mapping of request fields");
  EXPECT_EQ(error_of("llm:\n  extra_body: {max_tokens: 9}\n"),
            "[config] cfg.yaml: llm.extra_body.max_tokens is set by the client (use the llm key of that name, if any)");
  EXPECT_EQ(error_of("llm:\n  models: [{name: a, api_base: 'http://x/v1'}, {name: b}]\n"),
            "[config] cfg.yaml: llm.models[1].api_base must be set for every model or for none (models[0] differs)");
  EXPECT_EQ(error_of("llm:\n  max_fatal_errors: 0\n"), "[config] cfg.yaml: llm.max_fatal_errors must be in [1, 1000], got 0");
  EXPECT_EQ(error_of("llm:\n  models: [{name: a, wieght: 1}]\n"), "[config] cfg.yaml: llm.models[0].wieght is not a known key");
  EXPECT_EQ(error_of("llm:\n  api_base: http://x/v1\n"), "[config] cfg.yaml: llm.models needs at least one model when api_base is set");
  EXPECT_EQ(error_of("target: tpu\n"), "[config] cfg.yaml: target must be cpu or cuda, got 'tpu'");
  EXPECT_EQ(error_of("database:\n  feature_dimensions: [colour]\n"),
            "[config] cfg.yaml: database.feature_dimensions[0] must be complexity, diversity or metric:<name>, got 'colour'");
  EXPECT_EQ(error_of("database:\n  exploration_ratio: 0.6\n  exploitation_ratio: 0.6\n"),
            "[config] cfg.yaml: database.exploitation_ratio plus exploration_ratio must be <= 1, got 0.6 + 0.6");
  EXPECT_EQ(error_of("database: 3\n"), "[config] cfg.yaml: database must be a mapping");
  EXPECT_EQ(error_of("evaluator:\n  shapes_of: qwen3-5b\n").rfind("[config] cfg.yaml: evaluator.shapes_of must be a model "
                                                                 "directory or a preset (qwen3-0.6b, ", 0), 0u)
      << error_of("evaluator:\n  shapes_of: qwen3-5b\n");
  EXPECT_NE(error_of("a: [\n").find("not valid YAML"), std::string::npos);
}

// Prices per million tokens (section default, per-model override) give each call's cost.
TEST(EvolveConfig, PricesGiveCosts) {
  const EvolveConfig c = parse_config("llm:\n  api_base: 'http://x/v1'\n  input_price_per_mtok: 1.25\n  output_price_per_mtok: 10\n"
                                      "  models: [{name: big}, {name: small, input_price_per_mtok: 0.1, output_price_per_mtok: 0.4}, "
                                      "{name: local, api_base: 'http://127.0.0.1:8080/v1', input_price_per_mtok: 0, output_price_per_mtok: 0}]\n",
                                      "p.yaml");
  EXPECT_DOUBLE_EQ(*c.llm.models[0].cost(1000000, 100000), 1.25 + 1.0);
  EXPECT_DOUBLE_EQ(*c.llm.models[1].cost(2000, 1000), (2000 * 0.1 + 1000 * 0.4) / 1e6);
  EXPECT_DOUBLE_EQ(*c.llm.models[2].cost(5000, 5000), 0.0);
  EXPECT_FALSE(parse_config("llm: {api_base: 'http://x/v1', models: [{name: a}]}\n", "p.yaml").llm.models[0].cost(10, 10));
  EXPECT_EQ(error_of("llm:\n  models: [{name: a, output_price_per_mtok: -1}]\n"),
            "[config] cfg.yaml: llm.models[0].output_price_per_mtok must be >= 0, got -1");
}

// Template files: read relative to the config, filled per iteration; an unknown placeholder is an error
// that names it, the file and the line.
TEST(EvolveConfig, PromptTemplates) {
  const std::string dir = temp_dir("templates");
  gqa::write_file_atomic(dir + "/sys.md", "Target {{target}}. Contract:\n{{abi}}\nRules:\n{{ rules }}", "test");
  gqa::write_file_atomic(dir + "/user.md", "Improve #{{parent_id}} ({{parent_score}}):\n{{parent_code}}\n{{history}}{{task}}", "test");
  gqa::write_file_atomic(dir + "/cfg.yaml", "prompt:\n  system_template: sys.md\n  user_template: user.md\n", "test");
  const EvolveConfig c = load_config(dir + "/cfg.yaml");
  Program parent;
  parent.id = 7;
  parent.combined_score = 1.5;
  parent.code = "// EVOLVE-BLOCK-START\nint x = 1; // {{not_a_placeholder}} in code stays\n// EVOLVE-BLOCK-END\n";
  PromptInputs in;
  in.parent = &parent;
  Attempt failed;
  failed.iteration = 3;
  failed.mutator = "m";
  failed.outcome = Outcome::DiffFailed;
  failed.reason = "SEARCH text not found";
  in.history = {failed};
  const std::string sys = system_message(c, in), user = user_prompt(c, in);
  EXPECT_EQ(sys.rfind("Target cpu. Contract:\n", 0), 0u) << sys;
  EXPECT_NE(sys.find("gqa_attention_args"), std::string::npos);  // the ABI header itself
  EXPECT_NE(sys.find("GQA_ABI_VERSION"), std::string::npos);
  EXPECT_NE(sys.find("Static checks before compiling"), std::string::npos);
  EXPECT_EQ(user.rfind("Improve #7 (1.5000):\n// EVOLVE-BLOCK-START\nint x = 1; // {{not_a_placeholder}} in code stays\n", 0), 0u) << user;
  EXPECT_NE(user.find("iteration 3 (m): diff_failed: SEARCH text not found"), std::string::npos) << user;
  EXPECT_NE(user.find("SEARCH/REPLACE"), std::string::npos) << user;
  // The built-in prompts carry the contract and the rules too.
  const EvolveConfig plain = parse_config("", "p.yaml");
  EXPECT_NE(system_message(plain, in).find("gqa_workspace_min_bytes"), std::string::npos);
  EXPECT_NE(user_prompt(plain, in).find("# Current program (#7, generation 0, combined_score 1.5000)"), std::string::npos);
  // A CUDA parent with the device entry gets the persistent step's contract and rules instead.
  Program device_parent = parent;
  device_parent.code = std::string(gqa::stock_decode_program_text());
  PromptInputs din = in;
  din.parent = &device_parent;
  din.target = gqa::Target::Cuda;
  const std::string dsys = system_message(plain, din);
  EXPECT_NE(dsys.find("implements `gqa_decode_attend_v2`"), std::string::npos) << dsys;
  EXPECT_NE(dsys.find("(include/gqa/decode_abi.cuh)"), std::string::npos);
  EXPECT_NE(dsys.find("gqa_decode_tile_acquire"), std::string::npos);  // the contract's own text
  EXPECT_NE(dsys.find("never __syncthreads"), std::string::npos);
  EXPECT_EQ(dsys.find("gqa_workspace_min_bytes"), std::string::npos);

  gqa::write_file_atomic(dir + "/bad.md", "Hello\n{{parent_code}} and {{parent_colour}}\n", "test");
  gqa::write_file_atomic(dir + "/bad.yaml", "prompt:\n  user_template: bad.md\n", "test");
  std::string error;
  try {
    load_config(dir + "/bad.yaml");
  } catch (const gqa::Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("bad.yaml: prompt.user_template (" + dir + "/bad.md): line 2: unknown placeholder {{parent_colour}} (known: target, "),
            std::string::npos) << error;
  gqa::write_file_atomic(dir + "/bad.yaml", "prompt:\n  user_template: nowhere.md\n", "test");
  try {
    load_config(dir + "/bad.yaml");
    error.clear();
  } catch (const gqa::Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("prompt.user_template names '" + dir + "/nowhere.md', which is not a file"), std::string::npos) << error;
  EXPECT_EQ(error_of("prompt:\n  system_template: " + dir + "/sys.md\nllm:\n  system_message: hi\n"),
            "[config] cfg.yaml: prompt.system_template and llm.system_message are both set: keep one");
  std::filesystem::remove_all(dir);
}
