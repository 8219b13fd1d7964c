// Benchmark statistics against values computed by hand (and by scipy.stats for the t quantiles).
#include <gtest/gtest.h>

#include <cmath>

#include "bench/stats.h"
#include "common/error.h"

namespace gqa::bench {
namespace {

TEST(BenchStats, TQuantilesMatchTables) {
  EXPECT_NEAR(t_quantile_975(1), 12.7062, 1e-4);
  EXPECT_NEAR(t_quantile_975(2), 4.3027, 1e-4);
  EXPECT_NEAR(t_quantile_975(10), 2.2281, 1e-4);
  EXPECT_NEAR(t_quantile_975(30), 2.0423, 1e-4);
  EXPECT_NEAR(t_quantile_975(40), 2.0211, 2e-4);   // scipy: 2.021075
  EXPECT_NEAR(t_quantile_975(120), 1.9799, 2e-4);  // scipy: 1.979930
  EXPECT_NEAR(t_quantile_975(100000), 1.95996, 1e-4);
  EXPECT_THROW(t_quantile_975(0), Error);
}

TEST(BenchStats, SummaryOfKnownValues) {
  // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample variance 32/7.
  const Summary s = summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(s.n, 8);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.median, 4.5);
  EXPECT_NEAR(s.stddev, std::sqrt(32.0 / 7), 1e-12);
  EXPECT_NEAR(s.cv, std::sqrt(32.0 / 7) / 5, 1e-12);
  const double half = 2.3646 * std::sqrt(32.0 / 7) / std::sqrt(8.0);
  EXPECT_NEAR(s.ci_low, 5 - half, 1e-4);
  EXPECT_NEAR(s.ci_high, 5 + half, 1e-4);
  EXPECT_EQ(s.min, 2);
  EXPECT_EQ(s.max, 9);
}

TEST(BenchStats, ThreeRunsGiveAWideInterval) {
  const Summary s = summarize({100, 102, 98});
  EXPECT_DOUBLE_EQ(s.median, 100);
  EXPECT_NEAR(s.stddev, 2, 1e-12);
  EXPECT_NEAR(s.ci_high - s.mean, 4.3027 * 2 / std::sqrt(3.0), 1e-4);
}

TEST(BenchStats, SingleValueAndEmpty) {
  const Summary s = summarize({42});
  EXPECT_EQ(s.n, 1);
  EXPECT_EQ(s.stddev, 0);
  EXPECT_EQ(s.ci_low, 42);
  EXPECT_EQ(s.ci_high, 42);
  EXPECT_THROW(summarize({}), Error);
}

TEST(BenchStats, PairedComparisonVerdicts) {
  // A steady 10% gain with little noise: faster, the CI around +10%.
  Comparison c = compare_paired({100, 101, 99, 100}, {110, 111.1, 108.9, 110.2});
  EXPECT_STREQ(c.verdict, "faster");
  EXPECT_NEAR(c.change_percent, 10, 0.2);
  EXPECT_LT(c.change_ci_low_percent, c.change_percent);
  EXPECT_GT(c.change_ci_high_percent, c.change_percent);
  EXPECT_GT(c.ratio_ci_low, 1);
  // Slower.
  c = compare_paired({100, 100, 100}, {90, 91, 89});
  EXPECT_STREQ(c.verdict, "slower");
  EXPECT_NEAR(c.ratio_median, 0.90, 1e-12);
  // Differences that change sign are noise.
  c = compare_paired({100, 100, 100, 100}, {103, 97, 102, 98});
  EXPECT_STREQ(c.verdict, "within noise");
  EXPECT_LT(c.change_ci_low_percent, 0);
  EXPECT_GT(c.change_ci_high_percent, 0);
  // Lower-is-better metrics flip the verdict.
  c = compare_paired({10, 10, 10}, {9, 9.1, 8.9}, false);
  EXPECT_STREQ(c.verdict, "faster");
  // One pair cannot be judged.
  c = compare_paired({100}, {150});
  EXPECT_STREQ(c.verdict, "within noise");
  EXPECT_NEAR(c.change_percent, 50, 1e-9);
}

TEST(BenchStats, PairedComparisonRejectsBadInput) {
  EXPECT_THROW(compare_paired({1, 2}, {1}), Error);
  EXPECT_THROW(compare_paired({}, {}), Error);
  EXPECT_THROW(compare_paired({0, 1}, {1, 1}), Error);
}

}  // namespace
}  // namespace gqa::bench
