// An OpenAI-compatible chat-completions client (libcurl) with timeouts and retries, and the model
// ensemble that picks which model answers each iteration (by weight, optionally adapted by a bandit).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "common/rng.h"
#include "evolve/config.h"

namespace gqa::evolve {

struct LlmReply {
  bool ok = false;
  std::string content;
  std::string error;  // why not ok (never contains the API key)
  int requests = 0;
  double seconds = 0;
};

class LlmClient {
 public:
  // Reads the key from the environment variable named by api_key_env (an error when it is named but unset).
  explicit LlmClient(const LlmConfig& config);
  // POST {api_base}/chat/completions. Retries after 429, 5xx, timeouts and failed connections with
  // exponential backoff; other failures (4xx, invalid JSON, no choices) end at once. Thread-safe.
  LlmReply complete(const std::string& model, const std::string& system, const std::string& user) const;

 private:
  LlmConfig config_;
  std::string api_key_;
};

// Model choice: P(model) ∝ weight × (improvements + 1) / (uses + 2) with the bandit on, else ∝ weight.
class ModelEnsemble {
 public:
  explicit ModelEnsemble(const LlmConfig& config) : config_(config), uses_(config.models.size()), wins_(config.models.size()) {}
  size_t choose(Rng& rng) const;
  void record(size_t model, bool improved);
  const std::string& name(size_t model) const { return config_.models.at(model).name; }
  nlohmann::json to_json() const;
  void from_json(const nlohmann::json& j);

 private:
  LlmConfig config_;
  std::vector<int64_t> uses_, wins_;
};

}  // namespace gqa::evolve
