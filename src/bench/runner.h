// The benchmark runner: scenarios turned into token prompts (chat template, context fill, caps), then
// warm-up and measured generations on one loaded engine, arms (stock / program) interleaved per scenario.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/scenarios.h"
#include "engine/engine.h"
#include "gqa/abi.h"

namespace gqa {
class Tokenizer;
}

namespace gqa::bench {

struct PreparedScenario {
  Scenario scenario;
  std::vector<int32_t> prompt;         // token ids, chat template applied
  int64_t max_tokens = 0;              // effective (after caps)
  int64_t uncapped_prompt_tokens = 0;  // before --context-cap (after fill_context)
  std::vector<std::string> adjustments;  // what the caps and the fill changed, in words
};

// Tokenizes every scenario as one user turn of the Qwen3 chat template, tiles fill_context prompts, applies
// the caps, and checks prompt + generation against the model's context window (one error listing every
// scenario that does not fit, with the cap that would make it fit).
std::vector<PreparedScenario> prepare_scenarios(const std::vector<Scenario>& scenarios, const Tokenizer& tok,
                                                const ModelConfig& config, const Caps& caps);

// One side of a comparison: the engine's own attention (program == nullptr) or an attention program.
struct Arm {
  std::string name;   // "baseline" | "control" | "candidate" | "stock" | "program"
  std::string label;  // what it is, for reports
  gqa_attention_fn program = nullptr;   // host entry (null: the engine's own attention)
  const std::string* decode_lto = nullptr;  // device entry, LTO IR (null: the persistent step's own attention)
  std::string cache_dir;                // where the engine keeps linked device entries
};

struct RunRecord {
  std::string scenario, arm;
  std::string decode_layout;  // the decode step that ran (CUDA: persistent, fused or unfused; "" on the CPU)
  int index = 0;  // measured run number within the arm
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0, wall_seconds = 0;
  double prefill_tps = 0, decode_tps = 0, total_tps = 0;
  size_t peak_rss_bytes = 0, peak_device_bytes = 0;
  bool peak_rss_per_run = false;  // false: process lifetime peak (reset not allowed)
  uint64_t program_calls = 0;
  std::string decode_path;
  std::vector<int32_t> tokens;
};

struct ScenarioRuns {
  PreparedScenario prepared;
  std::vector<RunRecord> runs;  // measured only, in the order they ran
  bool complete = false;        // every planned run finished
};

struct Progress {
  int scenario = 0, scenarios = 0;      // 0-based index, count
  std::string name, arm;
  int run = 0, runs = 0;                // run within the scenario (warm-up included), count
  bool warmup = false;
  int64_t tokens = 0, max_tokens = 0;   // of the current generation
};

struct RunnerOptions {
  int warmup = 1;   // per arm and scenario, not measured
  int runs = 3;     // measured per arm and scenario (>= 1; the CLI insists on >= 3)
  const std::atomic<bool>* stop = nullptr;  // set (e.g. by SIGINT): finish the current run, then return
  std::function<void(const Progress&)> progress;  // called at each run start and after each token
};

struct BenchRuns {
  std::vector<ScenarioRuns> scenarios;  // those started (the last may be partial)
  bool interrupted = false;
  double seconds = 0;
};

// Greedy generation to the token limit, end tokens ignored. With two arms, each repetition runs both, the
// order flipped every time (AB BA AB ...), so that drift and thermal state hit both sides alike.
BenchRuns run_benchmark(Engine& engine, const std::vector<PreparedScenario>& scenarios, const std::vector<Arm>& arms,
                        const RunnerOptions& options);

}  // namespace gqa::bench
