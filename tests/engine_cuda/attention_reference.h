// The float64 reference the attention tests and attention_bench compare against (host code, no GPU).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/dtype.h"

namespace gqa::testing {

// One output row of causal attention: bf16 query q[D] against keys and values 0..last of one KV head
// (bf16 rows D elements apart, starting at k and v): softmax(q·kᵀ · scale) · v, all in double.
inline std::vector<double> attention_reference_row(const uint16_t* q, const uint16_t* k, const uint16_t* v, int last,
                                                   int D, double scale) {
  std::vector<double> sc(static_cast<size_t>(last) + 1), o(static_cast<size_t>(D), 0.0);
  double mx = -INFINITY;
  for (int j = 0; j <= last; ++j) {
    const uint16_t* kr = k + static_cast<size_t>(j) * D;
    double d = 0;
    for (int i = 0; i < D; ++i) d += double(bf16_to_f32(q[i])) * bf16_to_f32(kr[i]);
    sc[j] = d * scale;
    mx = std::max(mx, sc[j]);
  }
  double sum = 0;
  for (double& x : sc) sum += (x = std::exp(x - mx));
  for (int j = 0; j <= last; ++j) {
    const uint16_t* vr = v + static_cast<size_t>(j) * D;
    const double w = sc[j] / sum;
    for (int i = 0; i < D; ++i) o[i] += w * bf16_to_f32(vr[i]);
  }
  return o;
}

}  // namespace gqa::testing
