// The stages of a program's device entry (gqa_decode_attend_v2, include/gqa/decode_abi.cuh), run in the worker's
// child on the GPU: correctness in the harness against a float64 reference (decode_entry_check.h), then end to end
// in the CUDA engine's persistent step on the random Qwen3-0.6B, one engine switched between its built-in
// attention and the program linked in: a teacher-forced logit gate, then decode speed at several contexts, the two
// arms interleaved. The end-to-end ratios are the score.
#pragma once
#include <string>
#include <vector>

#include "evaluate/stages.h"

namespace gqa::eval {

// The bound on the relative L2 error of each step's logits under teacher forcing, program against the built-in
// step: both run the same step, so only the attention's summation order differs (bit-identical for the stock
// program; reordered sums measured at 1e-6 on the tiny models). A wrong program is at O(1).
constexpr double kDeviceE2eLogitTolerance = 0.05;

struct DeviceE2eSettings {
  std::vector<int> contexts = {1024, 8192, 32768};  // prompt lengths at which decode speed is timed
  int new_tokens = 128;                              // decoded per timed run
  int rounds = 3;                                    // built-in and program runs per context, alternated
};

// Correctness of the device entry at the model's head_dim and group, with the program's plan (or the engine's
// defaults), on inputs from s.seed.
StageResult run_device_correctness(const std::string& lto, const WorkerSettings& s);
// End to end (needs s.model_dir): the gate, then the timed runs. Metrics: e2e_logit_error, per context the
// median ratio e2e_decode_ratio_ctxN with its 95% interval, e2e_decode_ratio_geomean (the score), link times.
StageResult run_device_end_to_end(const std::string& lto, const WorkerSettings& s, const DeviceE2eSettings& e);

}  // namespace gqa::eval
