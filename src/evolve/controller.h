// The evolution loop's entry point: proposes children (offline mutator or LLM), evaluates them on a pool of
// worker threads (each driving one sandboxed evaluator process), and commits every result with the run
// state in one transaction, so a run can be killed at any moment and resumed.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "evolve/config.h"
#include "evolve/outcome.h"

namespace gqa::evolve {

struct RunOptions {
  std::string initial_program;
  std::string output_dir;
  std::optional<int> iterations;   // overrides max_iterations (total over the run, resumes included)
  std::optional<Target> target;    // overrides config target
  std::optional<int> workers;      // overrides config workers
  bool resume = false;
  bool print_progress = true;      // one line per iteration on stdout (always in DIR/evolve.log)
  std::vector<std::string> notes;  // printed and logged when the run starts (e.g. where MPI workers run)
  // Folder with the chart library report.html inlines (scripts/setup.sh puts it in assets/); empty, or
  // the library missing there: the run writes report.md only and says so once.
  std::string assets_dir;
};

// {metrics, artifacts} of a candidate (and optionally "worker": where it was evaluated, for the log);
// `parent_code` guards edits outside the EVOLVE-BLOCK. Called from worker threads. Throws only when evaluation
// itself is impossible (that ends the run).
using EvaluateFn =
    std::function<nlohmann::json(const std::string& code, const std::string& parent_code, int64_t iteration)>;

struct RunSummary {
  int64_t iterations = 0;     // completed over the whole run
  int64_t programs = 0;
  int64_t best_id = 0;
  double best_score = 0, initial_score = 0;
  double seconds = 0;         // this session
  StopReason stop_reason = StopReason::MaxIterations;
  std::string best_program_path, report_path;
};

// The index (0..workers-1) of the evaluation worker thread calling; -1 on other threads.
int current_worker();

// The real evaluator (src/evaluate) configured from the evaluator section; candidates are written under
// work_dir while they are evaluated. Cuda target: with `device` set, every evaluation runs on that GPU
// (a CUDA_VISIBLE_DEVICES entry); otherwise with gpus > 0, worker w evaluates on GPU w % gpus.
EvaluateFn make_evaluator(const EvolveConfig& config, Target target, const std::string& work_dir, int gpus = 0,
                          const std::string& device = "");

// Runs (or resumes) the evolution in options.output_dir. `evaluate` empty: make_evaluator(...).
RunSummary run_evolution(const EvolveConfig& config, const RunOptions& options, EvaluateFn evaluate = {});

}  // namespace gqa::evolve
