// End-to-end stage (CPU target): greedy generation on the random "tiny" model (Qwen3-0.6B's attention
// geometry) with the stock kernel and with the candidate, both through the engine's program hook: token
// agreement over the generated tokens, the decode tok/s ratio, and the candidate's call count (proof that
// the engine ran it).
#include "common/error.h"
#include "engine/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "evaluate/stages.h"

namespace gqa::eval {

StageResult run_end_to_end(gqa_attention_fn candidate, gqa_attention_fn stock, const WorkerSettings& set) {
  StageResult r;
  if (set.target != Target::Cpu) fail("evaluate", "end to end on the {} target is not in this worker", target_name(set.target));
  auto engine = CpuEngine::open(set.model_dir);
  std::vector<int32_t> prompt;
  for (int i = 0; i < set.e2e_prompt_tokens; ++i)
    prompt.push_back(static_cast<int32_t>((i * 7919 + 13) % engine->config().vocab_size));
  GenerateOptions opts;
  opts.max_tokens = set.e2e_new_tokens;
  opts.sampling.temperature = 0;
  opts.ignore_stop_tokens = true;
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
  size_t prefix = 0, same = 0;
  const size_t n = std::min(s1.tokens.size(), c.tokens.size());
  while (prefix < n && s1.tokens[prefix] == c.tokens[prefix]) ++prefix;
  for (size_t i = 0; i < n; ++i) same += s1.tokens[i] == c.tokens[i];
  const double stock_tps = 0.5 * (s1.stats.decode_tokens_per_second() + s2.stats.decode_tokens_per_second());
  const double cand_tps = c.stats.decode_tokens_per_second();
  const uint64_t expected = stock_calls;  // same prompt and length: same number of attention calls
  r.metrics = {{"e2e_tokens", n},
               {"e2e_token_agreement", n ? static_cast<double>(same) / n : 0.0},
               {"e2e_prefix_agreement", prefix},
               {"e2e_program_calls", calls},
               {"e2e_expected_calls", expected},
               {"e2e_decode_tps", cand_tps},
               {"e2e_stock_decode_tps", stock_tps},
               {"e2e_decode_tps_ratio", stock_tps > 0 ? cand_tps / stock_tps : 0.0}};
  r.artifacts["e2e_tokens"] = fmt::format("stock:     {}\nprogram:   {}\n", fmt::join(s1.tokens, " "), fmt::join(c.tokens, " "));
  if (calls != expected || calls == 0) {
    r.failure = fmt::format("the engine called the program {} times, expected {}", calls, expected);
    return r;
  }
  r.passed = true;
  return r;
}

}  // namespace gqa::eval
