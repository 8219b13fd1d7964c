// Best-program files, checkpoints and the final Markdown report. Everything is written to a temporary
// file and renamed, so a reader (or a kill) never sees half a file.
#include "evolve/report.h"

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

void write_report(const std::string& dir, const std::string& ext, const ReportInputs& in) {
  std::vector<Program> programs = in.db->programs();
  const std::vector<Attempt> attempts = in.db->attempts();
  const int64_t best_id = in.population->best_id();
  std::string s = "# gqa-evolve run report\n\n";
  const Program* best = nullptr;
  for (const Program& p : programs)
    if (p.id == best_id) best = &p;
  const double initial = programs.empty() ? 0 : programs.front().combined_score;
  s += fmt::format("- target: {}\n- stopped: {}\n- iterations: {} ({} programs evaluated)\n- time: {:.1f} min\n",
                   target_name(in.target), to_string(in.stop_reason), attempts.empty() ? 0 : attempts.size() - 1, programs.size(), in.seconds / 60);
  s += fmt::format("- initial program #1: combined_score {:.4f}\n", initial);
  if (best) {
    s += fmt::format("- **best program #{}: combined_score {:.4f}** ({:.2f}x the initial), iteration {}, generation {}\n",
                     best->id, best->combined_score, initial > 0 ? best->combined_score / initial : 0.0, best->iteration,
                     best->generation);
    s += fmt::format("- best program file: `{}/best/best_program{}` (info: `best/best_program_info.json`)\n", dir, ext);
    const std::string knobs = knob_summary(best->code);
    if (!knobs.empty()) s += fmt::format("- best knobs: `{}`\n", knobs);
  }
  std::string fails;
  for (auto& [k, n] : *in.failures) fails += fmt::format("{}{}: {}", fails.empty() ? "" : ", ", k, n);
  s += fmt::format("- failures by stage: {}\n- database: `{}/evolve.db` (SQLite), log: `{}/evolve.log`\n\n",
                   fails.empty() ? "none" : fails, dir, dir);

  std::stable_sort(programs.begin(), programs.end(), [](const Program& a, const Program& b) { return a.combined_score > b.combined_score; });
  s += "## Top programs\n\n| id | iteration | island | generation | combined_score | mutation |\n|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < programs.size() && i < 15; ++i) {
    const Program& p = programs[i];
    s += fmt::format("| {} | {} | {} | {} | {:.4f} | {} |\n", p.id, p.iteration, p.island, p.generation, p.combined_score, p.mutation);
  }
  s += "\n## Islands (elites, best first)\n\n";
  for (size_t i = 0; i < in.population->num_islands(); ++i) {
    std::string ids;
    for (int64_t id : in.population->island_elites(static_cast<int>(i)))
      ids += fmt::format("{}#{} ({:.3f})", ids.empty() ? "" : ", ", id, in.population->score(id));
    s += fmt::format("- island {}: {}\n", i, ids.empty() ? "empty" : ids);
  }
  if (best && best->artifacts.contains("benchmark_table") && best->artifacts["benchmark_table"].is_string())
    s += fmt::format("\n## Best program's benchmark\n\n```\n{}```\n", best->artifacts["benchmark_table"].get<std::string>());
  write_file_atomic(dir + "/report.md", s, "evolve");
}

}  // namespace gqa::evolve
