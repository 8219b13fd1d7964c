// Attention programs inside the persistent decode step (ABI v2 device entry, include/gqa/decode_abi.cuh): the
// step's LTO IR embedded in the engine (decode_persistent_linkable.cu) linked with a program's LTO IR by
// nvJitLink into the kernel of one instantiation, cached by content; then loaded as a CUDA library, its kernel
// launched by the persistent step in place of the built-in one. Linking needs no GPU (tested in CI); loading does.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <cuda_runtime.h>

#include "engine/cuda/ops.h"
#include "gqa/decode_abi.cuh"

namespace gqa::cuda {

// The embedded LTO IR of the linkable step (all instantiations).
std::string_view persistent_step_lto();

struct DecodeLink {
  std::string cubin;     // the linked kernel's machine code
  std::string key;       // SHA-256 of everything that determines it
  double seconds = 0;    // link time of this call (0 when cached)
  bool cached = false;
  std::string log;       // nvJitLink's info log
};

// Links `program_lto` (a program's device code, compiled to LTO IR: compile_program with Output::DeviceLto)
// with the step's instantiation `kernel` (persistent_linkable_kernel_name) for `arch` ("sm_90a"). With a
// cache_dir, the cubin is kept under cache_dir/decode-link/KEY.cubin and reused. Throws gqa::Error with the
// linker's log when the link fails (a program without gqa_decode_attend_v2 names it as undefined).
DecodeLink link_decode_program(std::string_view program_lto, const std::string& kernel, const std::string& arch,
                               const std::string& cache_dir);

// The same with another LTO IR than the step's (the evaluator's harness, decode_entry_harness.cu).
DecodeLink link_with_program(std::string_view base_lto, const char* base_name, std::string_view program_lto,
                             const std::string& kernel, const std::string& arch, const std::string& cache_dir);

// What the program's optional gqa_decode_plan sets (0 fields and has = false: the engine's options).
struct DecodePlan {
  bool has = false;
  gqa_decode_plan_v2 plan{};
};
// "" when `plan` is within the contract's ranges, else what is wrong, naming the field.
std::string check_decode_plan(const gqa_decode_plan_v2& plan, int head_dim);

// A linked program loaded on the current device: its kernel (for persistent_decode, or the harness's) and its plan.
class LoadedDecodeProgram {
 public:
  // Loads link.cubin; `kernel` as link_decode_program got it. Throws naming the program when the plan is out of
  // range or the library does not load.
  LoadedDecodeProgram(const DecodeLink& link, const std::string& kernel, const std::string& name);
  ~LoadedDecodeProgram();
  LoadedDecodeProgram(const LoadedDecodeProgram&) = delete;
  LoadedDecodeProgram& operator=(const LoadedDecodeProgram&) = delete;

  PersistentKernel& kernel() { return kernel_; }
  const DecodePlan& plan() const { return plan_; }

 private:
  cudaLibrary_t lib_ = nullptr;
  PersistentKernel kernel_;
  DecodePlan plan_;
};

}  // namespace gqa::cuda
