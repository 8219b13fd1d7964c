// CPU engine invariants: incremental decoding equals one-shot prefill, chunk boundaries do not matter,
// logits are meaningful, and misuse is a clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "common/error.h"
#include "engine/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "tiny_model.h"

namespace gqa {
namespace {

std::vector<int32_t> test_prompt(int n) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 7919 + 13) % 151000;
  return ids;
}

double max_abs_diff(const float* a, const float* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

// tiny-32x8: Qwen3-4B's heads (32 on 8 of 128, q_dim 4096 over hidden 256).
TEST(CpuEngine, IncrementalDecodeEqualsOneShotPrefill) {
  for (const auto& [preset, seed] : {std::pair{"tiny", 1}, std::pair{"tiny-32x8", 3}}) {
    auto e = CpuEngine::open(testing::tiny_model_dir(preset, seed));
    const int64_t V = e->config().vocab_size;
    auto ids = test_prompt(20);
    e->reset(32);
    const float* p = e->forward(ids, true);
    std::vector<float> all(p, p + 20 * V);
    e->reset(32);
    for (int i = 0; i < 20; ++i) {
      const float* l = e->forward(std::span<const int32_t>(&ids[i], 1));
      ASSERT_LT(max_abs_diff(l, all.data() + i * V, V), 1e-3) << preset << " position " << i;
    }
    EXPECT_EQ(e->position(), 20) << preset;
  }
}

TEST(CpuEngine, PrefillChunkBoundariesDoNotMatter) {
  // 300 tokens cross the engine's 256-token prefill chunk; splitting the prompt by hand must agree.
  auto e = CpuEngine::open(testing::tiny_model_dir("tiny-gqa4", 2));
  const int64_t V = e->config().vocab_size;
  auto ids = test_prompt(300);
  e->reset(301);
  const float* l1 = e->forward(ids);
  std::vector<float> one(l1, l1 + V);
  e->reset(301);
  e->forward(std::span<const int32_t>(ids.data(), 123));
  const float* l2 = e->forward(std::span<const int32_t>(ids.data() + 123, 177));
  EXPECT_LT(max_abs_diff(one.data(), l2, V), 1e-3);
}

TEST(CpuEngine, LogitsAreMeaningful) {
  auto e = CpuEngine::open(testing::tiny_model_dir("tiny", 1));
  const int64_t V = e->config().vocab_size;
  auto ids = test_prompt(8);
  e->reset(8);
  const float* l = e->forward(ids);
  double mean = std::accumulate(l, l + V, 0.0) / V, var = 0;
  for (int64_t i = 0; i < V; ++i) {
    ASSERT_TRUE(std::isfinite(l[i]));
    var += (l[i] - mean) * (l[i] - mean);
  }
  double sd = std::sqrt(var / V);
  EXPECT_GT(sd, 0.3) << "logits nearly constant";
  EXPECT_LT(sd, 30.0) << "logits saturated";
}

TEST(CpuEngine, MisuseIsAClearError) {
  auto e = CpuEngine::open(testing::tiny_model_dir("tiny", 1));
  e->reset(4);
  auto ids = test_prompt(5);
  try {
    e->forward(ids);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("KV cache full"), std::string::npos) << err.what();
  }
  e->reset(4);
  std::vector<int32_t> bad{1, 999999};
  EXPECT_THROW(e->forward(bad), Error);
  EXPECT_THROW(e->reset(1 << 30), Error);
}

TEST(Generate, GreedyIsDeterministicAndStopsAtStopToken) {
  auto e = CpuEngine::open(testing::tiny_model_dir("tiny", 1));
  auto ids = test_prompt(6);
  GenerateOptions o;
  o.max_tokens = 12;
  auto a = generate(*e, ids, o);
  auto b = generate(*e, ids, o);
  ASSERT_EQ(a.tokens.size(), 12u);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.stats.stop_reason, "max_tokens");
  o.stop_tokens = {a.tokens[3]};
  auto c = generate(*e, ids, o);
  EXPECT_LE(c.tokens.size(), 4u);
  EXPECT_EQ(c.stats.stop_reason, "stop_token");
  o.ignore_stop_tokens = true;
  EXPECT_EQ(generate(*e, ids, o).tokens.size(), 12u);
  EXPECT_GT(a.stats.decode_tokens_per_second(), 0.0);
}

}  // namespace
}  // namespace gqa
