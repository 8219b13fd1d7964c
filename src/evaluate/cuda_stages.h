// The CUDA target's stages inside the worker: correctness and microbenchmark on device copies of the
// problems (every call captured into a CUDA graph), end to end through the CUDA engine. A build without
// CUDA links cuda_stages_stub.cpp, which says so.
#pragma once
#include <functional>

#include "evaluate/stages.h"
#include "evaluate/worker.h"

namespace gqa::eval {

using StageReport = std::function<void(const char* stage, const StageResult& result)>;

// Runs correctness → benchmark → end to end (as `request` asks), calling `report` after each; stops at
// the first failed stage. Returns the program's call count.
uint64_t run_cuda_stages(gqa_attention_fn program, const WorkerRequest& request, const StageReport& report);

}  // namespace gqa::eval
