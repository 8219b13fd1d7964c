// How an iteration ended (Outcome) and why a run stopped (StopReason). Inside the run they are enums; the
// database, evolve.log, report.md and the CLI see the names below, which must never change.
#pragma once
#include <string_view>

namespace gqa::evolve {

// Evaluated: a program was made and evaluated (it may still have failed a stage); the others say why
// there was no program.
enum class Outcome { Evaluated, LlmError, DiffFailed, Duplicate, TooLong, Exhausted };

// "evaluated", "llm_error", "diff_failed", "duplicate", "too_long", "exhausted".
std::string_view to_string(Outcome outcome);
// The inverse of to_string; throws "[evolve] unknown outcome 'x' (...)" for any other name.
Outcome parse_outcome(std::string_view name);

enum class StopReason { MaxIterations, TargetScore, EarlyStoppingPatience };

// "max_iterations", "target_score", "early_stopping_patience".
std::string_view to_string(StopReason reason);

}  // namespace gqa::evolve
