// Opening a model directory's safetensors (single file or sharded) and binding the Qwen3 tensors,
// with every name, shape and dtype checked against the config.
#include "model/weights.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "common/error.h"

namespace gqa {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// weight_map of model.safetensors.index.json: tensor name -> shard file name.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  std::string text = read_file(index_path, "weights");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != std::string::npos)
      what = what.substr(p + 2);
    fail("weights", "{}: invalid JSON: {}", index_path, what);
  }
  if (!j.is_object()) fail("weights", "{}: must be a JSON object", index_path);
  auto wm = j.find("weight_map");
  if (wm == j.end()) fail("weights", "{}: 'weight_map' is missing", index_path);
  if (!wm->is_object()) fail("weights", "{}: 'weight_map' must be an object", index_path);
  std::map<std::string, std::string> out;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string())
      fail("weights", "{}: weight_map entry for '{}' must be a file name string", index_path, name);
    const std::string& file = shard.get_ref<const std::string&>();
    // Shards live next to the index; a path would let an index reach outside the model directory.
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      fail("weights", "{}: weight_map entry for '{}' is not a plain file name: '{}'", index_path, name, file);
    out.emplace(name, file);
  }
  if (out.empty()) fail("weights", "{}: 'weight_map' is empty", index_path);
  return out;
}

}  // namespace

WeightStore WeightStore::open(const std::string& model_dir) {
  WeightStore store;
  store.dir_ = model_dir;
  fs::path dir(model_dir);
  std::error_code ec;
  // transformers also prefers the single file when both are present.
  if (fs::is_regular_file(dir / kSingleFile, ec)) {
    store.files_.push_back(std::make_unique<SafetensorsFile>((dir / kSingleFile).string()));
  } else if (fs::is_regular_file(dir / kIndexFile, ec)) {
    std::string index_path = (dir / kIndexFile).string();
    auto weight_map = read_weight_map(index_path);
    std::set<std::string> shards;  // sorted, so shards open in file order
    for (const auto& [name, shard] : weight_map) shards.insert(shard);
    std::map<std::string, size_t> shard_ids;
    for (const std::string& shard : shards) {
      std::string shard_path = (dir / shard).string();
      if (!fs::is_regular_file(shard_path, ec))
        fail("weights", "{}: shard listed in {} does not exist", shard_path, kIndexFile);
      shard_ids.emplace(shard, store.files_.size());
      store.files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
    }
    for (size_t f = 0; f < store.files_.size(); ++f) {
      for (size_t t = 0; t < store.files_[f]->header().tensors.size(); ++t) {
        const std::string& name = store.files_[f]->header().tensors[t].name;
        auto [it, inserted] = store.index_.emplace(name, std::make_pair(f, t));
        if (!inserted)
          fail("weights", "{}: tensor '{}' is in two shards: {} and {}", model_dir, name,
               store.files_[it->second.first]->path(), store.files_[f]->path());
      }
    }
    for (const auto& [name, shard] : weight_map) {
      auto it = store.index_.find(name);
      size_t expected = shard_ids.at(shard);
      if (it == store.index_.end() || it->second.first != expected)
        fail("weights", "{}: tensor '{}' is listed in {} but absent from this shard", store.files_[expected]->path(),
             name, kIndexFile);
    }
    return store;
  } else {
    fail("weights", "{}: no {} or {}", model_dir, kSingleFile, kIndexFile);
  }
  const auto& tensors = store.files_[0]->header().tensors;
  for (size_t t = 0; t < tensors.size(); ++t) store.index_.emplace(tensors[t].name, std::make_pair(size_t{0}, t));
  return store;
}

bool WeightStore::has(const std::string& name) const {
  return index_.count(name) != 0;
}

Tensor WeightStore::get(const std::string& name, const std::vector<int64_t>& expected_shape) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("weights", "{}: missing tensor '{}'", dir_, name);
  const SafetensorsFile& file = *files_[it->second.first];
  const TensorInfo& info = file.header().tensors[it->second.second];
  if (info.shape != expected_shape)
    fail("weights", "{}: tensor '{}' has shape {}, expected {}", file.path(), name, shape_string(info.shape),
         shape_string(expected_shape));
  return file.tensor(info);
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, where] : index_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

Qwen3Weights load_qwen3_weights(const WeightStore& store, const ModelConfig& c) {
  std::set<std::string> used;
  std::optional<Tensor> first;
  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    Tensor t = store.get(name, shape);
    used.insert(name);
    if (!first) {
      first = t;
    } else if (t.dtype != first->dtype) {
      fail("weights", "{}: tensor '{}' has dtype {} but '{}' has {}; all tensors must share one dtype", store.dir(),
           name, dtype_name(t.dtype), first->name, dtype_name(first->dtype));
    }
    return t;
  };
  const int64_t h = c.hidden_size;
  Qwen3Weights w;
  w.embed_tokens = get("model.embed_tokens.weight", {c.vocab_size, h});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string p = fmt::format("model.layers.{}.", i);
    Qwen3LayerWeights l;
    l.input_layernorm = get(p + "input_layernorm.weight", {h});
    l.q_proj = get(p + "self_attn.q_proj.weight", {c.q_dim(), h});
    l.k_proj = get(p + "self_attn.k_proj.weight", {c.kv_dim(), h});
    l.v_proj = get(p + "self_attn.v_proj.weight", {c.kv_dim(), h});
    l.o_proj = get(p + "self_attn.o_proj.weight", {h, c.q_dim()});
    l.q_norm = get(p + "self_attn.q_norm.weight", {c.head_dim});
    l.k_norm = get(p + "self_attn.k_norm.weight", {c.head_dim});
    l.post_attention_layernorm = get(p + "post_attention_layernorm.weight", {h});
    l.gate_proj = get(p + "mlp.gate_proj.weight", {c.intermediate_size, h});
    l.up_proj = get(p + "mlp.up_proj.weight", {c.intermediate_size, h});
    l.down_proj = get(p + "mlp.down_proj.weight", {h, c.intermediate_size});
    w.layers.push_back(std::move(l));
  }
  w.norm = get("model.norm.weight", {h});
  if (c.tie_word_embeddings) {
    // Tied checkpoints sometimes store a copy of the embeddings as lm_head; transformers ignores it.
    w.lm_head = w.embed_tokens;
    used.insert("lm_head.weight");
  } else {
    if (!store.has("lm_head.weight"))
      fail("weights", "{}: missing tensor 'lm_head.weight' (config.json says tie_word_embeddings is false)",
           store.dir());
    w.lm_head = get("lm_head.weight", {c.vocab_size, h});
  }
  // A tensor we would silently ignore (a bias, an extra layer) means the checkpoint is not the model
  // the config describes. Old checkpoints carry rotary inv_freq buffers, which are recomputed anyway.
  for (const std::string& name : store.names()) {
    if (used.count(name)) continue;
    if (name.ends_with("rotary_emb.inv_freq")) continue;
    fail("weights", "{}: unexpected tensor '{}' (not part of a Qwen3 checkpoint with this config)", store.dir(), name);
  }
  return w;
}

}  // namespace gqa
