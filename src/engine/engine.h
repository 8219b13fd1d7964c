// The interface generation drives: a model that consumes tokens, keeps its KV cache, returns logits.
// Implemented by the CPU reference engine (and the CUDA engine where built).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "common/error.h"
#include "engine/sampler.h"
#include "gqa/abi.h"
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

  // Decoding without logits crossing to the host (the CUDA engine): feeds `first` at the current position,
  // samples the next token on the device with `sampling` (the uniform generator continuing from
  // `rng_state`, the host Sampler's state), feeds that back, and so on for up to `count` tokens. on_token
  // receives each token in order and returns false to stop. Returns the number of tokens produced (the
  // position advances by as many), or -1, having done nothing, when the engine has no device path for
  // these parameters; generate() then samples on the host.
  virtual int64_t decode_on_device(int32_t first, int64_t count, const SamplingParams& sampling, uint64_t rng_state,
                                   const std::function<bool(int32_t)>& on_token) {
    return -1;
  }
  // Most device memory the engine held at once since the last reset() (0 for engines without a device).
  virtual size_t peak_device_memory_bytes() const { return 0; }

  // Routes every attention call through `fn`, an attention program (include/gqa/abi.h) of this engine's
  // target, from the next reset() on; nullptr restores the engine's own attention. The engine counts the
  // calls, so that a run can prove its program ran. Engines without the hook throw.
  virtual void set_attention_program(gqa_attention_fn fn) {
    fail("engine", "{} cannot run attention programs", device_name());
  }
  // Calls of the attention program since it was set.
  virtual uint64_t attention_program_calls() const { return 0; }
  // The decode step the engine runs now, for reports ("" for engines with one way of decoding).
  virtual std::string decode_layout() const { return ""; }

  // Runs an attention program's device entry (include/gqa/decode_abi.cuh) as the decode attention of the
  // engine's persistent decode step from the next reset() on; prefill keeps the host entry set above, or the
  // engine's own attention. `lto` is the program's device code as LTO IR (compile_program with
  // Output::DeviceLto); the engine links it into its step now (the linked kernel cached under cache_dir when
  // not empty) and throws with the linker's log when that fails. Empty `lto`: the built-in attention again.
  // Its calls count in attention_program_calls() (one per layer and decode step). Engines without the step
  // throw.
  struct DecodeProgramLink {
    double seconds = 0;  // link time (0 when cached)
    bool cached = false;
  };
  virtual DecodeProgramLink set_decode_attention_program(const std::string& lto, const std::string& name,
                                                         const std::string& cache_dir) {
    fail("engine", "{} has no persistent decode step to run a program's device entry in", device_name());
  }
};

}  // namespace gqa
