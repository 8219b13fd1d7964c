// Sampling. Candidates are cut by top-k, then by top-p over the temperature-scaled softmax; the draw
// uses splitmix64 so that a seed gives the same tokens everywhere.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace gqa {

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplingParams& p) : p_(p), state_(p.seed) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    fail("sampler", "temperature must be a finite number >= 0, got {}", p.temperature);
  if (p.top_k < 0) fail("sampler", "top-k must be >= 0, got {}", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("sampler", "top-p must be in (0, 1], got {}", p.top_p);
}

double Sampler::next_uniform() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (p_.temperature == 0.0f) return argmax(logits, vocab);
  cand_.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) cand_[i] = {logits[i] / p_.temperature, static_cast<int32_t>(i)};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t n = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    n = static_cast<size_t>(p_.top_k);
  } else if (p_.top_p < 1.0f) {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  const float mx = std::max_element(cand_.begin(), cand_.begin() + n, [](auto& a, auto& b) { return a.first < b.first; })->first;
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cand_[i].first = static_cast<float>(std::exp(static_cast<double>(cand_[i].first - mx)));
    total += cand_[i].first;
  }
  if (p_.top_p < 1.0f) {  // candidates are sorted here: keep the smallest prefix with mass >= top_p
    double acc = 0.0;
    size_t keep = 0;
    while (keep < n) {
      acc += cand_[keep++].first / total;
      if (acc >= p_.top_p) break;
    }
    n = keep;
    total = 0.0;
    for (size_t i = 0; i < n; ++i) total += cand_[i].first;
  }
  double r = next_uniform() * total;
  for (size_t i = 0; i < n; ++i) {
    r -= cand_[i].first;
    if (r < 0.0) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace gqa
