// A model directory's weights: model.safetensors, or the shards listed in model.safetensors.index.json.
// Tensors are looked up by name and checked against the shape the caller expects.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace gqa {

class WeightStore {
 public:
  // Throws "[weights] DIR: no model.safetensors or model.safetensors.index.json", index errors
  // (bad JSON, weight_map missing, shard file missing), or a tensor name present in two shards.
  static WeightStore open(const std::string& model_dir);

  bool has(const std::string& name) const;
  // Throws "[weights] FILE: missing tensor 'NAME'" or "... tensor 'NAME' has shape [a, b], expected [c, d]".
  Tensor get(const std::string& name, const std::vector<int64_t>& expected_shape) const;
  std::vector<std::string> names() const;  // sorted
  const std::string& dir() const { return dir_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, std::pair<size_t, size_t>> index_;  // name -> (file, tensor)
  std::string dir_;
};

struct Qwen3LayerWeights {
  Tensor input_layernorm;           // [hidden]
  Tensor q_proj, k_proj, v_proj;    // [q_dim, hidden], [kv_dim, hidden], [kv_dim, hidden]
  Tensor o_proj;                    // [hidden, q_dim]
  Tensor q_norm, k_norm;            // [head_dim]
  Tensor post_attention_layernorm;  // [hidden]
  Tensor gate_proj, up_proj;        // [intermediate, hidden]
  Tensor down_proj;                 // [hidden, intermediate]
};

// All tensors of a Qwen3 checkpoint ("model.layers.N.self_attn.q_proj.weight", ...), shapes checked
// against the config. lm_head is embed_tokens when tie_word_embeddings (or when lm_head.weight is absent
// and the config says tied); every tensor must share one dtype among BF16, F16, F32.
struct Qwen3Weights {
  Tensor embed_tokens;  // [vocab, hidden]
  std::vector<Qwen3LayerWeights> layers;
  Tensor norm;     // [hidden]
  Tensor lm_head;  // [vocab, hidden]
};

Qwen3Weights load_qwen3_weights(const WeightStore& store, const ModelConfig& config);

}  // namespace gqa
