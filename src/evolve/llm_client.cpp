// libcurl plumbing for chat completions and reading answers as real servers send them. The API key only
// ever goes into the Authorization header; error messages carry the URL, the HTTP status and the server's
// message (with the key cut out), never request headers.
#include "evolve/llm_client.h"

#include <curl/curl.h>

#include <cctype>
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

bool has(const std::string& text, const std::string& word) { return text.find(word) != std::string::npos; }

bool has_nocase(std::string text, const std::string& lower_word) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return has(text, lower_word);
}

// The message of an error body: OpenAI's {"error": {"message": ...}}, llama.cpp's and Ollama's variants,
// else the start of the body.
std::string server_message(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object()) {
    const auto& e = j.contains("error") ? j["error"] : j;
    if (e.is_string()) return snippet(e.get<std::string>());
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return snippet(e["message"].get<std::string>());
  }
  return snippet(body);
}

int64_t count(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : 0;
}

// Reasoning that servers leave in the content: <think>…</think> spans, a lone </think> whose opening tag
// was part of the prompt template, and an unclosed <think> of an answer cut off while reasoning.
std::string strip_think(std::string s) {
  size_t open;
  while ((open = s.find("<think>")) != std::string::npos) {
    const size_t close = s.find("</think>", open);
    if (close == std::string::npos) return s.substr(0, open);
    s.erase(open, close + 8 - open);
  }
  const size_t lone = s.rfind("</think>");
  if (lone != std::string::npos) s.erase(0, lone + 8);
  return s;
}

}  // namespace

LlmClient::LlmClient(const LlmConfig& config) : config_(config) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  for (const LlmModel& m : config_.models) {
    std::string key;
    if (!m.api_key_env.empty()) {
      const char* k = std::getenv(m.api_key_env.c_str());
      if (!k || !*k) fail("llm", "the environment variable {} (api_key_env of model '{}') is not set", m.api_key_env, m.name);
      key = k;
    }
    keys_.push_back(key);
    learned_.push_back({m.max_tokens_field, true});
  }
}

std::string LlmClient::scrub(size_t model, std::string text) const {
  const std::string& key = keys_.at(model);
  if (key.size() < 4) return text;
  for (size_t at; (at = text.find(key)) != std::string::npos;) text.replace(at, key.size(), "<key>");
  return text;
}

// The request body: extra_body first, then the fields the client owns (config validation keeps them apart).
nlohmann::json LlmClient::request(size_t model, const std::string& system, const std::string& user, Learned& sent) const {
  const LlmModel& m = config_.models.at(model);
  {
    std::lock_guard<std::mutex> l(mutex_);
    sent = learned_.at(model);
  }
  nlohmann::json req = m.extra_body;
  req["model"] = m.name;
  req["messages"] = {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}};
  req[sent.max_tokens_field] = m.max_tokens;
  if (m.temperature && sent.send_temperature) req["temperature"] = *m.temperature;
  if (!m.reasoning_effort.empty()) req["reasoning_effort"] = m.reasoning_effort;
  return req;
}

// A 400 that names the other token-limit field, or refuses the temperature: change the model's request
// and ask again. `sent` is what the refused request used: another worker may have changed it already.
bool LlmClient::adapt(size_t model, const Learned& sent, const std::string& message, LlmReply& reply) const {
  const LlmModel& m = config_.models.at(model);
  std::lock_guard<std::mutex> l(mutex_);
  Learned& now = learned_.at(model);
  const std::string other = sent.max_tokens_field == "max_tokens" ? "max_completion_tokens" : "max_tokens";
  if (has(message, other)) {
    if (now.max_tokens_field == sent.max_tokens_field) {
      now.max_tokens_field = other;
      reply.notes.push_back(fmt::format("model '{}' at {}: the server wants '{}' instead of '{}'; sending that from now on "
                                        "(set max_tokens_field: {} for this model to skip the refused request)",
                                        m.name, url(model), other, sent.max_tokens_field, other));
    }
    return true;
  }
  if (sent.send_temperature && m.temperature && has_nocase(message, "temperature") &&
      (has_nocase(message, "unsupported") || has_nocase(message, "not support"))) {
    if (now.send_temperature) {
      now.send_temperature = false;
      reply.notes.push_back(fmt::format("model '{}' at {}: the server refuses temperature {}; sending none (the server's "
                                        "default) from now on (set temperature: default for this model)",
                                        m.name, url(model), *m.temperature));
    }
    return true;
  }
  return false;
}

LlmReply LlmClient::complete(size_t model, const std::string& system, const std::string& user) const {
  const auto t0 = std::chrono::steady_clock::now();
  LlmReply reply;
  const LlmModel& m = config_.models.at(model);
  const std::string url = this->url(model);
  const std::string& key = keys_.at(model);
  double backoff = config_.retry_backoff_seconds;
  int retried = 0, adapted = 0;
  // Whether to ask again after a failure that may pass (429, 5xx, timeout, no connection).
  auto again = [&] {
    if (retried >= config_.retries) return false;
    ++retried;
    std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
    backoff *= 2;
    return true;
  };
  while (true) {
    Learned sent;
    const std::string body = request(model, system, user, sent).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    ++reply.requests;
    CURL* curl = curl_easy_init();
    if (!curl) fail("llm", "curl_easy_init failed");
    std::string response;
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    if (!key.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + key).c_str());
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
    reply.status = static_cast<int>(status);

    if (rc == CURLE_OPERATION_TIMEDOUT) {
      reply.error = fmt::format("{}: no complete response within {} s (llm.timeout_seconds)", url, config_.timeout_seconds);
      if (again()) continue;
      break;
    }
    if (rc != CURLE_OK) {
      reply.error = fmt::format("cannot reach {}: {}", url, curl_easy_strerror(rc));
      if (again()) continue;
      break;
    }
    if (status != 200) {
      reply.server_message = scrub(model, server_message(response));
      reply.error = fmt::format("{}: HTTP {}: {}", url, status, reply.server_message);
      if (status == 429 || status >= 500) {
        if (again()) continue;
        break;
      }
      if (status == 400 && adapted < 2 && adapt(model, sent, reply.server_message, reply)) {
        ++adapted;
        continue;
      }
      reply.fatal = status == 400 || status == 401 || status == 403 || status == 404;
      break;
    }
    const nlohmann::json j = nlohmann::json::parse(response, nullptr, false);
    if (j.is_discarded()) {
      reply.error = fmt::format("{}: the response is not valid JSON: {}", url, snippet(response));
      break;
    }
    if (j.contains("usage")) {
      const auto& u = j["usage"];
      reply.prompt_tokens = count(u, "prompt_tokens");
      reply.completion_tokens = count(u, "completion_tokens");
      if (u.is_object() && u.contains("completion_tokens_details"))
        reply.reasoning_tokens = count(u["completion_tokens_details"], "reasoning_tokens");
    }
    const auto* choice = j.contains("choices") && j["choices"].is_array() && !j["choices"].empty() ? &j["choices"][0] : nullptr;
    const auto* message = choice && choice->contains("message") ? &(*choice)["message"] : nullptr;
    if (!message || !message->is_object()) {
      reply.error = fmt::format("{}: the response has no choices[0].message: {}", url, snippet(response));
      break;
    }
    const auto& content = message->contains("content") ? (*message)["content"] : nlohmann::json();
    if (!content.is_null() && !content.is_string()) {
      reply.error = fmt::format("{}: choices[0].message.content is not text: {}", url, snippet(response));
      break;
    }
    reply.raw_content = scrub(model, content.is_string() ? content.get<std::string>() : "");
    for (const char* field : {"reasoning_content", "reasoning"})
      if (message->contains(field) && (*message)[field].is_string()) reply.reasoning = scrub(model, (*message)[field].get<std::string>());
    reply.content = strip_think(reply.raw_content);
    const auto& finish = choice->contains("finish_reason") ? (*choice)["finish_reason"] : nlohmann::json();
    if (finish == "length") {
      reply.error = fmt::format("{}: the answer was cut off at max_tokens {} (finish_reason \"length\"{}); raise max_tokens "
                                "for model '{}'", url, m.max_tokens,
                                reply.reasoning_tokens ? fmt::format(", {} of the tokens were reasoning", reply.reasoning_tokens) : "",
                                m.name);
      break;
    }
    reply.ok = true;
    reply.error.clear();
    break;
  }
  if (!reply.ok && reply.requests > 1) reply.error += fmt::format(" (after {} requests)", reply.requests);
  reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return reply;
}

std::vector<double> ModelEnsemble::weights() const {
  std::vector<double> w;
  for (size_t i = 0; i < config_.models.size(); ++i) {
    double p = dropped_[i] ? 0 : config_.models[i].weight;
    if (config_.bandit) p *= (static_cast<double>(wins_[i]) + 1) / (static_cast<double>(uses_[i]) + 2);
    w.push_back(p);
  }
  return w;
}

size_t ModelEnsemble::choose(Rng& rng) const { return rng.weighted(weights()); }

void ModelEnsemble::record(size_t model, bool improved) {
  ++uses_.at(model);
  if (improved) ++wins_.at(model);
}

void ModelEnsemble::add_usage(size_t model, const LlmReply& reply) {
  prompt_tokens_.at(model) += reply.prompt_tokens;
  completion_tokens_.at(model) += reply.completion_tokens;
}

size_t ModelEnsemble::available() const {
  size_t n = 0;
  for (size_t i = 0; i < config_.models.size(); ++i) n += !dropped_[i] && config_.models[i].weight > 0;
  return n;
}

nlohmann::json ModelEnsemble::to_json() const {
  nlohmann::json j = {{"uses", uses_}, {"improvements", wins_}, {"prompt_tokens", prompt_tokens_},
                      {"completion_tokens", completion_tokens_}, {"bandit", config_.bandit}};
  const std::vector<double> w = weights();
  double total = 0;
  for (double x : w) total += x;
  nlohmann::json models = nlohmann::json::array();
  for (size_t i = 0; i < config_.models.size(); ++i)
    models.push_back({{"name", config_.models[i].name}, {"weight", config_.models[i].weight}, {"uses", uses_[i]},
                      {"improvements", wins_[i]}, {"dropped", static_cast<bool>(dropped_[i])},
                      {"probability", total > 0 ? w[i] / total : 0.0}});
  j["models"] = models;
  return j;
}

// Counts of another ensemble (the config's models changed between runs) are ignored; token totals are
// absent from runs saved before they were counted.
void ModelEnsemble::from_json(const nlohmann::json& j) {
  auto uses = j.at("uses").get<std::vector<int64_t>>(), wins = j.at("improvements").get<std::vector<int64_t>>();
  if (uses.size() != uses_.size() || wins.size() != wins_.size()) return;
  uses_ = uses, wins_ = wins;
  auto pt = j.value("prompt_tokens", std::vector<int64_t>()), ct = j.value("completion_tokens", std::vector<int64_t>());
  if (pt.size() == uses_.size() && ct.size() == uses_.size()) prompt_tokens_ = pt, completion_tokens_ = ct;
}

}  // namespace gqa::evolve
