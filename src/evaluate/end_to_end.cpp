// End-to-end stage (CPU target): greedy generation on the random "tiny" model (Qwen3-0.6B's attention
// geometry) with the stock kernel and with the candidate, both through the engine's program hook: token
// agreement, the decode tok/s ratio, the candidate's call count (proof that the engine ran it), and the
// gate: the stock run's tokens fed to the engine with each kernel (teacher forcing), the logits of every
// step compared. A reordered float sum moves them by ~1e-3; a wrong kernel by O(1).
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "engine/cpu/attention_bf16.h"
#include "engine/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "evaluate/stages.h"

namespace gqa::eval {

std::vector<std::vector<float>> teacher_forced_logits(Engine& engine, gqa_attention_fn fn, const std::vector<int32_t>& prompt,
                                                      const std::vector<int32_t>& tokens) {
  engine.set_attention_program(fn);
  engine.reset(static_cast<int64_t>(prompt.size() + tokens.size() + 1));
  const size_t vocab = static_cast<size_t>(engine.config().vocab_size);
  std::vector<std::vector<float>> out;
  const float* l = engine.forward(prompt);
  out.emplace_back(l, l + vocab);
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    l = engine.forward(std::span<const int32_t>(&tokens[i], 1));
    out.emplace_back(l, l + vocab);
  }
  return out;
}

std::pair<double, size_t> worst_logit_error(const std::vector<std::vector<float>>& ref,
                                            const std::vector<std::vector<float>>& x) {
  double worst = 0;
  size_t worst_step = 0;
  for (size_t step = 0; step < ref.size(); ++step) {
    double e2 = 0, r2 = 0;
    for (size_t i = 0; i < ref[step].size(); ++i) {
      const double d = static_cast<double>(x[step][i]) - ref[step][i];
      e2 += d * d;
      r2 += static_cast<double>(ref[step][i]) * ref[step][i];
    }
    double rel = std::sqrt(e2) / (std::sqrt(r2) + 1e-30);
    if (!std::isfinite(rel)) rel = INFINITY;
    if (step == 0 || rel > worst) {
      worst = rel;
      worst_step = step;
    }
  }
  return {worst, worst_step};
}

namespace {

// The engine takes a plain function pointer: these route its calls through the worker's Kernels, so
// that the process state is reset and checked around every call here too.
Kernel* g_candidate = nullptr;
Kernel* g_stock = nullptr;
int candidate_thunk(const gqa_attention_args* a) { return (*g_candidate)(*a); }
int stock_thunk(const gqa_attention_args* a) { return (*g_stock)(*a); }

}  // namespace

std::unique_ptr<Engine> open_end_to_end_engine(const WorkerSettings& set) {
  if (set.target != Target::Cpu) fail("evaluate", "end to end on the {} target is not in this worker", target_name(set.target));
  return CpuEngine::open(set.model_dir);
}

std::vector<int32_t> e2e_prompt(const Engine& engine, const WorkerSettings& set) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < set.e2e_prompt_tokens; ++i)
    prompt.push_back(static_cast<int32_t>((i * 7919 + 13) % engine.config().vocab_size));
  return prompt;
}

GenerateOptions e2e_options(const WorkerSettings& set) {
  GenerateOptions opts;
  opts.max_tokens = set.e2e_new_tokens;
  opts.sampling.temperature = 0;
  opts.ignore_stop_tokens = true;
  return opts;
}

TokenAgreement token_agreement(const std::vector<int32_t>& ref, const std::vector<int32_t>& x) {
  TokenAgreement a;
  a.n = std::min(ref.size(), x.size());
  while (a.prefix < a.n && ref[a.prefix] == x[a.prefix]) ++a.prefix;
  for (size_t i = 0; i < a.n; ++i) a.same += ref[i] == x[i];
  return a;
}

E2eReference end_to_end_reference(const WorkerSettings& set) {
  std::unique_ptr<Engine> engine = open_end_to_end_engine(set);
  const std::vector<int32_t> prompt = e2e_prompt(*engine, set);
  engine->set_attention_program(&cpu::stock_attention);
  E2eReference ref;
  ref.tokens = generate(*engine, prompt, e2e_options(set)).tokens;
  ref.logits = teacher_forced_logits(*engine, &cpu::stock_attention, prompt, ref.tokens);
  return ref;
}

StageResult run_end_to_end(Engine& e2e_engine, Kernel& cand_kernel, Kernel& stock_kernel, const WorkerSettings& set,
                           const E2eExchange* forced) {
  StageResult r;
  Engine* engine = &e2e_engine;
  g_candidate = &cand_kernel;
  g_stock = &stock_kernel;
  const gqa_attention_fn candidate = &candidate_thunk, stock = &stock_thunk;
  const std::vector<int32_t> prompt = e2e_prompt(*engine, set);
  const GenerateOptions opts = e2e_options(set);
  auto run = [&](gqa_attention_fn fn, uint64_t* calls) {
    engine->set_attention_program(fn);
    GenerateResult g = generate(*engine, prompt, opts);
    if (calls) *calls = engine->attention_program_calls();
    return g;
  };
  run(stock, nullptr);  // warm-up: page faults, thread pool
  uint64_t calls = 0, stock_calls = 0;
  GenerateResult s1 = run(stock, &stock_calls);
  GenerateResult c = run(candidate, &calls);
  GenerateResult s2 = run(stock, nullptr);  // stock on both sides of the candidate: drift shows up
  const auto t_tf = std::chrono::steady_clock::now();
  const std::vector<int32_t>& fed = forced ? forced->tokens : s1.tokens;
  const auto ref_logits = teacher_forced_logits(*engine, stock, prompt, fed);
  const auto cand_logits = teacher_forced_logits(*engine, candidate, prompt, fed);
  if (forced) {  // the relay's gate reads them from here
    size_t at = 0;
    for (const auto& step : cand_logits)
      if (at + step.size() <= forced->capacity) {
        std::copy(step.begin(), step.end(), forced->logits_out + at);
        at += step.size();
      }
  }
  const auto [worst, worst_step] = worst_logit_error(ref_logits, cand_logits);
  const double tf_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_tf).count();
  const TokenAgreement ag = token_agreement(s1.tokens, c.tokens);
  const double stock_tps = 0.5 * (s1.stats.decode_tokens_per_second() + s2.stats.decode_tokens_per_second());
  const double cand_tps = c.stats.decode_tokens_per_second();
  const uint64_t expected = stock_calls;  // same prompt and length: same number of attention calls
  r.metrics = {{"e2e_tokens", ag.n},
               {"e2e_token_agreement", ag.share()},
               {"e2e_prefix_agreement", ag.prefix},
               {"e2e_program_calls", calls},
               {"e2e_expected_calls", expected},
               {"e2e_decode_tps", cand_tps},
               {"e2e_stock_decode_tps", stock_tps},
               {"e2e_decode_tps_ratio", stock_tps > 0 ? cand_tps / stock_tps : 0.0},
               {"e2e_logit_error", worst},
               {"e2e_logit_error_step", worst_step},
               {"e2e_logit_tolerance", kE2eLogitTolerance},
               {"e2e_gate_seconds", tf_seconds}};
  r.artifacts["e2e_tokens"] = fmt::format("stock:     {}\nprogram:   {}\n", fmt::join(s1.tokens, " "), fmt::join(c.tokens, " "));
  if (calls != expected || calls == 0) {
    r.failure = fmt::format("the engine called the program {} times, expected {}", calls, expected);
    return r;
  }
  if (!cand_kernel.state_change.empty()) {
    r.failure = "the program " + cand_kernel.describe(Kernel::kStateChanged);
    return r;
  }
  if (!(worst <= kE2eLogitTolerance)) {
    r.failure = fmt::format("teacher-forced logits differ from the stock kernel's: relative error {:.3g} at step {} "
                            "(bound {:.3g}): the program is wrong inside the engine",
                            worst, worst_step, kE2eLogitTolerance);
    return r;
  }
  r.passed = true;
  return r;
}

}  // namespace gqa::eval
