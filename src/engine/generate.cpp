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
  // Records a token; false once it is a stop token.
  auto emit = [&](int32_t tok) {
    r.tokens.push_back(tok);
    if (on_token) on_token(tok);
    if (!opts.ignore_stop_tokens &&
        std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), tok) != opts.stop_tokens.end()) {
      r.stats.stop_reason = "stop_token";
      return false;
    }
    return true;
  };
  if (opts.max_tokens > 0 && emit(sampler.sample(logits, vocab)) && opts.max_tokens > 1) {
    const int64_t left = opts.max_tokens - 1;
    const int64_t n = engine.decode_on_device(r.tokens.back(), left, opts.sampling, sampler.rng_state(), emit);
    if (n >= 0) {
      r.stats.decode_path = "device";
    } else {
      for (int64_t i = 0; i < left; ++i) {
        logits = engine.forward(std::span<const int32_t>(&r.tokens.back(), 1));
        if (!emit(sampler.sample(logits, vocab))) break;
      }
    }
  }
  r.stats.decode_seconds = seconds_since(t1);
  r.stats.generated_tokens = static_cast<int64_t>(r.tokens.size());
  r.stats.peak_device_memory_bytes = engine.peak_device_memory_bytes();
  return r;
}

}  // namespace gqa
