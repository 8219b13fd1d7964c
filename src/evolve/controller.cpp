// run_evolution (a thin wrapper over EvolutionRun, evolution_run.h) and the evaluator a run uses unless it
// is given one (tests pass a stand-in; MPI passes one that ships candidates to other ranks).
#include "evolve/controller.h"

#include <filesystem>

#include "common/error.h"
#include "evaluate/evaluator.h"
#include "evolve/evolution_run.h"

namespace fs = std::filesystem;

namespace gqa::evolve {

EvaluateFn make_evaluator(const EvolveConfig& config, Target target, const std::string& work_dir, int gpus,
                          const std::string& device) {
  const EvaluatorConfig ec = config.evaluator;
  const std::string ext = target == Target::Cuda ? ".cu" : ".cpp";
  return [ec, target, ext, work_dir, gpus, device](const std::string& code, const std::string& parent, int64_t iteration) {
    const std::string base = fmt::format("{}/candidate_{}", work_dir, iteration);
    write_file_atomic(base + ext, code, "evolve");
    write_file_atomic(base + "_parent" + ext, parent, "evolve");
    eval::EvaluateOptions o;
    o.program_path = base + ext;
    o.parent_path = base + "_parent" + ext;
    o.target = target;
    o.cache_dir = ec.cache_dir;
    o.cuda_arch = ec.cuda_arch;
    o.timeout_seconds = ec.timeout_seconds;
    o.memory_limit_bytes = static_cast<size_t>(ec.memory_limit_gb * (1ull << 30));
    o.threads = ec.threads;
    o.seed = ec.seed;
    o.bench = ec.bench;
    o.end_to_end = ec.end_to_end;
    o.min_reps = ec.min_reps;
    o.bench_seconds = ec.bench_seconds;
    o.heads = ec.heads;
    if (target == Target::Cuda && !device.empty()) o.visible_devices = device;
    else if (gpus > 0 && target == Target::Cuda && current_worker() >= 0) o.visible_devices = std::to_string(current_worker() % gpus);
    nlohmann::json r = eval::evaluate(o);
    std::error_code err;
    fs::remove(base + ext, err);
    fs::remove(base + "_parent" + ext, err);
    return r;
  };
}

RunSummary run_evolution(const EvolveConfig& config, const RunOptions& options, EvaluateFn evaluate) {
  EvolutionRun run(config, options, std::move(evaluate));
  return run.run();
}

}  // namespace gqa::evolve
