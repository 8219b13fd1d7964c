// Token sampling: greedy, temperature, top-k, top-p (nucleus), with a seeded generator whose sequence is
// the same on every machine.
#pragma once
#include <cstdint>
#include <vector>

namespace gqa {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  int top_k = 0;             // 0: all
  float top_p = 1.0f;        // 1: all
  uint64_t seed = 0;
};

class Sampler {
 public:
  // Throws gqa::Error naming the parameter when a value is out of range.
  explicit Sampler(const SamplingParams& p);
  int32_t sample(const float* logits, int64_t vocab);
  // The generator's state: a device sampler started from it continues the same sequence of draws.
  uint64_t rng_state() const { return state_; }

 private:
  double next_uniform();  // [0, 1)
  SamplingParams p_;
  uint64_t state_;
  std::vector<std::pair<float, int32_t>> cand_;
};

int32_t argmax(const float* logits, int64_t n);

}  // namespace gqa
