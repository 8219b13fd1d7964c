// The device entry's stages (cuda_device_stages.h).
#include "evaluate/cuda_device_stages.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <tuple>
#include <vector>

#include "bench/stats.h"
#include "common/error.h"
#include "engine/cuda/cuda_engine.h"
#include "engine/generate.h"
#include "evaluate/decode_entry_check.h"
#include "model/config.h"

namespace gqa::eval {

namespace {

// The engine's defaults (CudaEngineOptions), which apply where the program sets no plan.
struct StepPlan {
  int split_keys, kv_tile_kib;
};
StepPlan engine_plan() {
  const CudaEngineOptions o;
  return {o.persistent_split_keys, o.persistent_kv_tile_kib};
}

std::vector<int32_t> prompt_of(int n, int64_t vocab, int salt) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    ids[i] = static_cast<int32_t>((static_cast<int64_t>(i) * 7919 + 13 + static_cast<int64_t>(salt) * 104729) % vocab);
  return ids;
}

}  // namespace

StageResult run_device_correctness(const std::string& lto, const WorkerSettings& s) {
  StageResult r;
  const ModelConfig cfg = ModelConfig::load(s.model_dir + "/config.json");
  const int D = static_cast<int>(cfg.head_dim), G = static_cast<int>(cfg.num_attention_heads / cfg.num_key_value_heads);
  const StepPlan defaults = engine_plan();
  // The model's group first, then every other group of a dense Qwen3 size (2: 0.6B and 1.7B; 4: 4B and 8B; 5:
  // 14B; 8: 32B; all head_dim 128; the harness's kernels at head_dim 64, the test models': 2 and 4):
  // `generate --attention` links the program into the step of whatever model it runs, so an entry right only at
  // the scored model's group does not pass.
  std::vector<int> groups{G};
  for (const int g : D == 128 ? std::vector<int>{2, 4, 5, 8} : std::vector<int>{2, 4})
    if (g != G) groups.push_back(g);
  int cases = 0, failed = 0;
  double worst = 0, link_seconds = 0;
  std::string text;
  for (const int g : groups) {
    const DecodeEntryReport rep =
        check_decode_entry(lto, D, g, defaults.split_keys, defaults.kv_tile_kib, s.seed, "");
    cases += rep.cases, failed += rep.failed, worst = std::max(worst, rep.worst_error);
    link_seconds += rep.link_seconds;
    text += fmt::format("== head_dim {}, {} query heads per KV head{}\n{}", D, g, g == G ? " (the model's)" : "",
                        rep.text);
    r.metrics["device_split_keys"] = rep.split_keys;
    r.metrics["device_kv_tile_kib"] = rep.kv_tile_kib;
    if (!rep.ok) {  // the first group that fails ends the stage (a fault may have left the GPU context unusable)
      r.failure = rep.cases == 0 ? fmt::format("group {}: {}", g, rep.text.substr(5, rep.text.find('\n') - 5))
                                 : fmt::format("{} of {} device-entry cases failed at group {} (see correctness_report)",
                                               rep.failed, rep.cases, g);
      break;
    }
  }
  r.metrics["device_groups_checked"] = static_cast<int>(groups.size());
  r.metrics["device_cases"] = cases;
  r.metrics["device_cases_failed"] = failed;
  r.metrics["device_worst_row_error"] = worst;
  r.metrics["device_row_error_bound"] = kDecodeEntryTolerance;
  r.metrics["device_link_seconds"] = link_seconds;
  r.artifacts["correctness_report"] = text;
  r.passed = r.failure.empty();
  return r;
}

StageResult run_device_end_to_end(const std::string& lto, const WorkerSettings& s, const DeviceE2eSettings& e) {
  StageResult r;
  // One engine for both arms, switched between its built-in attention and the program: the same buffers, so no
  // difference of memory placement between two engines (measured: up to 1% at a context) enters the ratio. The
  // link is cached in a folder of this process, so a switch costs a library load.
  auto engine = open_cuda_engine(s.model_dir);
  const std::string link_cache = fmt::format("/tmp/gqa-e2e-link-{}", ::getpid());
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{link_cache};
  auto use = [&](bool program) {
    return engine->set_decode_attention_program(program ? lto : std::string(), "program", link_cache);
  };
  const auto t_link = std::chrono::steady_clock::now();
  const auto link = use(true);
  r.metrics["e2e_link_seconds"] = link.seconds;
  r.metrics["e2e_link_load_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_link).count();
  const int64_t V = engine->config().vocab_size;

  // 1. The gate: the built-in step's greedy tokens fed back with each attention (teacher forcing), each step's
  // logits compared.
  const std::vector<int32_t> prompt = e2e_prompt(*engine, s);
  const GenerateOptions g = e2e_options(s);
  use(false);
  const GenerateResult ref_run = generate(*engine, prompt, g);
  // (no host entry: teacher_forced_logits leaves prefill to the engine's own attention)
  std::vector<std::vector<float>> want, got;
  uint64_t calls = 0;
  try {
    want = teacher_forced_logits(*engine, nullptr, prompt, ref_run.tokens);
    use(true);
    got = teacher_forced_logits(*engine, nullptr, prompt, ref_run.tokens);
    calls = engine->attention_program_calls();
  } catch (const Error& ex) {
    r.failure = fmt::format("in the engine (teacher forcing): {}", ex.what());
    return r;
  }
  const auto [worst, worst_step] = worst_logit_error(want, got);
  const uint64_t expected = static_cast<uint64_t>(engine->config().num_hidden_layers) * (ref_run.tokens.size() - 1);
  r.metrics["e2e_logit_error"] = worst;
  r.metrics["e2e_logit_error_step"] = worst_step;
  r.metrics["e2e_logit_tolerance"] = kDeviceE2eLogitTolerance;
  r.metrics["e2e_program_calls"] = calls;
  r.metrics["e2e_decode_layout"] = decode_layout_name(cuda_decode_layout(*engine));
  if (calls < expected) {
    r.failure = fmt::format("the persistent step called the program {} times, expected {}", calls, expected);
    return r;
  }
  if (!(worst <= kDeviceE2eLogitTolerance)) {
    r.failure = fmt::format("teacher-forced logits differ from the built-in step's: relative error {:.3g} at step {} "
                            "(bound {:.3g}): the program is wrong inside the engine", worst, worst_step,
                            kDeviceE2eLogitTolerance);
    return r;
  }

  // 2. Decode speed at each context, built-in and program alternated (which goes first alternates too). A run
  // decodes kWarmTokens more than it times: the rate is taken between the token kWarmTokens and the last, as they
  // reach the host, so the step graph's capture after a switch and the first steps stay out of it.
  constexpr int kWarmTokens = 8;
  GenerateOptions timed;
  timed.max_tokens = e.new_tokens + kWarmTokens;
  timed.sampling.temperature = 0;
  timed.ignore_stop_tokens = true;
  auto decode_rate = [&](bool program, const std::vector<int32_t>& p) {
    use(program);
    int n = 0;
    std::chrono::steady_clock::time_point t0, t1;
    generate(*engine, p, timed, [&](int32_t) {
      if (++n == kWarmTokens) t0 = std::chrono::steady_clock::now();
      t1 = std::chrono::steady_clock::now();
    });
    const double sec = std::chrono::duration<double>(t1 - t0).count();
    return n > kWarmTokens && sec > 0 ? (n - kWarmTokens) / sec : 0.0;
  };
  std::vector<double> log_ratios;
  std::string table = "context | built-in tok/s (median) | program tok/s (median) | ratio (geomean, 95% interval)\n";
  const int max_ctx = static_cast<int>(engine->config().max_position_embeddings) - timed.max_tokens - 1;
  for (int ctx : e.contexts) {
    if (ctx > max_ctx) continue;
    const std::vector<int32_t> p = prompt_of(ctx, V, ctx);
    std::vector<double> b, c;
    for (int round = 0; round < e.rounds; ++round) {
      const bool first_builtin = round % 2 == 0;
      for (int k = 0; k < 2; ++k) {
        const bool builtin = (k == 0) == first_builtin;
        (builtin ? b : c).push_back(decode_rate(!builtin, p));
      }
    }
    if (std::find(b.begin(), b.end(), 0.0) != b.end() || std::find(c.begin(), c.end(), 0.0) != c.end()) {
      r.failure = fmt::format("a timed run at context {} produced no tokens to time", ctx);
      return r;
    }
    const bench::Comparison cmp = bench::compare_paired(b, c);
    const std::string key = fmt::format("ctx{}", ctx);
    r.metrics["e2e_decode_ratio_" + key] = cmp.ratio_geomean;
    r.metrics["e2e_decode_ratio_ci_low_" + key] = cmp.ratio_ci_low;
    r.metrics["e2e_decode_ratio_ci_high_" + key] = cmp.ratio_ci_high;
    r.metrics["e2e_builtin_decode_tps_" + key] = bench::median(b);
    r.metrics["e2e_program_decode_tps_" + key] = bench::median(c);
    log_ratios.push_back(std::log(cmp.ratio_geomean));
    table += fmt::format("{:7d} | {:22.1f} | {:23.1f} | {:.4f} [{:.4f}, {:.4f}]\n", ctx, bench::median(b),
                         bench::median(c), cmp.ratio_geomean, cmp.ratio_ci_low, cmp.ratio_ci_high);
  }
  if (log_ratios.empty()) {
    r.failure = "no timing context fits the model's max_position_embeddings";
    return r;
  }
  double mean = 0;
  for (double x : log_ratios) mean += x / static_cast<double>(log_ratios.size());
  r.metrics["e2e_decode_ratio_geomean"] = std::exp(mean);
  r.artifacts["e2e_speed"] = table;
  r.passed = true;
  return r;
}

}  // namespace gqa::eval
