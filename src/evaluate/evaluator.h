// The evaluator: static checks → compile (cached) → a sandboxed worker process (correctness →
// microbenchmark → end to end) under a hard wall-clock limit → {metrics, artifacts} with combined_score.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "evaluate/cases.h"
#include "programs/compiler.h"

namespace gqa::eval {

struct EvaluateOptions {
  std::string program_path;
  std::optional<std::string> parent_path;  // with it, edits outside the EVOLVE-BLOCK are refused
  Target target = Target::Cpu;
  std::string cache_dir;                 // compile cache and the end-to-end model; empty: default_cache_dir()
  std::string cuda_arch;                 // CUDA target; empty: from the GPU
  double timeout_seconds = 300;          // the worker's whole run (correctness + benchmark + end to end)
  size_t memory_limit_bytes = 16ull << 30;  // CPU target: the worker's address space (RLIMIT_AS)
  int threads = 0;                       // CPU target: threads programs get; 0: all cores
  uint64_t seed = 0;                     // inputs; 0: fresh from std::random_device
  bool bench = true, end_to_end = true;
  int min_reps = 21;
  double bench_seconds = 1.0;            // per benchmark shape, once min_reps are done
  bool skip_static = false;              // tests only: lets the runtime defences meet what static checks refuse
  bool cuda_sandbox = true;              // CUDA target, host entry: the worker's seccomp filter (WorkerSettings)
  std::string worker_executable;         // empty: this executable (gqa-evolve eval-worker)
  HeadGeometry heads;                    // host entry: the shapes' attention geometry (--shapes-of MODEL)
  std::string visible_devices;           // CUDA target: CUDA_VISIBLE_DEVICES of the worker (empty: inherited),
                                         // so parallel evaluations (gqa-evolve evolve --workers) get a GPU each
};

// Never throws for a bad program (that is a result with combined_score 0); throws gqa::Error when the
// evaluator itself cannot work (unreadable file, no compiler, cache not writable).
//   metrics: combined_score, correct, failed_stage, speedup_geomean, compile_* , stage metrics...
//   artifacts: static_check, compile_log, correctness_report, benchmark_table, e2e_tokens, worker_stderr...
nlohmann::json evaluate(const EvaluateOptions& options);

// The random model the CPU end-to-end stage generates with (preset "tiny", seed 0), made on first use
// under <cache>/models/.
std::string ensure_e2e_model(const std::string& cache_dir, Target target);

}  // namespace gqa::eval
