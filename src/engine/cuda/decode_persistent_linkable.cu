// The persistent decode step with its attention left open: compiled to LTO IR only (never into the engine's
// object code), embedded in the engine (decode_program.cpp), and linked at run time with an attention
// program's device entry (gqa_decode_attend_v2, include/gqa/decode_abi.cuh) into a kernel that is the built-in
// one except for the attention. One extern "C" kernel per instantiation the engine can pick
// (persistent_linkable_kernel_name); the link keeps only the model's (nvJitLink -kernels-used).
#include "engine/cuda/decode_persistent_kernel.cuh"

#define GQA_LINKABLE_STEP(D, G, N)                                                                         \
  extern "C" __global__ void __launch_bounds__(gqa::cuda::kThreads, 1) gqa_persistent_step_d##D##_g##G##_n##N( \
      const __grid_constant__ gqa::cuda::PersistentDecodeArgs a, const __grid_constant__ gqa::cuda::Plan p) { \
    gqa::cuda::persistent_decode_body<D, G, N>(a, p);                                                       \
  }

// Qwen3's dense models have head_dim 128 and 2, 4, 5 (14B) or 8 query heads per KV head; 64 and 1 are the test
// models'. N: the narrow (3) and wide (6) input vectors (kNarrowVec, kWideVec).
GQA_LINKABLE_STEP(128, 1, 3)
GQA_LINKABLE_STEP(128, 2, 3)
GQA_LINKABLE_STEP(128, 4, 3)
GQA_LINKABLE_STEP(128, 5, 3)
GQA_LINKABLE_STEP(128, 8, 3)
GQA_LINKABLE_STEP(128, 1, 6)
GQA_LINKABLE_STEP(128, 2, 6)
GQA_LINKABLE_STEP(128, 4, 6)
GQA_LINKABLE_STEP(128, 5, 6)
GQA_LINKABLE_STEP(128, 8, 6)
GQA_LINKABLE_STEP(64, 1, 3)
GQA_LINKABLE_STEP(64, 2, 3)
GQA_LINKABLE_STEP(64, 4, 3)
GQA_LINKABLE_STEP(64, 8, 3)
static_assert(gqa::cuda::kNarrowVec == 3 && gqa::cuda::kWideVec == 6, "kernel names above spell the widths");
