// End-to-end stage (CUDA target): greedy generation on the random Qwen3-0.6B with the CUDA engine's own
// attention (stock), the stock kernels through the program hook (control) and the candidate through the
// hook, stock – control – candidate – stock: token agreement, decode tok/s ratio, the candidate's call
// count (proof that the engine ran it), and the gate: the stock run's tokens fed to the engine with the
// control and with the candidate (teacher forcing), each step's logits compared.
#include <tuple>

#include "common/error.h"
#include "engine/cuda/cuda_engine.h"
#include "engine/cuda/stock_attention_abi.h"
#include "engine/generate.h"
#include "evaluate/stages.h"

namespace gqa::eval {

StageResult run_end_to_end_cuda(gqa_attention_fn candidate, const WorkerSettings& set, std::unique_ptr<Engine> engine) {
  StageResult r;
  if (!engine) engine = open_cuda_engine(set.model_dir);
  const std::vector<int32_t> prompt = e2e_prompt(*engine, set);
  const GenerateOptions opts = e2e_options(set);
  bool hooked = false;  // set_attention_program only when needed: an engine without the hook throws
  auto run = [&](gqa_attention_fn fn) {
    if (fn || hooked) engine->set_attention_program(fn);
    hooked = fn != nullptr;
    return generate(*engine, prompt, opts);
  };
  // The stock runs use the engine's own kernels (no program set): the baseline is what the engine runs.
  run(nullptr);  // warm-up: module load, graph capture
  GenerateResult s1 = run(nullptr);
  // Control: the engine's own kernels routed through the hook by the ABI wrapper. Its agreement with the
  // stock run is the noise floor of the ABI itself (bf16 q and output instead of the engine's float32): a
  // candidate agreeing about as well as the control is as right as the stock kernel.
  run(&cuda::stock_attention_abi);
  GenerateResult ctl = run(&cuda::stock_attention_abi);
  GenerateResult c;
  uint64_t calls = 0;
  try {
    run(candidate);  // warm-up: the decode graph is captured with the program in it
    const uint64_t before = engine->attention_program_calls();
    c = run(candidate);
    calls = engine->attention_program_calls() - before;
  } catch (const Error& e) {  // the program returned an error inside the engine
    r.failure = fmt::format("in the engine: {}", e.what());
    return r;
  }
  GenerateResult s2 = run(nullptr);
  double tf_error = 0;
  size_t tf_step = 0;
  try {
    const auto ctl_logits = teacher_forced_logits(*engine, &cuda::stock_attention_abi, prompt, s1.tokens);
    const auto cand_logits = teacher_forced_logits(*engine, candidate, prompt, s1.tokens);
    std::tie(tf_error, tf_step) = worst_logit_error(ctl_logits, cand_logits);
    engine->set_attention_program(nullptr);
  } catch (const Error& e) {
    r.failure = fmt::format("in the engine (teacher forcing): {}", e.what());
    return r;
  }
  const TokenAgreement ag = token_agreement(s1.tokens, c.tokens), ac = token_agreement(s1.tokens, ctl.tokens);
  const double stock_tps = 0.5 * (s1.stats.decode_tokens_per_second() + s2.stats.decode_tokens_per_second());
  const double cand_tps = c.stats.decode_tokens_per_second();
  // One call per layer per prefill chunk and per decode step.
  const int64_t L = engine->config().num_hidden_layers;
  const uint64_t min_expected = static_cast<uint64_t>(L) * static_cast<uint64_t>(set.e2e_new_tokens);
  r.metrics = {{"e2e_tokens", ag.n},
               {"e2e_token_agreement", ag.share()},
               {"e2e_prefix_agreement", ag.prefix},
               {"e2e_program_calls", calls},
               {"e2e_expected_calls_at_least", min_expected},
               {"e2e_decode_tps", cand_tps},
               {"e2e_stock_decode_tps", stock_tps},
               {"e2e_decode_tps_ratio", stock_tps > 0 ? cand_tps / stock_tps : 0.0},
               {"e2e_control_token_agreement", ac.share()},
               {"e2e_control_prefix_agreement", ac.prefix},
               {"e2e_control_decode_tps_ratio", stock_tps > 0 ? ctl.stats.decode_tokens_per_second() / stock_tps : 0.0},
               {"e2e_logit_error", tf_error},
               {"e2e_logit_error_step", tf_step},
               {"e2e_logit_tolerance", kE2eLogitToleranceCuda}};
  r.artifacts["e2e_tokens"] = fmt::format("stock:     {}\ncontrol:   {}\nprogram:   {}\n", fmt::join(s1.tokens, " "),
                                          fmt::join(ctl.tokens, " "), fmt::join(c.tokens, " "));
  if (calls < min_expected) {
    r.failure = fmt::format("the engine called the program {} times, expected at least {}", calls, min_expected);
    return r;
  }
  if (!(tf_error <= kE2eLogitToleranceCuda)) {
    r.failure = fmt::format("teacher-forced logits differ from the control's (the stock kernels through the hook): "
                            "relative error {:.3g} at step {} (bound {:.3g}): the program is wrong inside the engine",
                            tf_error, tf_step, kE2eLogitToleranceCuda);
    return r;
  }
  r.passed = true;
  return r;
}

}  // namespace gqa::eval
