// The sandboxed side of an evaluation: `gqa-evolve eval-worker` loads one compiled program into a fresh
// process and runs the stages, printing one result line per stage. Only the evaluator starts it.
#pragma once
#include <string>

#include "evaluate/stages.h"

namespace gqa::eval {

struct WorkerRequest {
  std::string so_path;
  bool bench = true, end_to_end = true;
  WorkerSettings settings;
};

// Result lines are "GQA-RESULT <nonce> <json>" on the stdout this process started with; the program's own
// stdout is redirected to stderr first, and the nonce (from $GQA_EVAL_NONCE, removed from the environment
// before the program loads) makes a line the program printed unforgeable.
int run_worker(const WorkerRequest& request);

constexpr const char* kResultPrefix = "GQA-RESULT";
constexpr const char* kNonceEnv = "GQA_EVAL_NONCE";

}  // namespace gqa::eval
