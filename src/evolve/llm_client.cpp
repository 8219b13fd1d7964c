// libcurl plumbing for chat completions. The API key only ever goes into the Authorization header; error
// messages carry the URL, the HTTP status and the start of the body, never request headers.
#include "evolve/llm_client.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "common/error.h"

namespace gqa::evolve {

namespace {

size_t on_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string snippet(const std::string& s) {
  std::string t = s.size() > 300 ? s.substr(0, 300) + "..." : s;
  for (char& c : t)
    if (c == '\n' || c == '\r') c = ' ';
  return t;
}

}  // namespace

LlmClient::LlmClient(const LlmConfig& config) : config_(config) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (!config_.api_key_env.empty()) {
    const char* key = std::getenv(config_.api_key_env.c_str());
    if (!key || !*key) fail("llm", "the environment variable {} (llm.api_key_env) is not set", config_.api_key_env);
    api_key_ = key;
  }
  while (!config_.api_base.empty() && config_.api_base.back() == '/') config_.api_base.pop_back();
}

LlmReply LlmClient::complete(const std::string& model, const std::string& system, const std::string& user) const {
  const auto t0 = std::chrono::steady_clock::now();
  LlmReply reply;
  const std::string url = config_.api_base + "/chat/completions";
  nlohmann::json req = {{"model", model},
                        {"messages", {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}}},
                        {"temperature", config_.temperature},
                        {"max_tokens", config_.max_tokens}};
  const std::string body = req.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  double backoff = config_.retry_backoff_seconds;
  for (int attempt = 0; attempt <= config_.retries; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
      backoff *= 2;
    }
    ++reply.requests;
    CURL* curl = curl_easy_init();
    if (!curl) fail("llm", "curl_easy_init failed");
    std::string response;
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    if (!api_key_.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + api_key_).c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.timeout_seconds * 1000));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // worker threads: no SIGALRM-based resolver timeouts
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);

    if (rc == CURLE_OPERATION_TIMEDOUT) {
      reply.error = fmt::format("{}: no complete response within {} s (llm.timeout_seconds)", url, config_.timeout_seconds);
      continue;
    }
    if (rc != CURLE_OK) {
      reply.error = fmt::format("cannot reach {}: {}", url, curl_easy_strerror(rc));
      continue;
    }
    if (status == 429 || status >= 500) {
      reply.error = fmt::format("{}: HTTP {}: {}", url, status, snippet(response));
      continue;
    }
    if (status != 200) {
      reply.error = fmt::format("{}: HTTP {}: {}", url, status, snippet(response));
      break;
    }
    const nlohmann::json j = nlohmann::json::parse(response, nullptr, false);
    if (j.is_discarded()) {
      reply.error = fmt::format("{}: the response is not valid JSON: {}", url, snippet(response));
      break;
    }
    try {
      reply.content = j.at("choices").at(0).at("message").at("content").get<std::string>();
      reply.ok = true;
      reply.error.clear();
    } catch (const std::exception&) {
      reply.error = fmt::format("{}: the response has no choices[0].message.content: {}", url, snippet(response));
    }
    break;
  }
  if (!reply.ok && reply.requests > 1) reply.error += fmt::format(" (after {} requests)", reply.requests);
  reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return reply;
}

size_t ModelEnsemble::choose(Rng& rng) const {
  std::vector<double> w;
  for (size_t i = 0; i < config_.models.size(); ++i) {
    double p = config_.models[i].weight;
    if (config_.bandit) p *= (static_cast<double>(wins_[i]) + 1) / (static_cast<double>(uses_[i]) + 2);
    w.push_back(p);
  }
  return rng.weighted(w);
}

void ModelEnsemble::record(size_t model, bool improved) {
  ++uses_.at(model);
  if (improved) ++wins_.at(model);
}

nlohmann::json ModelEnsemble::to_json() const { return {{"uses", uses_}, {"improvements", wins_}}; }

void ModelEnsemble::from_json(const nlohmann::json& j) {
  auto uses = j.at("uses").get<std::vector<int64_t>>(), wins = j.at("improvements").get<std::vector<int64_t>>();
  if (uses.size() == uses_.size() && wins.size() == wins_.size()) uses_ = uses, wins_ = wins;
}

}  // namespace gqa::evolve
