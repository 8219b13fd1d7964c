// Deterministic random-weight models in HF format: the exact configurations of the dense Qwen3 sizes, and
// small presets for tests. Weights are bf16, drawn from a seeded generator with scales that keep logits meaningful
// (neither all-equal nor saturated).
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace gqa {

// Presets: "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b" (the real configs of
// the dense Qwen3 sizes; the weights take 1.2 to 65.5 GB), "tiny" (Qwen3-0.6B's head layout: 16 q heads, 8 kv heads,
// head_dim 128, tied; few layers and a narrow MLP), "tiny-32x8" (Qwen3-4B's and 8B's heads: 32 query heads, 8 KV
// heads, head_dim 128, tied; q_dim 4096 over hidden 256), "tiny-gqa4" (4:1 GQA, head_dim 64, untied lm_head,
// rope theta 10000). Throws "[make-model] unknown preset 'x' (known: ...)".
ModelConfig preset_config(const std::string& preset);
std::vector<std::string> preset_names();

// Writes config.json, generation_config.json and model.safetensors into out_dir (created if needed),
// and copies tokenizer.json / tokenizer_config.json from tokenizer_dir when it is non-empty.
// The same (preset, seed) gives byte-identical files on every machine.
void make_random_model(const ModelConfig& config, uint64_t seed, const std::string& out_dir,
                       const std::string& tokenizer_dir);

}  // namespace gqa
