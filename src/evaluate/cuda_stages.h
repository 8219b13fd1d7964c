// The CUDA target's candidate process for host entries: it serves the worker relay's CUDA requests (channel.h:
// CudaCall, CudaBenchSetup, CudaRepetition) on device copies of the arena's buffers, and runs the end-to-end
// stage through the CUDA engine. The relay judges what it copies back (correctness.cpp, microbench_cuda.cpp).
// A build without CUDA links cuda_stages_stub.cpp, which says so.
#pragma once
#include <memory>

#include "evaluate/channel.h"
#include "evaluate/stages.h"
#include "evaluate/worker.h"

namespace gqa::eval {

class CudaChild {
 public:
  virtual ~CudaChild() = default;
  // Opens the GPU, a stream and (request.end_to_end, with the sandbox) the end-to-end engine, then, with
  // request.settings.cuda_sandbox, enters enter_cuda_sandbox(): the program's first call runs under it.
  static std::unique_ptr<CudaChild> open(gqa_attention_fn program, const WorkerRequest& request);
  // Answers one CUDA request in `c` (the relay checks the answer; a CUDA error after the program ran sets
  // c.fatal, and every later request gets the same answer).
  virtual void serve(Control& c) = 0;
  // The end-to-end stage (its own gate, in this process: docs/evaluator.md).
  virtual StageResult end_to_end() = 0;
  virtual uint64_t calls() const = 0;  // the program's calls so far
};

}  // namespace gqa::eval
