// Statistics for benchmark runs. A t-interval rather than a bootstrap: with 3 to 10 runs per scenario a
// bootstrap cannot resample enough distinct sets to mean anything, while the t-interval states its
// assumption (roughly normal run-to-run noise) and widens honestly for small n.
#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace gqa::bench {

double t_quantile_975(int df) {
  static const double table[] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                                 2.2010,  2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                                 2.0796,  2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423};
  if (df < 1) fail("bench", "t quantile needs at least 1 degree of freedom, got {}", df);
  if (df <= 30) return table[df - 1];
  // Cornish-Fisher expansion of t around the normal quantile z.
  const double z = 1.959963984540054, z2 = z * z, n = df;
  return z + (z2 + 1) * z / (4 * n) + ((5 * z2 + 16) * z2 + 3) * z / (96 * n * n) +
         (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / (384 * n * n * n);
}

double median(std::vector<double> v) {
  if (v.empty()) fail("bench", "statistics of no values");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

Summary summarize(const std::vector<double>& v) {
  if (v.empty()) fail("bench", "statistics of no values");
  Summary s;
  s.n = static_cast<int>(v.size());
  s.median = median(v);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / s.n;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  s.ci_low = s.ci_high = s.mean;
  if (s.n >= 2) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / (s.n - 1));
    const double half = t_quantile_975(s.n - 1) * s.stddev / std::sqrt(static_cast<double>(s.n));
    s.ci_low = s.mean - half;
    s.ci_high = s.mean + half;
  }
  s.cv = s.mean != 0 ? s.stddev / std::fabs(s.mean) : 0;
  return s;
}

Comparison compare_paired(const std::vector<double>& base, const std::vector<double>& cand, bool higher_is_better) {
  if (base.size() != cand.size() || base.empty())
    fail("bench", "paired comparison needs equal, non-empty samples (got {} and {})", base.size(), cand.size());
  std::vector<double> ratio, logs;
  for (size_t i = 0; i < base.size(); ++i) {
    if (!(base[i] > 0) || !(cand[i] > 0)) fail("bench", "paired comparison of non-positive values ({} vs {})", base[i], cand[i]);
    ratio.push_back(cand[i] / base[i]);
    logs.push_back(std::log(cand[i] / base[i]));
  }
  const Summary ls = summarize(logs);
  Comparison c;
  c.n = ls.n;
  c.ratio_median = median(ratio);
  c.ratio_geomean = std::exp(ls.mean);
  c.ratio_ci_low = std::exp(ls.ci_low);
  c.ratio_ci_high = std::exp(ls.ci_high);
  c.change_percent = (c.ratio_geomean - 1) * 100;
  c.change_ci_low_percent = (c.ratio_ci_low - 1) * 100;
  c.change_ci_high_percent = (c.ratio_ci_high - 1) * 100;
  if (c.n >= 2) {
    const bool above = c.ratio_ci_low > 1, below = c.ratio_ci_high < 1;
    if (above) c.verdict = higher_is_better ? "faster" : "slower";
    if (below) c.verdict = higher_is_better ? "slower" : "faster";
  }
  return c;
}

}  // namespace gqa::bench
