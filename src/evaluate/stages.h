// The evaluator's stages that run inside the sandboxed worker process: correctness, microbenchmark and
// end-to-end generation. Each returns its metrics and artifacts; a stage that fails ends the cascade.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

#include "evaluate/problem.h"
#include "gqa/abi.h"

namespace gqa::eval {

// A program as the worker calls it: counted, so that every stage can prove whose code ran.
struct Kernel {
  std::string name;
  gqa_attention_fn fn = nullptr;
  uint64_t calls = 0;
  int operator()(const gqa_attention_args& a) {
    ++calls;
    return fn(&a);
  }
};

struct StageResult {
  bool passed = false;
  std::string failure;  // one line, when !passed
  nlohmann::json metrics = nlohmann::json::object();
  std::map<std::string, std::string> artifacts;
};

struct WorkerSettings {
  Target target = Target::Cpu;
  int threads = 1;          // CPU target: num_threads passed to programs
  uint64_t seed = 0;        // inputs; fresh per evaluation
  int min_reps = 21;        // microbenchmark repetitions per kernel and shape, at least
  double bench_seconds = 1.5;  // per shape, both kernels together, once min_reps are done
  std::string model_dir;    // end to end: the random model (made by the parent)
  int e2e_prompt_tokens = 32;
  int e2e_new_tokens = 64;
};

StageResult run_correctness(Kernel& candidate, const WorkerSettings& s);
StageResult run_microbench(Kernel& candidate, Kernel& stock, const WorkerSettings& s);
StageResult run_end_to_end(gqa_attention_fn candidate, gqa_attention_fn stock, const WorkerSettings& s);

// Read bandwidth of host memory (bytes/s): a multi-threaded streaming sum over 256 MiB, best of 3.
double measure_host_read_bandwidth(int threads);

}  // namespace gqa::eval
