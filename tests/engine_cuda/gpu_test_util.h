// Helpers of the CUDA tests: skipping without a GPU, comparing logits rows with the stated bf16 tolerance.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "engine/cuda/cuda_engine.h"

namespace gqa::testing {

#define GQA_REQUIRE_GPU() \
  if (::gqa::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

// How far a GPU logits row is from the reference row: relative L2 error, largest absolute difference,
// and whether the top-1 token agrees or the disagreement is within the measured error (the reference's
// gap between its top-1 and the GPU's top-1 is under twice the largest absolute difference).
struct RowDiff {
  double rel_l2 = 0, max_abs = 0;
  bool top1_same = true, top1_explained = true;
};

inline RowDiff compare_rows(const float* got, const float* want, int64_t n) {
  RowDiff d;
  double num = 0, den = 0;
  int64_t ag = 0, aw = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = double(got[i]) - want[i];
    num += e * e;
    den += double(want[i]) * want[i];
    d.max_abs = std::max(d.max_abs, std::abs(e));
    if (got[i] > got[ag]) ag = i;
    if (want[i] > want[aw]) aw = i;
    if (std::isnan(got[i])) d.max_abs = INFINITY;
  }
  d.rel_l2 = std::sqrt(num / std::max(den, 1e-30));
  d.top1_same = ag == aw;
  d.top1_explained = d.top1_same || (double(want[aw]) - want[ag]) < 2 * d.max_abs;
  return d;
}

}  // namespace gqa::testing
