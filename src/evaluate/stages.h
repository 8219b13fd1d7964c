// The evaluator's stages that run inside the sandboxed worker process: correctness, microbenchmark and
// end-to-end generation. Each returns its metrics and artifacts; a stage that fails ends the cascade.
#pragma once
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "engine/generate.h"
#include "evaluate/problem.h"
#include "evaluate/sandbox.h"
#include "gqa/abi.h"

namespace gqa::eval {

// A program as the worker calls it: counted, so that every stage can prove whose code ran. Each call gets
// its own copy of the arguments (what it does to them, nobody reads), and with a baseline the process
// state (OpenMP settings, floating-point control) is set to it before the call and checked after it.
struct Kernel {
  Kernel(std::string n, gqa_attention_fn f, const ProcessState* b = nullptr) : name(std::move(n)), fn(f), baseline(b) {}
  std::string name;
  gqa_attention_fn fn = nullptr;
  uint64_t calls = 0;
  const ProcessState* baseline = nullptr;
  std::string state_change;  // what the first call that changed the process state changed
  static constexpr int kStateChanged = -1000;  // returned instead of GQA_OK when it did
  int operator()(const gqa_attention_args& a) {
    ++calls;
    gqa_attention_args copy = a;
    if (baseline) baseline->apply();
    int rc = fn(&copy);
    if (baseline) {
      std::string d = baseline->differences(ProcessState::current());
      if (!d.empty()) {
        if (state_change.empty()) state_change = std::move(d);
        baseline->apply();
        if (rc == GQA_OK) rc = kStateChanged;
      }
    }
    return rc;
  }
  // "returned error code 3", or what it changed in the process state.
  std::string describe(int rc) const {
    if (rc == kStateChanged) return "changed the process state the next kernel would run under: " + state_change;
    return fmt::format("returned error code {}", rc);
  }
};

struct StageResult {
  bool passed = false;
  std::string failure;  // one line, when !passed
  nlohmann::json metrics = nlohmann::json::object();
  std::map<std::string, std::string> artifacts;
};

struct WorkerSettings {
  HeadGeometry heads;       // the attention geometry of the correctness and benchmark shapes
  Target target = Target::Cpu;
  int threads = 1;          // CPU target: num_threads passed to programs
  uint64_t seed = 0;        // inputs; fresh per evaluation
  int min_reps = 21;        // microbenchmark repetitions per kernel and shape, at least
  double bench_seconds = 1.5;  // per shape, both kernels together, once min_reps are done
  std::string model_dir;    // end to end: the random model (made by the parent)
  int e2e_prompt_tokens = 32;
  int e2e_new_tokens = 64;
  // CUDA target, host entry: the worker installs enter_cuda_sandbox() (sandbox.h) before the program's first call.
  // The worker's flag (--cuda-sandbox), which the evaluator passes unless EvaluateOptions::cuda_sandbox is off.
  bool cuda_sandbox = false;
};

class ChildLink;
class SharedArena;
// Run by the worker's relay (the judge), which never loads the program: inputs made in `arena`, each call
// asked of the candidate's process through `child`, outputs compared here. When the child ends mid-stage,
// child.gone() is true and the result means nothing. run_correctness serves both targets (on the CUDA target
// the child runs each call on device copies and copies the output and the device's inputs back);
// run_microbench is the CPU target's, run_cuda_microbench the CUDA target's (microbench_cuda.cpp).
StageResult run_correctness(ChildLink& child, SharedArena& arena, const WorkerSettings& s);
StageResult run_microbench(ChildLink& child, SharedArena& arena, const WorkerSettings& s);
StageResult run_cuda_microbench(ChildLink& child, SharedArena& arena, const WorkerSettings& s);
// Asks the candidate's process to protect the problems' arena buffers (guard pages; inputs read-only unless
// `inputs_read_only` is false).
bool post_protections(ChildLink& child, const SharedArena& arena, const std::vector<const Problem*>& problems,
                      bool inputs_read_only = true);
// End to end: the bound on the relative L2 error of each step's logits under teacher forcing, candidate
// against stock through the same hook (measured: honest programs 1e-3 or less on the tiny model).
constexpr double kE2eLogitTolerance = 0.05;
// The CUDA target's bound, candidate against the control (the stock kernels through the same hook) on the
// random Qwen3-0.6B, whose 28 random layers amplify bf16 rounding. Calibrated on GPUs (docs/evaluator.md): the
// honest float32 programs differ from the control by 0.007 (H200), bf16 rounding of q alone by 0.09-0.15 (the
// control against the engine's own path), and engine_only (a softmax of half the temperature inside the engine
// only) by 0.533 (H100). 0.3 leaves a factor 2 above the bf16 rounding and 1.8 below that cheat.
constexpr double kE2eLogitToleranceCuda = 0.3;
// Teacher forcing: logits after the prompt and after each of `tokens` but the last fed one by one, with
// `fn` as the engine's attention: [steps][vocab].
std::vector<std::vector<float>> teacher_forced_logits(Engine& engine, gqa_attention_fn fn, const std::vector<int32_t>& prompt,
                                                      const std::vector<int32_t>& tokens);
// The worst relative L2 error of `x` against `ref` over the steps (infinite when not finite), and its step.
std::pair<double, size_t> worst_logit_error(const std::vector<std::vector<float>>& ref,
                                            const std::vector<std::vector<float>>& x);
// The host entry's end-to-end generation: a fixed token-id prompt of s.e2e_prompt_tokens, greedy, s.e2e_new_tokens.
std::vector<int32_t> e2e_prompt(const Engine& engine, const WorkerSettings& s);
GenerateOptions e2e_options(const WorkerSettings& s);
// How far `x` repeats `ref`: tokens compared (the shorter length), the identical prefix, equal positions.
struct TokenAgreement {
  size_t n = 0, prefix = 0, same = 0;
  double share() const { return n ? static_cast<double>(same) / static_cast<double>(n) : 0.0; }
};
TokenAgreement token_agreement(const std::vector<int32_t>& ref, const std::vector<int32_t>& x);

// The engine is opened before the sandbox is entered (it reads the model's files).
std::unique_ptr<Engine> open_end_to_end_engine(const WorkerSettings& s);
// The gate's side in the relay (CPU target): the stock kernel's greedy tokens and their teacher-forced
// logits, computed there, where the candidate cannot reach them.
struct E2eReference {
  std::vector<int32_t> tokens;                // the stock run's generated tokens (teacher forcing feeds them)
  std::vector<std::vector<float>> logits;     // [steps][vocab] with the stock kernel
};
E2eReference end_to_end_reference(const WorkerSettings& s);
// With `forced`, the candidate is teacher-forced with the relay's tokens and its logits are written to
// `logits_out` (steps × vocab floats, the relay's to judge); the stage's own gate still runs.
struct E2eExchange {
  std::vector<int32_t> tokens;
  float* logits_out = nullptr;
  size_t capacity = 0;  // floats
};
StageResult run_end_to_end(Engine& engine, Kernel& candidate, Kernel& stock, const WorkerSettings& s,
                           const E2eExchange* forced = nullptr);

// The benchmark stages' summaries of a non-empty sample: its median, and its q-quantile (0 <= q <= 1).
double median(std::vector<double> v);
double quantile(std::vector<double> v, double q);

// Read bandwidth of host memory (bytes/s): a multi-threaded streaming sum over 256 MiB, best of 3.
double measure_host_read_bandwidth(int threads);

}  // namespace gqa::eval
