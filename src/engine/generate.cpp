// Generation loop and process memory statistics.
#include "engine/generate.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>

#include "common/error.h"

namespace gqa {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

size_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<size_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

GenerateResult generate(Engine& engine, std::span<const int32_t> prompt, const GenerateOptions& opts,
                        const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) fail("generate", "the prompt is empty: at least one token is needed");
  if (opts.max_tokens < 0) fail("generate", "max-tokens must be >= 0, got {}", opts.max_tokens);
  const int64_t vocab = engine.config().vocab_size;
  const int64_t capacity = static_cast<int64_t>(prompt.size()) + std::max<int64_t>(opts.max_tokens, 1);
  engine.reset(capacity);
  Sampler sampler(opts.sampling);
  GenerateResult r;
  r.stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  r.tokens.reserve(static_cast<size_t>(opts.max_tokens));

  auto t0 = std::chrono::steady_clock::now();
  const float* logits = engine.forward(prompt);
  r.stats.prefill_seconds = seconds_since(t0);
  r.stats.stop_reason = "max_tokens";

  auto t1 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < opts.max_tokens; ++i) {
    if (i > 0) logits = engine.forward(std::span<const int32_t>(&r.tokens.back(), 1));
    int32_t tok = sampler.sample(logits, vocab);
    r.tokens.push_back(tok);
    if (on_token) on_token(tok);
    if (!opts.ignore_stop_tokens &&
        std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), tok) != opts.stop_tokens.end()) {
      r.stats.stop_reason = "stop_token";
      break;
    }
  }
  r.stats.decode_seconds = seconds_since(t1);
  r.stats.generated_tokens = static_cast<int64_t>(r.tokens.size());
  return r;
}

}  // namespace gqa
