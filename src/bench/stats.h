// Statistics of benchmark runs: median, mean, sample standard deviation, coefficient of variation and a
// 95% Student-t confidence interval of the mean; for A/B comparisons the same on paired log ratios.
#pragma once
#include <vector>

namespace gqa::bench {

struct Summary {
  int n = 0;
  double median = 0, mean = 0, stddev = 0;  // stddev: sample (n - 1)
  double cv = 0;                            // stddev / mean (0 when the mean is 0)
  double ci_low = 0, ci_high = 0;           // 95% t-interval of the mean (the mean itself when n < 2)
  double min = 0, max = 0;
};

// Two-sided 95% quantile of Student's t with `df` degrees of freedom (t_{0.975, df}); exact table to 30,
// then a Cornish-Fisher expansion (error < 1e-4). df < 1 throws.
double t_quantile_975(int df);

double median(std::vector<double> v);
// Throws "[bench] statistics of no values" for an empty input.
Summary summarize(const std::vector<double>& values);

// Paired comparison of a candidate against a baseline (same scenario, interleaved runs): the ratios
// candidate_i / baseline_i on a log scale, their t-interval, mapped back to a relative change.
struct Comparison {
  int n = 0;
  double ratio_median = 1;        // median of candidate_i / baseline_i
  double ratio_geomean = 1;       // exp(mean log ratio)
  double ratio_ci_low = 1, ratio_ci_high = 1;  // 95% CI of the geometric mean ratio
  double change_percent = 0;      // (ratio_geomean - 1) * 100
  double change_ci_low_percent = 0, change_ci_high_percent = 0;
  // "faster" when the whole CI is above 1, "slower" when below, else "within noise" (and always with n < 2).
  const char* verdict = "within noise";
};
// `higher_is_better`: true for throughput (tok/s). Sizes must match and be > 0; values must be > 0.
Comparison compare_paired(const std::vector<double>& baseline, const std::vector<double>& candidate,
                          bool higher_is_better = true);

}  // namespace gqa::bench
