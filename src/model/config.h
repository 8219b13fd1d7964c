// Qwen3 model configuration, read from an HF config.json (transformers 4.x and 5.x layouts).
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace gqa {

struct ModelConfig {
  std::string model_type = "qwen3";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // transformers default when absent: hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;  // 4.x: top-level "rope_theta"; 5.x: "rope_parameters": {"rope_theta"}
  bool tie_word_embeddings = false;
  std::string dtype = "bfloat16";  // 4.x: "torch_dtype"; 5.x: "dtype"
  int64_t bos_token_id = -1;                // -1 when absent or null
  std::vector<int64_t> eos_token_ids;       // "eos_token_id": int or list

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t gqa_group() const { return num_attention_heads / num_key_value_heads; }

  // Parses and validates; `source` (usually the file path) prefixes every error:
  // "[config] DIR/config.json: field 'hidden_size' is missing" / "... must be an integer, got string".
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig load(const std::string& config_json_path);
  // HF config.json in the transformers 5.x layout (with "rope_parameters"), plus the 4.x
  // "rope_theta"/"torch_dtype" keys so that both versions read it.
  nlohmann::json to_hf_json() const;
  // Total parameter count implied by the config (embeddings counted once when tied).
  int64_t parameter_count() const;
};

}  // namespace gqa
