// Reading, validating and writing Qwen3 config.json files (transformers 4.x and 5.x layouts).
// Strict on what changes the computation (sizes, rope, activation, biases); lenient on HF's other keys.
#include "model/config.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/error.h"

namespace gqa {
namespace {

using nlohmann::json;

// Each dimension must fit an int so that engine code may index with 32-bit ints.
constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

std::string json_kind(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "float";
  if (v.is_boolean()) return "boolean";
  return v.type_name();  // "string", "null", "object", "array"
}

class ConfigReader {
 public:
  ConfigReader(const json& j, const std::string& source) : j_(j), source_(source) {}

  [[noreturn]] void error(std::string_view field, std::string_view problem) const {
    fail("config", "{}: field '{}' {}", source_, field, problem);
  }

  const json* find(const json& obj, const std::string& field) const {
    auto it = obj.find(field);
    return it == obj.end() ? nullptr : &*it;
  }

  int64_t integer_value(const json& v, std::string_view field) const {
    if (!v.is_number_integer()) error(field, fmt::format("must be an integer, got {}", json_kind(v)));
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      error(field, "is too large");
    return v.get<int64_t>();
  }

  int64_t required_size(const std::string& field) const {
    const json* v = find(j_, field);
    if (!v) error(field, "is missing");
    return checked_size(*v, field);
  }

  int64_t checked_size(const json& v, std::string_view field) const {
    int64_t n = integer_value(v, field);
    if (n <= 0) error(field, fmt::format("must be positive, got {}", n));
    if (n > kMaxDim) error(field, fmt::format("is too large ({} > {})", n, kMaxDim));
    return n;
  }

  double number_value(const json& v, std::string_view field) const {
    if (!v.is_number()) error(field, fmt::format("must be a number, got {}", json_kind(v)));
    return v.get<double>();
  }

  std::optional<std::string> optional_string(const std::string& field) const {
    const json* v = find(j_, field);
    if (!v) return std::nullopt;
    if (!v->is_string()) error(field, fmt::format("must be a string, got {}", json_kind(*v)));
    return v->get<std::string>();
  }

  std::optional<bool> optional_bool(const std::string& field) const {
    const json* v = find(j_, field);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) error(field, fmt::format("must be a boolean, got {}", json_kind(*v)));
    return v->get<bool>();
  }

  int64_t token_id(const json& v, std::string_view field, int64_t vocab) const {
    int64_t id = integer_value(v, field);
    if (id < 0 || id >= vocab)
      error(field, fmt::format("holds token id {}, outside the vocabulary [0, {})", id, vocab));
    return id;
  }

  // rope_type must be "default": other RoPE variants (yarn, linear, ...) are not implemented, and
  // silently computing plain RoPE for them would give wrong outputs.
  void check_rope_type(const json& obj, const std::string& field) const {
    for (const char* key : {"rope_type", "type"}) {
      if (const json* t = find(obj, key)) {
        if (!t->is_string() || t->get<std::string>() != "default")
          error(field + "." + key, fmt::format("is {}; only \"default\" RoPE is supported", t->dump()));
      }
    }
  }

  double rope_theta() const {
    std::optional<double> top, nested;
    if (const json* v = find(j_, "rope_theta")) top = number_value(*v, "rope_theta");
    if (const json* p = find(j_, "rope_parameters"); p && !p->is_null()) {
      if (!p->is_object()) error("rope_parameters", fmt::format("must be an object, got {}", json_kind(*p)));
      check_rope_type(*p, "rope_parameters");
      if (const json* v = find(*p, "rope_theta")) nested = number_value(*v, "rope_parameters.rope_theta");
    }
    if (const json* s = find(j_, "rope_scaling"); s && !s->is_null()) {
      if (!s->is_object()) error("rope_scaling", fmt::format("must be an object or null, got {}", json_kind(*s)));
      check_rope_type(*s, "rope_scaling");
    }
    if (top && nested && *top != *nested)
      error("rope_theta", fmt::format("({}) disagrees with rope_parameters.rope_theta ({})", *top, *nested));
    if (!top && !nested)
      error("rope_theta", "is missing (neither \"rope_theta\" nor \"rope_parameters\": {\"rope_theta\"})");
    double theta = nested ? *nested : *top;
    if (!(theta > 0) || !std::isfinite(theta))
      error(nested ? "rope_parameters.rope_theta" : "rope_theta", fmt::format("must be positive, got {}", theta));
    return theta;
  }

 private:
  const json& j_;
  const std::string& source_;
};

// a*b+c style products with overflow detection; parameter counts of absurd configs must not wrap.
bool checked_parameter_count(const ModelConfig& c, int64_t* out) {
  auto mul = [](int64_t a, int64_t b, int64_t* r) { return !__builtin_mul_overflow(a, b, r); };
  auto add = [](int64_t a, int64_t b, int64_t* r) { return !__builtin_add_overflow(a, b, r); };
  int64_t embed, q, kv, o, mlp, per_layer = 0, layers, total, t;
  if (!mul(c.vocab_size, c.hidden_size, &embed)) return false;
  if (!mul(c.q_dim(), c.hidden_size, &q) || !mul(c.kv_dim(), c.hidden_size, &kv)) return false;
  if (!mul(c.hidden_size, c.q_dim(), &o) || !mul(c.intermediate_size, c.hidden_size, &mlp)) return false;
  if (!mul(mlp, 3, &mlp) || !mul(kv, 2, &kv)) return false;
  for (int64_t part : {q, kv, o, mlp, 2 * c.head_dim, 2 * c.hidden_size})
    if (!add(per_layer, part, &per_layer)) return false;
  if (!mul(per_layer, c.num_hidden_layers, &layers)) return false;
  if (!add(embed, layers, &total) || !add(total, c.hidden_size, &total)) return false;
  if (!c.tie_word_embeddings) {
    if (!add(total, embed, &t)) return false;
    total = t;
  }
  *out = total;
  return true;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail("config", "{}: must be a JSON object, got {}", source, json_kind(j));
  ConfigReader r(j, source);
  ModelConfig c;

  auto model_type = r.optional_string("model_type");
  if (!model_type) r.error("model_type", "is missing");
  if (*model_type != "qwen3") r.error("model_type", fmt::format("is '{}'; only 'qwen3' is supported", *model_type));
  c.model_type = *model_type;

  c.vocab_size = r.required_size("vocab_size");
  c.hidden_size = r.required_size("hidden_size");
  c.intermediate_size = r.required_size("intermediate_size");
  c.num_hidden_layers = r.required_size("num_hidden_layers");
  c.num_attention_heads = r.required_size("num_attention_heads");
  c.num_key_value_heads = r.required_size("num_key_value_heads");
  c.max_position_embeddings = r.required_size("max_position_embeddings");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.error("num_key_value_heads",
            fmt::format("({}) must divide num_attention_heads ({})", c.num_key_value_heads, c.num_attention_heads));

  if (const json* hd = r.find(j, "head_dim"); hd && !hd->is_null()) {
    c.head_dim = r.checked_size(*hd, "head_dim");
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      r.error("head_dim", fmt::format("is absent and hidden_size ({}) is not a multiple of num_attention_heads ({})",
                                      c.hidden_size, c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  // RoPE rotates pairs (i, i + head_dim/2).
  if (c.head_dim % 2 != 0) r.error("head_dim", fmt::format("must be even, got {}", c.head_dim));

  const json* eps = r.find(j, "rms_norm_eps");
  if (!eps) r.error("rms_norm_eps", "is missing");
  c.rms_norm_eps = r.number_value(*eps, "rms_norm_eps");
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps))
    r.error("rms_norm_eps", fmt::format("must be positive, got {}", c.rms_norm_eps));

  c.rope_theta = r.rope_theta();
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings").value_or(false);

  // 5.x writes "dtype", 4.x "torch_dtype"; the newer key wins when both are present.
  for (const char* field : {"dtype", "torch_dtype"}) {
    const json* v = r.find(j, field);
    if (!v || v->is_null()) continue;
    if (!v->is_string()) r.error(field, fmt::format("must be a string, got {}", json_kind(*v)));
    std::string d = v->get<std::string>();
    if (d != "bfloat16" && d != "float16" && d != "float32")
      r.error(field, fmt::format("is '{}'; expected bfloat16, float16 or float32", d));
    c.dtype = d;
    break;
  }

  // Keys whose non-default values would change the computation the engine performs.
  if (auto act = r.optional_string("hidden_act"); act && *act != "silu")
    r.error("hidden_act", fmt::format("is '{}'; only 'silu' is supported", *act));
  if (r.optional_bool("attention_bias").value_or(false))
    r.error("attention_bias", "is true; Qwen3 projections without biases are the only supported layout");
  if (r.optional_bool("use_sliding_window").value_or(false))
    r.error("use_sliding_window", "is true; sliding-window attention is not supported");

  if (const json* bos = r.find(j, "bos_token_id"); bos && !bos->is_null())
    c.bos_token_id = r.token_id(*bos, "bos_token_id", c.vocab_size);
  if (const json* eos = r.find(j, "eos_token_id"); eos && !eos->is_null()) {
    if (eos->is_array()) {
      for (const json& id : *eos) c.eos_token_ids.push_back(r.token_id(id, "eos_token_id", c.vocab_size));
    } else {
      c.eos_token_ids.push_back(r.token_id(*eos, "eos_token_id", c.vocab_size));
    }
  }

  int64_t params;
  if (!checked_parameter_count(c, &params))
    fail("config", "{}: the sizes give a parameter count that overflows", source);
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::string text = read_file(path, "config");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep its "at line L, column C" position.
    std::string what = e.what();
    if (auto p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != std::string::npos)
      what = what.substr(p + 2);
    fail("config", "{}: invalid JSON: {}", path, what);
  }
  return from_json(j, path);
}

json ModelConfig::to_hf_json() const {
  json eos = eos_token_ids.size() == 1 ? json(eos_token_ids[0]) : json(eos_token_ids);
  if (eos_token_ids.empty()) eos = nullptr;
  // nlohmann::json sorts keys, as transformers' save_pretrained does.
  return json{
      {"architectures", {"Qwen3ForCausalLM"}},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", bos_token_id >= 0 ? json(bos_token_id) : json(nullptr)},
      {"eos_token_id", eos},
      {"head_dim", head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", intermediate_size},
      {"max_position_embeddings", max_position_embeddings},
      {"max_window_layers", num_hidden_layers},
      {"model_type", model_type},
      {"num_attention_heads", num_attention_heads},
      {"num_hidden_layers", num_hidden_layers},
      {"num_key_value_heads", num_key_value_heads},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_theta", rope_theta},                                                   // 4.x
      {"rope_scaling", nullptr},                                                    // 4.x
      {"rope_parameters", {{"rope_theta", rope_theta}, {"rope_type", "default"}}},  // 5.x
      {"sliding_window", nullptr},
      {"tie_word_embeddings", tie_word_embeddings},
      {"torch_dtype", dtype},  // 4.x
      {"dtype", dtype},        // 5.x
      {"use_cache", true},
      {"use_sliding_window", false},
      {"vocab_size", vocab_size},
  };
}

int64_t ModelConfig::parameter_count() const {
  int64_t n = 0;
  if (!checked_parameter_count(*this, &n)) fail("config", "parameter count overflows int64");
  return n;
}

}  // namespace gqa
