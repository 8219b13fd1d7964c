// The stored names of outcomes and stop reasons. One table per enum, so the name and the parse of a value
// cannot drift apart.
#include "evolve/outcome.h"

#include <array>
#include <string>
#include <utility>

#include "common/error.h"

namespace gqa::evolve {

namespace {

constexpr std::array<std::pair<Outcome, std::string_view>, 6> kOutcomes{{
    {Outcome::Evaluated, "evaluated"},
    {Outcome::LlmError, "llm_error"},
    {Outcome::DiffFailed, "diff_failed"},
    {Outcome::Duplicate, "duplicate"},
    {Outcome::TooLong, "too_long"},
    {Outcome::Exhausted, "exhausted"},
}};

constexpr std::array<std::pair<StopReason, std::string_view>, 3> kStopReasons{{
    {StopReason::MaxIterations, "max_iterations"},
    {StopReason::TargetScore, "target_score"},
    {StopReason::EarlyStoppingPatience, "early_stopping_patience"},
}};

template <class Enum, size_t N>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& table, Enum value, const char* what) {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  fail("evolve", "{} {} has no name", what, static_cast<int>(value));  // only a value cast from a bad integer
}

}  // namespace

std::string_view to_string(Outcome outcome) { return name_of(kOutcomes, outcome, "outcome"); }

Outcome parse_outcome(std::string_view name) {
  for (const auto& [v, n] : kOutcomes)
    if (n == name) return v;
  std::string known;
  for (const auto& [v, n] : kOutcomes) known += fmt::format("{}{}", known.empty() ? "" : ", ", n);
  fail("evolve", "unknown outcome '{}' (expected one of {})", name, known);
}

std::string_view to_string(StopReason reason) { return name_of(kStopReasons, reason, "stop reason"); }

}  // namespace gqa::evolve
