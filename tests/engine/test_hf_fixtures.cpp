// The CPU engine against HF transformers' Qwen3ForCausalLM (float32, eager) on the same random models:
// fixtures made by scripts/make_hf_fixtures.py. Tolerance: |ours - hf| <= 2e-3 + 1e-3 * |hf| per logit
// (both sides compute in float32 from the same bf16 weights; differences are summation order only).
// Greedy continuations must agree on at least the first 32 tokens (all 48 are compared and reported).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "hf_fixtures.h"
#include "tiny_model.h"

namespace gqa {
namespace {

TEST(HfFixtures, AtLeastTwoConfigurationsArePresent) {
  // One with Qwen3-0.6B's head layout and one with another GQA ratio / head_dim / untied lm_head.
  auto files = testing::hf_fixture_files();
  ASSERT_GE(files.size(), 2u) << "run scripts/make_hf_fixtures.py (see docs/engine-cpu.md)";
}

class HfFixture : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(HfFixture, LogitsAndGreedyContinuationMatchTransformers) {
  std::ifstream in(GetParam());
  nlohmann::json fx = nlohmann::json::parse(in);
  const std::string preset = fx["preset"];
  auto engine = CpuEngine::open(testing::tiny_model_dir(preset, fx["seed"].get<uint64_t>()));
  const int64_t V = engine->config().vocab_size;
  const auto subset = fx["vocab_subset"].get<std::vector<int64_t>>();
  ASSERT_EQ(engine->config().tie_word_embeddings, fx["tie_word_embeddings"].get<bool>());

  for (const auto& [name, p] : fx["prompts"].items()) {
    const auto ids = p["ids"].get<std::vector<int32_t>>();
    engine->reset(static_cast<int64_t>(ids.size()));
    const float* logits = engine->forward(ids, /*all_logits=*/true);
    double worst = 0;
    for (const auto& [pos_s, ref] : p["positions"].items()) {
      const int64_t pos = std::stoll(pos_s);
      const float* row = logits + pos * V;
      auto check = [&](int64_t id, double want) {
        double tol = 2e-3 + 1e-3 * std::abs(want);
        worst = std::max(worst, std::abs(row[id] - want) / tol);
        ASSERT_NEAR(row[id], want, tol) << preset << " prompt " << name << " position " << pos << " token " << id;
      };
      const auto sub = ref["subset"].get<std::vector<double>>();
      for (size_t i = 0; i < subset.size(); ++i) check(subset[i], sub[i]);
      const auto top_ids = ref["top_ids"].get<std::vector<int64_t>>();
      const auto top_vals = ref["top_values"].get<std::vector<double>>();
      for (size_t i = 0; i < top_ids.size(); ++i) check(top_ids[i], top_vals[i]);
      EXPECT_EQ(argmax(row, V), top_ids[0]) << preset << " " << name << " position " << pos;
    }
    RecordProperty(preset + "_" + name + "_worst_error_over_tolerance", std::to_string(worst));

    GenerateOptions o;
    const auto want = p["greedy"].get<std::vector<int32_t>>();
    o.max_tokens = static_cast<int64_t>(want.size());
    o.ignore_stop_tokens = true;
    auto got = generate(*engine, ids, o).tokens;
    size_t agree = 0;
    while (agree < want.size() && got[agree] == want[agree]) ++agree;
    EXPECT_GE(agree, 32u) << preset << " prompt " << name << ": greedy tokens agree for " << agree << " of "
                          << want.size();
    if (agree < want.size())
      std::printf("note: %s/%s greedy agrees for %zu of %zu tokens (HF margin at first difference %.5f)\n",
                  preset.c_str(), name.c_str(), agree, want.size(), p["greedy_margins"][agree].get<double>());
  }
}

INSTANTIATE_TEST_SUITE_P(Transformers, HfFixture, ::testing::ValuesIn(testing::hf_fixture_files()),
                         [](const auto& info) { return testing::hf_fixture_test_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HfFixture);

}  // namespace
}  // namespace gqa
