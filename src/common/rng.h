// A small deterministic random generator (xoshiro256**) whose whole state can be saved (an evolution run
// stores it in its database, so a resumed run continues the same sequence). Own helpers, not <random>
// distributions, whose results differ between standard libraries.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace gqa {

// splitmix64 (Steele, Lea, Flood): spreads a seed over the words of a larger generator's state.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 42) { reseed(seed); }
  void reseed(uint64_t seed) {
    for (auto& w : s_) w = splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  // [0, n); n > 0. Lemire-free modulo: the bias at n << 2^64 is far below anything that matters here.
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  // An index drawn with probability proportional to weights (all >= 0, not all 0).
  size_t weighted(const std::vector<double>& weights) {
    double total = 0;
    for (double w : weights) total += w;
    double r = uniform() * total;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (r < weights[i]) return i;
      r -= weights[i];
    }
    return weights.size() - 1;
  }

  std::string state() const {
    return fmt::format("{:016x}{:016x}{:016x}{:016x}", s_[0], s_[1], s_[2], s_[3]);
  }
  void set_state(const std::string& hex) {
    if (hex.size() != 64) fail("rng", "bad RNG state '{}'", hex);
    for (int i = 0; i < 4; ++i) s_[i] = std::stoull(hex.substr(i * 16, 16), nullptr, 16);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace gqa
