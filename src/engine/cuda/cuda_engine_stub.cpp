// The CUDA engine's entry points in builds without CUDA: nothing is available and opening says so.
#include "common/error.h"
#include "engine/cuda/cuda_engine.h"

namespace gqa {

bool cuda_engine_built() { return false; }

int cuda_device_count() { return 0; }

std::unique_ptr<Engine> open_cuda_engine(const std::string&, const CudaEngineOptions&) {
  fail("cuda", "this build has no CUDA engine (no CUDA compiler was found when it was configured); use --device cpu");
}

CudaEngineOptions::Decode cuda_decode_layout(const Engine&) { fail("cuda", "this build has no CUDA engine"); }
std::string cuda_decode_plan(const Engine&) { fail("cuda", "this build has no CUDA engine"); }

}  // namespace gqa
