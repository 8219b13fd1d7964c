// `gqa-evolve evolve INITIAL_PROGRAM --config config.yaml --output DIR`: runs (or resumes) an evolution and
// says where the best program and the report are.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "common/error.h"
#include "evolve/config.h"
#include "evolve/controller.h"
#include "evolve/mpi_run.h"

namespace gqa::cli {

Runner add_evolve(CLI::App& app) {
  struct Opts {
    std::string program, config, output, target;
    std::string workers;
    int iterations = -1;
    bool resume = false, quiet = false;
    std::string assets = default_assets_dir();
  };
  auto o = std::make_shared<Opts>();
  // No existence checks here: under MPI only rank 0 reads these (the other ranks may be on hosts without them).
  app.add_option("program", o->program, "the initial program (.cpp: cpu target, .cu: cuda target)")->required();
  app.add_option("--config", o->config, "evolution config (YAML; see docs/evolve.md)")->required();
  app.add_option("--output", o->output, "run folder: evolve.db, evolve.log, best/, checkpoints/, report.md")->required();
  app.add_option("--iterations", o->iterations, "total iterations of the run (overrides max_iterations; counts those before a resume)");
  app.add_option("--target", o->target, "cpu or cuda (overrides the config's target)")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--workers", o->workers,
                 "parallel evaluations (overrides the config's workers; 0: one per GPU on cuda, 1 on cpu), or 'mpi': "
                 "under mpirun -n K, rank 0 runs the search and ranks 1..K-1 evaluate (docs/evolve.md)");
  app.add_flag("--resume", o->resume, "continue the run in --output from its last committed iteration");
  app.add_option("--assets", o->assets,
                 "folder with the chart library of report.html, from scripts/setup.sh (default: $GQA_ASSETS_DIR or "
                 "./assets); missing: only report.md is written")
      ->capture_default_str();
  app.add_flag("--quiet", o->quiet, "no per-iteration progress on the terminal (it still goes to DIR/evolve.log)");
  return [o]() {
    const bool mpi = o->workers == "mpi";
    int workers = -1;
    if (!mpi && !o->workers.empty()) {
      size_t used = 0;
      try {
        workers = std::stoi(o->workers, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != o->workers.size() || workers < 0) fail("evolve", "--workers: expected a number >= 0 or 'mpi', got '{}'", o->workers);
    }
    evolve::RunOptions ro;
    ro.initial_program = o->program;
    ro.output_dir = o->output;
    if (o->iterations >= 0) ro.iterations = o->iterations;
    if (!o->target.empty()) ro.target = parse_target(o->target);
    if (workers >= 0) ro.workers = workers;
    ro.resume = o->resume;
    ro.print_progress = !o->quiet;
    ro.assets_dir = o->assets;
    std::optional<evolve::RunSummary> summary;
    if (mpi) summary = evolve::run_evolution_mpi(o->config, ro);  // nullopt on the evaluator ranks
    else summary = evolve::run_evolution(evolve::load_config(o->config), ro);
    if (!summary) return 0;
    const evolve::RunSummary& s = *summary;
    std::printf("\nbest program:   %s (#%lld, combined_score %.4f; initial %.4f)\n", s.best_program_path.c_str(),
                static_cast<long long>(s.best_id), s.best_score, s.initial_score);
    const std::string html = std::filesystem::path(s.report_path).replace_filename("report.html").string();
    if (std::filesystem::exists(html)) std::printf("report:         %s (and report.md)\n", html.c_str());
    else std::printf("report:         %s\n", s.report_path.c_str());
    std::printf("iterations:     %lld (%lld programs), this session %.1f min, stopped by %s\n",
                static_cast<long long>(s.iterations), static_cast<long long>(s.programs), s.seconds / 60,
                std::string(evolve::to_string(s.stop_reason)).c_str());
    return 0;
  };
}

}  // namespace gqa::cli
