// An OpenAI-compatible chat-completions client (libcurl) with timeouts and retries, and the model
// ensemble that picks which model answers each iteration (by weight, optionally adapted by a bandit).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/rng.h"
#include "evolve/config.h"

namespace gqa::evolve {

struct LlmReply {
  bool ok = false;
  std::string content;     // the answer, without <think>…</think> reasoning
  std::string raw_content; // the message content as sent (key cut out), for the record of the exchange
  std::string reasoning;   // a separate reasoning_content / reasoning field, as sent (key cut out)
  std::string error;       // why not ok (never contains the API key)
  int status = 0;          // HTTP status of the last response (0: none came)
  bool fatal = false;      // a 400/401/403/404: asking again the same way cannot succeed
  std::string server_message;  // the server's error message for a failed status (key removed)
  std::vector<std::string> notes;  // request changes the server asked for (said once per model and run)
  int requests = 0;
  double seconds = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;  // the answer's `usage`, when sent
};

class LlmClient {
 public:
  // Reads each model's key from the environment variable its api_key_env names (an error when unset).
  explicit LlmClient(const LlmConfig& config);
  // POST {api_base}/chat/completions for config.models[model]. Retries after 429, 5xx, timeouts and failed
  // connections with exponential backoff; other failures end at once. A 400 that names the other token-limit
  // field, or refuses `temperature`, changes the model's request for this and every later call. Thread-safe.
  LlmReply complete(size_t model, const std::string& system, const std::string& user) const;
  std::string url(size_t model) const { return config_.models.at(model).api_base + "/chat/completions"; }

 private:
  // What the server taught us about one model's requests (shared by the workers).
  struct Learned {
    std::string max_tokens_field;
    bool send_temperature = true;
  };
  nlohmann::json request(size_t model, const std::string& system, const std::string& user, Learned& sent) const;
  bool adapt(size_t model, const Learned& sent, const std::string& message, LlmReply& reply) const;
  std::string scrub(size_t model, std::string text) const;

  LlmConfig config_;
  std::vector<std::string> keys_;
  mutable std::mutex mutex_;
  mutable std::vector<Learned> learned_;
};

// Model choice: P(model) ∝ weight × (improvements + 1) / (uses + 2) with the bandit on, else ∝ weight.
// A dropped model (one that can never answer in this run) is never chosen. Token totals per model are kept
// with the counts, so they are saved with the run state.
class ModelEnsemble {
 public:
  explicit ModelEnsemble(const LlmConfig& config)
      : config_(config), uses_(config.models.size()), wins_(config.models.size()),
        prompt_tokens_(config.models.size()), completion_tokens_(config.models.size()),
        dropped_(config.models.size()) {}
  size_t choose(Rng& rng) const;
  void record(size_t model, bool improved);
  void add_usage(size_t model, const LlmReply& reply);
  void drop(size_t model) { dropped_.at(model) = true; }
  bool dropped(size_t model) const { return dropped_.at(model); }
  // Models not dropped whose weight can draw them.
  size_t available() const;
  const std::string& name(size_t model) const { return config_.models.at(model).name; }
  size_t size() const { return config_.models.size(); }
  // The model choice as it stands: per model name, weight, uses, improvements, dropped and the probability
  // of being drawn next (for the reports; from_json reads only the counts back).
  nlohmann::json to_json() const;
  void from_json(const nlohmann::json& j);

 private:
  std::vector<double> weights() const;  // unnormalised probabilities of choose()
  LlmConfig config_;
  std::vector<int64_t> uses_, wins_, prompt_tokens_, completion_tokens_;
  std::vector<bool> dropped_;
};

}  // namespace gqa::evolve
