// Knob mutation and crossover. All randomness comes from the run's Rng, so a fixed seed gives the same
// proposals in the same order.
#include "evolve/mutator_offline.h"

#include <algorithm>
#include <map>

#include "common/error.h"
#include "evolve/database.h"
#include "evolve/program_text.h"

namespace gqa::evolve {

namespace {

using Settings = std::map<std::string, std::string>;

Settings settings_of(const std::vector<Knob>& knobs) {
  Settings s;
  for (const Knob& k : knobs) s[k.name] = k.value;
  return s;
}

std::string describe(const std::vector<Knob>& knobs, const Settings& to) {
  std::string d;
  for (const Knob& k : knobs) {
    const std::string& v = to.at(k.name);
    if (v != k.value) d += fmt::format("{}{} {}->{}", d.empty() ? "" : "; ", k.name, k.value, v);
  }
  return d;
}

std::string mutate_value(const Knob& k, double jump_rate, Rng& rng) {
  const auto& vs = k.values;
  const auto pos = std::find(vs.begin(), vs.end(), k.value);
  if (vs.size() < 2 && pos != vs.end()) return k.value;
  if (pos == vs.end() || rng.uniform() < jump_rate) {  // jump: any other allowed value
    std::vector<std::string> others;
    for (const auto& v : vs)
      if (v != k.value) others.push_back(v);
    return others[rng.below(others.size())];
  }
  const size_t i = static_cast<size_t>(pos - vs.begin());
  if (i == 0) return vs[1];
  if (i + 1 == vs.size()) return vs[i - 1];
  return rng.below(2) ? vs[i + 1] : vs[i - 1];
}

}  // namespace

std::optional<Proposal> OfflineMutator::propose(const std::string& parent, const std::vector<Mate>& mates, Rng& rng,
                                                const std::function<bool(const std::string&)>& seen) const {
  const std::vector<Knob> knobs = parse_knobs(parent);
  if (knobs.empty()) fail("evolve", "the offline mutator needs EVOLVE-KNOB lines in the program's EVOLVE-BLOCK");
  const Settings current = settings_of(knobs);
  for (int attempt = 0; attempt < config_.max_attempts; ++attempt) {
    Settings next = current;
    std::string prefix;
    if (!mates.empty() && rng.uniform() < config_.crossover_rate) {
      const Mate& mate = mates[rng.below(mates.size())];
      Settings theirs;
      try {
        theirs = settings_of(parse_knobs(mate.code));
      } catch (const Error&) {
      }
      for (const Knob& k : knobs) {
        auto it = theirs.find(k.name);
        const bool allowed = it != theirs.end() && std::find(k.values.begin(), k.values.end(), it->second) != k.values.end();
        if (rng.below(2) && allowed) next[k.name] = it->second;
      }
      prefix = fmt::format("crossover with #{}: ", mate.id);
    }
    if (next == current) {  // plain mutation (or a crossover that changed nothing)
      prefix.clear();
      std::vector<size_t> order(knobs.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      const size_t n = 1 + rng.below(std::min<size_t>(knobs.size(), config_.max_knobs_per_mutation));
      for (size_t c = 0; c < n; ++c) {
        const size_t pick = c + rng.below(order.size() - c);
        std::swap(order[c], order[pick]);
        const Knob& k = knobs[order[c]];
        next[k.name] = mutate_value(k, config_.jump_rate, rng);
      }
    }
    if (next == current) continue;
    std::string code = set_knobs(parent, next);
    if (!seen(code_hash(code))) return Proposal{std::move(code), prefix + describe(knobs, next)};
  }
  // Random draws keep hitting known programs: walk every single-knob change in order before giving up.
  for (const Knob& k : knobs)
    for (const std::string& v : k.values) {
      if (v == k.value) continue;
      Settings next = current;
      next[k.name] = v;
      std::string code = set_knobs(parent, next);
      if (!seen(code_hash(code))) return Proposal{std::move(code), describe(knobs, next)};
    }
  return std::nullopt;
}

}  // namespace gqa::evolve
