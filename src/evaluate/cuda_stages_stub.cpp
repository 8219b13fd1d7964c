// Without CUDA in the build, the CUDA worker is a clear error (the evaluator reports it as the worker's
// stderr with the stage it did not finish).
#include "common/error.h"
#include "evaluate/cuda_device_stages.h"
#include "evaluate/cuda_stages.h"

namespace gqa::eval {

std::unique_ptr<CudaChild> CudaChild::open(gqa_attention_fn, const WorkerRequest&) {
  fail("evaluate", "this gqa-evolve was built without CUDA: it cannot evaluate cuda programs");
}
StageResult run_device_correctness(const std::string&, const WorkerSettings&) {
  fail("evaluate", "this gqa-evolve was built without CUDA: it cannot evaluate device entries");
}
StageResult run_device_end_to_end(const std::string&, const WorkerSettings&, const DeviceE2eSettings&) {
  fail("evaluate", "this gqa-evolve was built without CUDA: it cannot evaluate device entries");
}

}  // namespace gqa::eval
