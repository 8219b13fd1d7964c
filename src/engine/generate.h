// The generation loop: prefill the prompt, then sample and decode token by token, timing both phases.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"

namespace gqa {

struct GenerateOptions {
  int64_t max_tokens = 128;
  SamplingParams sampling;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these
  bool ignore_stop_tokens = false;   // benchmarks: always generate max_tokens
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;  // prompt forward, including the first token's logits
  double decode_seconds = 0;   // every later forward (generated_tokens - 1 of them) and the sampling
  std::string stop_reason;     // "stop_token" | "max_tokens"
  std::string decode_path = "host";     // "device": tokens sampled on the device (Engine::decode_on_device)
  size_t peak_device_memory_bytes = 0;  // Engine::peak_device_memory_bytes() after generation
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0; }
  double decode_tokens_per_second() const {
    return decode_seconds > 0 && generated_tokens > 1 ? (generated_tokens - 1) / decode_seconds : 0;
  }
};

struct GenerateResult {
  std::vector<int32_t> tokens;
  GenerateStats stats;
};

// Resets the engine's cache to prompt + max_tokens positions. on_token is called for every generated
// token as soon as it is sampled (for streaming).
GenerateResult generate(Engine& engine, std::span<const int32_t> prompt, const GenerateOptions& opts,
                        const std::function<void(int32_t)>& on_token = {});

// Peak resident memory of this process so far, in bytes.
size_t peak_rss_bytes();

}  // namespace gqa
