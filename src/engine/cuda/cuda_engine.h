// The CUDA engine's public face: whether this build and machine have one, and how to open it. No CUDA
// types here, so the CLI and tests include it in every build (without CUDA, opening throws).
#pragma once
#include <memory>
#include <string>

#include "engine/engine.h"

namespace gqa {

struct CudaEngineOptions {
  int device = 0;
  // Programmatic dependent launch: each decode kernel starts loading its weights while the previous one
  // finishes (sm_90+; ignored on older GPUs).
  bool programmatic_launch = true;
  // Replay the decode step as one CUDA graph (false: launch its 170 kernels one by one; for measuring).
  bool cuda_graph = true;
};

// True when this binary was built with the CUDA engine.
bool cuda_engine_built();
// Number of CUDA devices usable by this binary (0 without CUDA, without a driver, or without a GPU).
int cuda_device_count();
// Throws "[cuda] this build has no CUDA engine" in builds without CUDA, and "[cuda] no CUDA device ..."
// when none is present.
std::unique_ptr<Engine> open_cuda_engine(const std::string& model_dir, const CudaEngineOptions& options = {});

}  // namespace gqa
