// Best-program files, checkpoints and the Markdown report. Everything is written to a temporary file and
// renamed, so a reader (or a kill) never sees half a file.
#include "evolve/report.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "evolve/program_text.h"

namespace fs = std::filesystem;

namespace gqa::evolve {

namespace {

nlohmann::json info_of(const Program& p) {
  nlohmann::json m = nlohmann::json::object();
  for (auto& [k, v] : p.metrics.items())
    if (v.is_primitive()) m[k] = v;
  return {{"id", p.id},         {"parent_id", p.parent_id},   {"iteration", p.iteration},
          {"island", p.island}, {"generation", p.generation}, {"combined_score", p.combined_score},
          {"correct", p.correct}, {"mutation", p.mutation},   {"knobs", knob_summary(p.code)},
          {"code_hash", p.code_hash}, {"created_at", p.created_at}, {"metrics", m}};
}

std::string dump(const nlohmann::json& j) { return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"; }

// Like write_file_atomic, with a temporary name of this process: a live run and `gqa-evolve report` may
// write the same report at the same time.
void write_own_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(fmt::format("{}.{}", path, getpid()), text, "report");
  std::error_code ec;
  fs::rename(fmt::format("{}.{}", path, getpid()), path, ec);
  if (ec) fail("report", "{}: cannot rename: {}", path, ec.message());
}

std::string failures_text(const nlohmann::json& failures) {
  std::string s;
  if (failures.is_object())
    for (auto& [k, n] : failures.items()) s += fmt::format("{}{}: {}", s.empty() ? "" : ", ", k, n.get<int64_t>());
  return s.empty() ? "none" : s;
}

}  // namespace

void write_best_files(const std::string& dir, const std::string& ext, const Program& best) {
  fs::create_directories(dir + "/best");
  write_file_atomic(dir + "/best/best_program" + ext, best.code, "evolve");
  write_file_atomic(dir + "/best/best_program_info.json", dump(info_of(best)), "evolve");
}

void write_checkpoint(const std::string& dir, const std::string& ext, int64_t completed, const Program& best) {
  const std::string cp = fmt::format("{}/checkpoints/checkpoint_{}", dir, completed);
  fs::create_directories(cp);
  write_file_atomic(cp + "/best_program" + ext, best.code, "evolve");
  write_file_atomic(cp + "/best_program_info.json", dump(info_of(best)), "evolve");
}

std::string markdown_report(const RunRecord& run, const std::string& status) {
  const std::string& dir = run.dir;
  const std::string ext = run.ext();
  // A copy, not a pointer into a list that is sorted below (that printed another program's table).
  const std::optional<Program> best = run.program(run.best_id) ? std::optional<Program>(*run.program(run.best_id)) : std::nullopt;
  const double initial = run.programs.empty() ? 0 : run.programs.front().combined_score;
  std::string s = "# gqa-evolve run report\n\n";
  s += fmt::format("- target: {}\n- status: {}\n- iterations: {} ({} programs evaluated)\n- time: {:.1f} min\n",
                   target_name(run.target), status, run.state.value("completed", int64_t{0}), run.programs.size(),
                   run.state.value("elapsed_seconds", 0.0) / 60);
  s += fmt::format("- initial program #1: combined_score {:.4f}\n", initial);
  if (best) {
    s += fmt::format("- **best program #{}: combined_score {:.4f}** ({:.2f}x the initial), iteration {}, generation {}\n",
                     best->id, best->combined_score, initial > 0 ? best->combined_score / initial : 0.0, best->iteration,
                     best->generation);
    s += fmt::format("- best program file: `{}/best/best_program{}` (info: `best/best_program_info.json`)\n", dir, ext);
    const std::string knobs = knob_summary(best->code);
    if (!knobs.empty()) s += fmt::format("- best knobs: `{}`\n", knobs);
  }
  s += fmt::format("- failures by stage: {}\n- database: `{}/evolve.db` (SQLite), log: `{}/evolve.log`, report: `{}/report.html`\n\n",
                   failures_text(run.state.value("failures", nlohmann::json::object())), dir, dir, dir);

  std::vector<Program> ranked = run.programs;
  std::stable_sort(ranked.begin(), ranked.end(), [](const Program& a, const Program& b) { return a.combined_score > b.combined_score; });
  s += "## Top programs\n\n| id | iteration | island | generation | combined_score | mutation |\n|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < ranked.size() && i < 15; ++i) {
    const Program& p = ranked[i];
    s += fmt::format("| {} | {} | {} | {} | {:.4f} | {} |\n", p.id, p.iteration, p.island, p.generation, p.combined_score, p.mutation);
  }
  s += "\n## Islands (elites, best first)\n\n";
  for (size_t i = 0; i < run.num_islands(); ++i) {
    std::string ids;
    for (int64_t id : run.island_elites(i))
      ids += fmt::format("{}#{} ({:.3f})", ids.empty() ? "" : ", ", id, run.program(id) ? run.program(id)->combined_score : 0.0);
    s += fmt::format("- island {}: {}\n", i, ids.empty() ? "empty" : ids);
  }
  const auto totals = model_totals(run.llm_calls);
  if (!totals.empty()) {
    s += "\n## LLM usage\n\n| model | calls | failed | improvements | per call | prompt tokens | completion tokens | "
         "reasoning tokens | mean latency s | retries | cost |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const ModelTotals& t : totals)
      s += fmt::format("| {} | {} | {} | {} | {:.2f} | {} | {} | {} | {:.1f} | {} | {} |\n", t.name, t.calls, t.failed,
                       t.improvements, t.improvements_per_call(), t.prompt_tokens, t.completion_tokens, t.reasoning_tokens,
                       t.calls ? t.latency_seconds / t.calls : 0.0, t.retries, t.cost ? fmt::format("{:.4f}", *t.cost) : "-");
  }
  if (best && best->artifacts.contains("benchmark_table") && best->artifacts["benchmark_table"].is_string())
    s += fmt::format("\n## Best program's benchmark (#{})\n\n```\n{}```\n", best->id,
                     best->artifacts["benchmark_table"].get<std::string>());
  return s;
}

void write_reports(const RunRecord& run, const std::string& status, const std::optional<ChartAssets>& assets) {
  write_own_atomic(run.dir + "/report.md", markdown_report(run, status));
  if (assets) write_own_atomic(run.dir + "/report.html", html_report(run, status, *assets));
}

}  // namespace gqa::evolve
