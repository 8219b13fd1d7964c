// The offline mutator (the default without an LLM endpoint): changes the EVOLVE-KNOB constants of a parent
// (a step to a neighbouring allowed value, or a random jump) or crosses its knob settings with another
// program's, and never proposes code that has been seen before.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/rng.h"
#include "evolve/config.h"

namespace gqa::evolve {

struct Proposal {
  std::string code;
  std::string description;  // e.g. "KV_BLOCK 64->128; Q_TILE 8->4" or "crossover with #7: ..."
};

struct Mate {
  int64_t id = 0;
  std::string code;
};

class OfflineMutator {
 public:
  explicit OfflineMutator(const OfflineConfig& config) : config_(config) {}
  // `seen(code_hash)` says whether a program was already proposed. nullopt: every draw (and every
  // single-knob neighbour) was seen — the knob space around this parent is exhausted.
  std::optional<Proposal> propose(const std::string& parent, const std::vector<Mate>& mates, Rng& rng,
                                  const std::function<bool(const std::string&)>& seen) const;

 private:
  OfflineConfig config_;
};

}  // namespace gqa::evolve
