// Config loading: the example config loads; unknown keys, wrong types and out-of-range values are errors
// naming the file and the key path.
#include <gtest/gtest.h>

#include "common/error.h"
#include "evolve/config.h"

using namespace gqa::evolve;

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
  EXPECT_TRUE(c.llm.api_base.empty());
  EXPECT_FALSE(c.evaluator.end_to_end);
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
}

TEST(EvolveConfig, ErrorsNameFileAndKey) {
  EXPECT_EQ(error_of("database:\n  num_islands: 0\n"), "[config] cfg.yaml: database.num_islands must be in [1, 1024], got 0");
  EXPECT_EQ(error_of("max_iteration: 3\n"), "[config] cfg.yaml: max_iteration is not a known key");
  EXPECT_EQ(error_of("prompt:\n  histroy: 3\n"), "[config] cfg.yaml: prompt.histroy is not a known key");
  EXPECT_EQ(error_of("max_iterations: many\n"), "[config] cfg.yaml: max_iterations must be an integer, got 'many'");
  EXPECT_EQ(error_of("max_iterations: 1.5\n"), "[config] cfg.yaml: max_iterations must be an integer, got '1.5'");
  EXPECT_EQ(error_of("evaluator:\n  bench: maybe\n"), "[config] cfg.yaml: evaluator.bench must be true or false, got 'maybe'");
  EXPECT_EQ(error_of("llm:\n  temperature: 3\n"), "[config] cfg.yaml: llm.temperature must be in [0, 2], got 3");
  EXPECT_EQ(error_of("llm:\n  models: [{name: a, wieght: 1}]\n"), "[config] cfg.yaml: llm.models[0].wieght is not a known key");
  EXPECT_EQ(error_of("llm:\n  api_base: http://x/v1\n"), "[config] cfg.yaml: llm.models needs at least one model when api_base is set");
  EXPECT_EQ(error_of("target: tpu\n"), "[config] cfg.yaml: target must be cpu or cuda, got 'tpu'");
  EXPECT_EQ(error_of("database:\n  feature_dimensions: [colour]\n"),
            "[config] cfg.yaml: database.feature_dimensions[0] must be complexity, diversity or metric:<name>, got 'colour'");
  EXPECT_EQ(error_of("database:\n  exploration_ratio: 0.6\n  exploitation_ratio: 0.6\n"),
            "[config] cfg.yaml: database.exploitation_ratio plus exploration_ratio must be <= 1, got 0.6 + 0.6");
  EXPECT_EQ(error_of("database: 3\n"), "[config] cfg.yaml: database must be a mapping");
  EXPECT_NE(error_of("a: [\n").find("not valid YAML"), std::string::npos);
}
