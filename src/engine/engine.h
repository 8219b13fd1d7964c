// The interface generation drives: a model that consumes tokens, keeps its KV cache, returns logits.
// Implemented by the CPU reference engine (and the CUDA engine where built).
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "model/config.h"

namespace gqa {

class Engine {
 public:
  virtual ~Engine() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::string device_name() const = 0;
  // Drops the cache and makes room for `capacity` positions (prompt + generated tokens).
  virtual void reset(int64_t capacity) = 0;
  // Appends tokens at the current position. Returns logits [vocab] of the last token, or with
  // all_logits, [tokens.size()][vocab]. The pointer stays valid until the next call.
  virtual const float* forward(std::span<const int32_t> tokens, bool all_logits = false) = 0;
  virtual int64_t position() const = 0;
};

}  // namespace gqa
