#include "evolve/run_record.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

namespace gqa::evolve {

const Program* RunRecord::program(int64_t id) const {
  const auto it = std::lower_bound(programs.begin(), programs.end(), id, [](const Program& p, int64_t v) { return p.id < v; });
  return it != programs.end() && it->id == id ? &*it : nullptr;
}

size_t RunRecord::num_islands() const {
  const auto pop = state.find("population");
  return pop != state.end() && pop->contains("islands") ? (*pop)["islands"].size() : 0;
}

std::vector<int64_t> RunRecord::island_elites(size_t island) const {
  std::vector<int64_t> ids;
  if (island >= num_islands()) return ids;
  for (auto& [cell, id] : state["population"]["islands"][island].items()) ids.push_back(id.get<int64_t>());
  auto score = [&](int64_t id) { return program(id) ? program(id)->combined_score : 0.0; };
  std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return score(a) != score(b) ? score(a) > score(b) : a < b; });
  return ids;
}

RunRecord load_run_record(const Database& db, const std::string& dir) {
  RunRecord r;
  r.dir = dir;
  if (auto s = db.load_state()) r.state = std::move(*s);
  r.programs = db.programs();
  r.attempts = db.attempts();
  r.llm_calls = db.llm_calls();
  if (r.state.contains("target")) r.target = parse_target(r.state["target"].get<std::string>());
  r.best_id = r.state.value("best_id", int64_t{0});
  return r;
}

std::vector<ModelTotals> model_totals(const std::vector<LlmCall>& calls) {
  std::vector<ModelTotals> out;
  std::map<std::string, size_t> at;
  for (const LlmCall& c : calls) {
    auto [it, fresh] = at.emplace(c.model, out.size());
    if (fresh) {
      out.emplace_back();
      out.back().name = c.model;
    }
    ModelTotals& t = out[it->second];
    ++t.calls;
    t.failed += !c.error.empty();
    t.improvements += c.improved;
    t.retries += c.retries;
    t.prompt_tokens += c.prompt_tokens;
    t.completion_tokens += c.completion_tokens;
    t.reasoning_tokens += c.reasoning_tokens;
    t.latency_seconds += c.latency_seconds;
    if (c.cost) t.cost = t.cost.value_or(0) + *c.cost;
  }
  return out;
}

std::string totals_line(const ModelTotals& t) {
  return fmt::format("{}: {} calls ({} failed), {} improvements ({:.2f} per call), {} prompt + {} completion tokens, "
                     "cost {}",
                     t.name, t.calls, t.failed, t.improvements, t.improvements_per_call(), t.prompt_tokens,
                     t.completion_tokens, t.cost ? fmt::format("{:.4f}", *t.cost) : "not priced");
}

}  // namespace gqa::evolve
