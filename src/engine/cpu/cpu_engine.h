// The CPU reference engine: Qwen3 forward in float32 from bf16/f16/f32 weights, OpenMP across cores.
#pragma once
#include <memory>
#include <vector>

#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "model/weights.h"

namespace gqa {

class CpuEngine final : public Engine {
 public:
  // Opens DIR's config.json and weights (memory-mapped; bf16 weights are used in place).
  static std::unique_ptr<CpuEngine> open(const std::string& model_dir);
  CpuEngine(ModelConfig config, WeightStore store);

  const ModelConfig& config() const override { return cfg_; }
  std::string device_name() const override;
  void reset(int64_t capacity) override;
  const float* forward(std::span<const int32_t> tokens, bool all_logits = false) override;
  int64_t position() const override { return cache_.length; }
  // Program mode: bf16 KV cache, q and out cross the ABI as bf16; the float32 path stays untouched.
  void set_attention_program(gqa_attention_fn fn) override {
    program_ = fn;
    program_calls_ = 0;
    bf16_capacity_ = 0;  // the next reset() allocates the bf16 cache
  }
  uint64_t attention_program_calls() const override { return program_calls_; }

 private:
  void forward_chunk(const int32_t* tokens, int64_t T, float* logits, bool all_logits);
  void ensure_scratch(int64_t T);
  void prefault_weights() const;
  void program_attention(int64_t layer, int64_t T, int64_t pos0);

  ModelConfig cfg_;
  WeightStore store_;
  Qwen3Weights w_;
  // Norm weights converted to float once.
  struct LayerNorms { std::vector<float> input, post, q, k; };
  std::vector<LayerNorms> norms_;
  std::vector<float> final_norm_;
  KVCache cache_;
  int64_t scratch_T_ = 0;
  std::vector<float> x_, h_, q_, k_, v_, att_, gate_, up_, logits_;

  gqa_attention_fn program_ = nullptr;
  uint64_t program_calls_ = 0;
  // Program mode, allocated by reset(): bf16 cache [layer][pos][kv_head][head_dim], bf16 q/out rows, and
  // the workspace the ABI promises (as uint64 for alignment).
  int64_t bf16_capacity_ = 0;
  std::vector<uint16_t> k_bf16_, v_bf16_, q_bf16_, out_bf16_;
  std::vector<uint64_t> workspace_;
};

}  // namespace gqa
