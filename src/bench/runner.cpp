// Prompt preparation and the measured generation loop of the benchmark (see runner.h).
#include "bench/runner.h"

#include <algorithm>
#include <chrono>

#include "bench/memory.h"
#include "common/error.h"
#include "engine/generate.h"
#include "tokenizer/tokenizer.h"

namespace gqa::bench {

namespace {

// The chat template around one user turn, as token ids before and after the content. Tokenizing the three
// parts separately equals tokenizing the whole: the joins are special tokens and newlines.
struct Wrapper {
  std::vector<int32_t> before, after;
};

Wrapper chat_wrapper(const Tokenizer& tok) {
  const std::string marker = "\x01@@GQA-CONTENT@@\x01";
  const std::string text = render_qwen3_chat({ChatMessage{"user", marker, "", false}}, ChatOptions{});
  const size_t at = text.find(marker);
  if (at == std::string::npos) fail("bench", "the chat template dropped the user message");
  return {tok.encode(text.substr(0, at)), tok.encode(text.substr(at + marker.size()))};
}

}  // namespace

std::vector<PreparedScenario> prepare_scenarios(const std::vector<Scenario>& scenarios, const Tokenizer& tok,
                                                const ModelConfig& config, const Caps& caps) {
  const Wrapper w = chat_wrapper(tok);
  const int64_t frame = static_cast<int64_t>(w.before.size() + w.after.size());
  const int64_t window = config.max_position_embeddings;
  std::vector<PreparedScenario> out;
  std::vector<std::string> too_long;
  for (const Scenario& s : scenarios) {
    PreparedScenario p;
    p.scenario = s;
    p.max_tokens = s.max_tokens;
    if (caps.max_tokens > 0 && p.max_tokens > caps.max_tokens) {
      p.adjustments.push_back(fmt::format("max_tokens {} capped to {}", p.max_tokens, caps.max_tokens));
      p.max_tokens = caps.max_tokens;
    }
    std::vector<int32_t> content = tok.encode(s.prompt);
    if (content.empty()) fail("bench", "scenario {}: the prompt has no tokens", s.name);
    if (s.fill_context > 0) {
      // Fill of the model's own window, so the scenario means "near the limit" on every model.
      const int64_t target = static_cast<int64_t>(s.fill_context * window) - p.max_tokens - frame;
      if (target > static_cast<int64_t>(content.size())) {
        const size_t unit = content.size();
        const size_t before = unit;
        while (static_cast<int64_t>(content.size()) < target) content.push_back(content[content.size() % unit]);
        p.adjustments.push_back(fmt::format("prompt tiled from {} to {} content tokens (fill_context {} of {})",
                                            before, content.size(), s.fill_context, window));
      }
    }
    p.uncapped_prompt_tokens = static_cast<int64_t>(content.size()) + frame;
    if (caps.prompt_tokens > 0 && p.uncapped_prompt_tokens > caps.prompt_tokens) {
      if (caps.prompt_tokens <= frame)
        fail("bench", "--context-cap {} leaves no room for the prompt: the chat template alone takes {} tokens",
             caps.prompt_tokens, frame);
      content.resize(static_cast<size_t>(caps.prompt_tokens - frame));
      p.adjustments.push_back(fmt::format("prompt cut from {} to {} tokens", p.uncapped_prompt_tokens, caps.prompt_tokens));
    }
    p.prompt = w.before;
    p.prompt.insert(p.prompt.end(), content.begin(), content.end());
    p.prompt.insert(p.prompt.end(), w.after.begin(), w.after.end());
    const int64_t need = static_cast<int64_t>(p.prompt.size()) + p.max_tokens;
    if (window > 0 && need > window)
      too_long.push_back(fmt::format("{} ({} prompt + {} generated = {})", s.name, p.prompt.size(), p.max_tokens, need));
    out.push_back(std::move(p));
  }
  if (!too_long.empty())
    fail("bench", "{} scenario(s) do not fit the model's context window of {} tokens: {}. Use a larger model, or "
         "shrink them with --context-cap and --max-tokens-cap (recorded in the results)",
         too_long.size(), window, fmt::join(too_long, "; "));
  return out;
}

BenchRuns run_benchmark(Engine& engine, const std::vector<PreparedScenario>& scenarios, const std::vector<Arm>& arms,
                        const RunnerOptions& opt) {
  if (arms.empty()) fail("bench", "no arms to run");
  if (opt.runs < 1 || opt.warmup < 0) fail("bench", "runs must be >= 1 and warm-up >= 0 (got {} and {})", opt.runs, opt.warmup);
  const auto t_start = std::chrono::steady_clock::now();
  BenchRuns result;
  const Arm* current = nullptr;  // the engine starts with its own attention
  auto stopped = [&] { return opt.stop && opt.stop->load(); };

  const int per_scenario = (opt.warmup + opt.runs) * static_cast<int>(arms.size());
  for (size_t si = 0; si < scenarios.size() && !stopped(); ++si) {
    const PreparedScenario& ps = scenarios[si];
    ScenarioRuns sr;
    sr.prepared = ps;
    GenerateOptions g;
    g.max_tokens = ps.max_tokens;
    g.sampling.temperature = 0;  // greedy: both arms must produce comparable tokens
    g.ignore_stop_tokens = true;

    Progress pr;
    pr.scenario = static_cast<int>(si);
    pr.scenarios = static_cast<int>(scenarios.size());
    pr.name = ps.scenario.name;
    pr.runs = per_scenario;
    pr.max_tokens = ps.max_tokens;

    // One generation with `arm`; returns its record (measured or not).
    std::vector<int> measured(arms.size(), 0);
    auto run_once = [&](const Arm& arm, bool warm) {
      const bool same = current ? current->program == arm.program && current->decode_lto == arm.decode_lto
                                : !arm.program && !arm.decode_lto;
      if (!same) {
        engine.set_attention_program(arm.program);
        if (arm.decode_lto || (current && current->decode_lto))
          engine.set_decode_attention_program(arm.decode_lto ? *arm.decode_lto : std::string(), arm.label,
                                              arm.cache_dir);
      }
      current = &arm;
      pr.arm = arm.name;
      pr.warmup = warm;
      pr.tokens = 0;
      if (opt.progress) opt.progress(pr);
      const uint64_t calls0 = engine.attention_program_calls();
      RunRecord r;
      r.peak_rss_per_run = reset_peak_rss();
      const auto t0 = std::chrono::steady_clock::now();
      GenerateResult gr = generate(engine, ps.prompt, g, [&](int32_t) {
        ++pr.tokens;
        if (opt.progress) opt.progress(pr);
      });
      r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r.peak_rss_bytes = read_peak_rss();
      const GenerateStats& s = gr.stats;
      r.scenario = ps.scenario.name;
      r.arm = arm.name;
      r.prompt_tokens = s.prompt_tokens;
      r.generated_tokens = s.generated_tokens;
      r.prefill_seconds = s.prefill_seconds;
      r.decode_seconds = s.decode_seconds;
      r.prefill_tps = s.prefill_tokens_per_second();
      r.decode_tps = s.decode_tokens_per_second();
      const double gen_time = s.prefill_seconds + s.decode_seconds;
      r.total_tps = gen_time > 0 ? s.generated_tokens / gen_time : 0;
      r.peak_device_bytes = s.peak_device_memory_bytes;
      r.program_calls = arm.program || arm.decode_lto ? engine.attention_program_calls() - calls0 : 0;
      r.decode_layout = engine.decode_layout();
      r.decode_path = s.decode_path;
      r.tokens = std::move(gr.tokens);
      ++pr.run;
      return r;
    };

    for (int w = 0; w < opt.warmup && !stopped(); ++w)
      for (const Arm& arm : arms) {
        if (stopped()) break;
        run_once(arm, true);
      }
    for (int rep = 0; rep < opt.runs && !stopped(); ++rep)
      for (size_t k = 0; k < arms.size() && !stopped(); ++k) {
        const size_t a = rep % 2 == 0 ? k : arms.size() - 1 - k;
        RunRecord r = run_once(arms[a], false);
        r.index = measured[a]++;
        sr.runs.push_back(std::move(r));
      }
    sr.complete = static_cast<int>(sr.runs.size()) == opt.runs * static_cast<int>(arms.size());
    result.scenarios.push_back(std::move(sr));
  }
  result.interrupted = stopped();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return result;
}

}  // namespace gqa::bench
