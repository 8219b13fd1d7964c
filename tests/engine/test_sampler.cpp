// Sampler: greedy, determinism per seed, top-k / top-p restrict the support, and frequencies follow
// the softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "common/error.h"
#include "engine/sampler.h"

namespace gqa {
namespace {

TEST(Sampler, TemperatureZeroIsArgmax) {
  std::vector<float> l{0.1f, 3.f, -2.f, 2.9f};
  Sampler s({0.f, 0, 1.f, 7});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(l.data(), 4), 1);
}

TEST(Sampler, SameSeedSameSequenceOtherSeedDiffers) {
  std::vector<float> l(50);
  for (int i = 0; i < 50; ++i) l[i] = std::sin(i * 0.7f);
  auto run = [&](uint64_t seed) {
    Sampler s({1.0f, 0, 1.f, seed});
    std::vector<int32_t> out;
    for (int i = 0; i < 40; ++i) out.push_back(s.sample(l.data(), 50));
    return out;
  };
  EXPECT_EQ(run(3), run(3));
  EXPECT_NE(run(3), run(4));
}

TEST(Sampler, TopKAndTopPRestrictSupport) {
  std::vector<float> l{5.f, 4.f, 3.f, 0.f, -1.f, -2.f};
  Sampler k2({1.0f, 2, 1.f, 1});
  std::set<int32_t> seen;
  for (int i = 0; i < 500; ++i) seen.insert(k2.sample(l.data(), 6));
  EXPECT_EQ(seen, (std::set<int32_t>{0, 1}));
  // softmax: p0 ~ 0.66, p1 ~ 0.24: top-p 0.8 keeps exactly {0, 1}.
  Sampler p8({1.0f, 0, 0.8f, 2});
  seen.clear();
  for (int i = 0; i < 500; ++i) seen.insert(p8.sample(l.data(), 6));
  EXPECT_EQ(seen, (std::set<int32_t>{0, 1}));
}

TEST(Sampler, FrequenciesFollowSoftmax) {
  std::vector<float> l{1.f, 0.f, -1.f};
  Sampler s({1.0f, 0, 1.f, 9});
  std::map<int32_t, int> n;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) n[s.sample(l.data(), 3)]++;
  double z = std::exp(1.0) + 1 + std::exp(-1.0);
  EXPECT_NEAR(n[0] / double(draws), std::exp(1.0) / z, 0.015);
  EXPECT_NEAR(n[2] / double(draws), std::exp(-1.0) / z, 0.015);
}

TEST(Sampler, RejectsBadParameters) {
  EXPECT_THROW(Sampler({-1.f, 0, 1.f, 0}), Error);
  EXPECT_THROW(Sampler({1.f, -3, 1.f, 0}), Error);
  EXPECT_THROW(Sampler({1.f, 0, 0.f, 0}), Error);
  EXPECT_THROW(Sampler({1.f, 0, 1.5f, 0}), Error);
}

}  // namespace
}  // namespace gqa
