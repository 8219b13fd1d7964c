// `gqa-evolve report DIR`: rewrites DIR/report.html and DIR/report.md from the run's database, read-only,
// so it works on a finished run and on one still running (which keeps writing; neither disturbs the other).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "common/error.h"
#include "evolve/report.h"
#include "evolve/run_lock.h"

namespace gqa::cli {

std::string default_assets_dir() {
  const char* env = std::getenv("GQA_ASSETS_DIR");
  return env && *env ? env : "assets";
}

Runner add_report(CLI::App& app) {
  struct Opts {
    std::string dir, assets = default_assets_dir();
  };
  auto o = std::make_shared<Opts>();
  app.add_option("dir", o->dir, "a run folder (the --output of evolve)")->required();
  app.add_option("--assets", o->assets, "folder with the chart library from scripts/setup.sh (default: $GQA_ASSETS_DIR or ./assets)")
      ->capture_default_str();
  return [o]() {
    const std::string db_path = (std::filesystem::path(o->dir) / "evolve.db").string();
    if (!std::filesystem::is_regular_file(db_path)) fail("report", "{}: no evolve.db here (not a run folder)", o->dir);
    const evolve::ChartAssets assets = evolve::load_chart_assets(o->assets);
    const evolve::Database db(db_path, evolve::Database::Mode::ReadOnly);
    const evolve::RunRecord run = evolve::load_run_record(db, o->dir);
    std::string status;
    if (const auto holder = evolve::RunLock::holder(o->dir)) status = "running (" + *holder + ")";
    else if (run.state.empty()) status = "not running; nothing committed";
    else status = fmt::format("not running (last commit {})", run.attempts.empty() ? "-" : run.attempts.back().created_at);
    evolve::write_reports(run, status, assets);
    std::printf("report: %s/report.html\n        %s/report.md\n(%s; %zu programs, %zu LLM calls)\n", o->dir.c_str(),
                o->dir.c_str(), status.c_str(), run.programs.size(), run.llm_calls.size());
    return 0;
  };
}

}  // namespace gqa::cli
