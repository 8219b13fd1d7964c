// Without CUDA in the build, the CUDA worker is a clear error (the evaluator reports it as the worker's
// stderr with the stage it did not finish).
#include "common/error.h"
#include "evaluate/cuda_stages.h"

namespace gqa::eval {

uint64_t run_cuda_stages(gqa_attention_fn, const WorkerRequest&, const StageReport&) {
  fail("evaluate", "this gqa-evolve was built without CUDA: it cannot evaluate cuda programs");
}

}  // namespace gqa::eval
