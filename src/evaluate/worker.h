// The sandboxed side of an evaluation: `gqa-evolve eval-worker` loads one compiled program into a fresh
// process and runs the stages, printing one result line per stage. Only the evaluator starts it.
#pragma once
#include <string>

#include "evaluate/stages.h"

namespace gqa::eval {

struct WorkerRequest {
  std::string so_path;   // the host entry's shared object (empty for a program with only a device entry)
  std::string lto_path;  // CUDA: the device entry's LTO IR; then the device stages run (cuda_device_stages.h)
  bool bench = true, end_to_end = true;
  WorkerSettings settings;
};

// Result lines are "GQA-RESULT <nonce> <json>" on stdout, one per stage in order, then one
// {"stage": "worker_end", "exit_code" | "signal"} saying how the candidate's process ended. They are
// written by this process, which forks the child that loads the program before it reads the nonce from
// stdin: the nonce is never in the candidate's address space, and the child's stdout is its stderr.
int run_worker(const WorkerRequest& request);

constexpr const char* kResultPrefix = "GQA-RESULT";

}  // namespace gqa::eval
