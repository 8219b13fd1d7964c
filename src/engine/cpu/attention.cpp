// Reference attention: exact softmax in float32 with max subtraction, one (token, head) pair per task.
#include "engine/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gqa::cpu {

void attention(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
               int64_t n_heads, int64_t n_kv_heads, int64_t d, float scale) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_stride = n_kv_heads * d;
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(pos0 + T));
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t len = pos0 + t + 1;
        const int64_t kvh = h / group;
        const float* qv = q + (t * n_heads + h) * d;
        float mx = -INFINITY;
        for (int64_t j = 0; j < len; ++j) {
          const float* kv = k + j * kv_stride + kvh * d;
          float s = 0.f;
#pragma omp simd reduction(+ : s)
          for (int64_t i = 0; i < d; ++i) s += qv[i] * kv[i];
          s *= scale;
          scores[j] = s;
          mx = std::max(mx, s);
        }
        float sum = 0.f;
        for (int64_t j = 0; j < len; ++j) {
          scores[j] = std::exp(scores[j] - mx);
          sum += scores[j];
        }
        float* o = out + (t * n_heads + h) * d;
        std::fill(o, o + d, 0.f);
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < len; ++j) {
          const float p = scores[j] * inv;
          const float* vv = v + j * kv_stride + kvh * d;
#pragma omp simd
          for (int64_t i = 0; i < d; ++i) o[i] += p * vv[i];
        }
      }
    }
  }
}

}  // namespace gqa::cpu
