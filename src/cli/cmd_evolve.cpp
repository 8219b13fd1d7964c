// `gqa-evolve evolve INITIAL_PROGRAM --config config.yaml --output DIR`: runs (or resumes) an evolution and
// says where the best program and the report are.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "evolve/config.h"
#include "evolve/controller.h"

namespace gqa::cli {

Runner add_evolve(CLI::App& app) {
  struct Opts {
    std::string program, config, output, target;
    int iterations = -1, workers = -1;
    bool resume = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("program", o->program, "the initial program (.cpp: cpu target, .cu: cuda target)")->required()->check(CLI::ExistingFile);
  app.add_option("--config", o->config, "evolution config (YAML; see docs/evolve.md)")->required()->check(CLI::ExistingFile);
  app.add_option("--output", o->output, "run folder: evolve.db, evolve.log, best/, checkpoints/, report.md")->required();
  app.add_option("--iterations", o->iterations, "total iterations of the run (overrides max_iterations; counts those before a resume)");
  app.add_option("--target", o->target, "cpu or cuda (overrides the config's target)")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--workers", o->workers, "parallel evaluations (overrides the config's workers; 0: one per GPU on cuda, 1 on cpu)");
  app.add_flag("--resume", o->resume, "continue the run in --output from its last committed iteration");
  app.add_flag("--quiet", o->quiet, "no per-iteration progress on the terminal (it still goes to DIR/evolve.log)");
  return [o]() {
    const evolve::EvolveConfig config = evolve::load_config(o->config);
    evolve::RunOptions ro;
    ro.initial_program = o->program;
    ro.output_dir = o->output;
    if (o->iterations >= 0) ro.iterations = o->iterations;
    if (!o->target.empty()) ro.target = o->target;
    if (o->workers >= 0) ro.workers = o->workers;
    ro.resume = o->resume;
    ro.print_progress = !o->quiet;
    const evolve::RunSummary s = evolve::run_evolution(config, ro);
    std::printf("\nbest program:   %s (#%lld, combined_score %.4f; initial %.4f)\n", s.best_program_path.c_str(),
                static_cast<long long>(s.best_id), s.best_score, s.initial_score);
    std::printf("report:         %s\n", s.report_path.c_str());
    std::printf("iterations:     %lld (%lld programs), this session %.1f min, stopped by %s\n",
                static_cast<long long>(s.iterations), static_cast<long long>(s.programs), s.seconds / 60, s.stop_reason.c_str());
    return 0;
  };
}

}  // namespace gqa::cli
