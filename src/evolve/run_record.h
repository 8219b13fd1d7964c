// Everything a report shows, read from a run's database: programs, attempts, LLM exchanges and the saved
// run state. Built the same way by a live run and by `gqa-evolve report DIR` (read-only, also while the
// run goes on), so both reports say the same.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "evolve/database.h"
#include "programs/compiler.h"

namespace gqa::evolve {

// Per model, over the LLM exchanges in the database.
struct ModelTotals {
  std::string name;
  int64_t calls = 0, failed = 0, improvements = 0, retries = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  double latency_seconds = 0;  // summed
  std::optional<double> cost;  // summed over the priced calls; none when no call was priced
  double improvements_per_call() const { return calls ? static_cast<double>(improvements) / calls : 0.0; }
};

struct RunRecord {
  std::string dir;
  nlohmann::json state = nlohmann::json::object();  // the saved run state; empty before the first commit
  std::vector<Program> programs;                    // by id
  std::vector<Attempt> attempts;
  std::vector<LlmCall> llm_calls;
  Target target = Target::Cpu;
  int64_t best_id = 0;

  std::string ext() const { return target == Target::Cuda ? ".cu" : ".cpp"; }
  const Program* program(int64_t id) const;
  // The island's elites from the saved grids, best first (ties: the older program).
  std::vector<int64_t> island_elites(size_t island) const;
  size_t num_islands() const;
};

RunRecord load_run_record(const Database& db, const std::string& dir);
std::vector<ModelTotals> model_totals(const std::vector<LlmCall>& calls);
// "NAME: C calls (F failed), I improvements (0.25 per call), P prompt + T completion tokens, cost X"
std::string totals_line(const ModelTotals& t);

}  // namespace gqa::evolve
