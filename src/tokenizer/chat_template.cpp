// Qwen3's chat template written out in C++ (the Jinja template in tokenizer_config.json, without its
// `tools` branch), and the parser of JSON message lists that feeds it.
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace gqa {

namespace {

// Python's str.lstrip('\n') / rstrip('\n') / strip('\n'), which the template calls.
std::string_view lstrip_newlines(std::string_view s) {
  size_t i = s.find_first_not_of('\n');
  return i == std::string_view::npos ? std::string_view() : s.substr(i);
}
std::string_view rstrip_newlines(std::string_view s) {
  size_t i = s.find_last_not_of('\n');
  return i == std::string_view::npos ? std::string_view() : s.substr(0, i + 1);
}
std::string_view strip_newlines(std::string_view s) { return rstrip_newlines(lstrip_newlines(s)); }

// s.split(sep)[-1] and s.split(sep)[0].
std::string_view after_last(std::string_view s, std::string_view sep) {
  size_t i = s.rfind(sep);
  return i == std::string_view::npos ? s : s.substr(i + sep.size());
}
std::string_view before_first(std::string_view s, std::string_view sep) {
  size_t i = s.find(sep);
  return i == std::string_view::npos ? s : s.substr(0, i);
}

bool known_role(std::string_view role) {
  return role == "system" || role == "user" || role == "assistant" || role == "tool";
}

// A user turn that only carries tool output does not count as the user's query.
bool is_tool_response(std::string_view content) {
  return content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
}

}  // namespace

std::string render_qwen3_chat(const std::vector<ChatMessage>& messages, const ChatOptions& opts) {
  if (messages.empty()) fail("chat", "no messages to render");
  const size_t n = messages.size();
  for (size_t i = 0; i < n; ++i) {
    if (!known_role(messages[i].role))
      fail("chat", "message {}: role '{}' is not one of system, user, assistant, tool", i, messages[i].role);
  }
  std::string out;
  if (messages[0].role == "system") out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";

  // Thinking is kept only for assistant turns after the last real user query (multi-step tool use).
  size_t last_query_index = n - 1;
  for (size_t k = n; k-- > 0;) {
    if (messages[k].role == "user" && !is_tool_response(messages[k].content)) {
      last_query_index = k;
      break;
    }
  }

  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& m = messages[i];
    const bool last = i + 1 == n;
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string_view content = m.content;
      std::string_view reasoning;
      if (m.has_reasoning_content) {
        reasoning = m.reasoning_content;
      } else if (content.find("</think>") != std::string_view::npos) {
        content = lstrip_newlines(after_last(m.content, "</think>"));
        reasoning = lstrip_newlines(after_last(rstrip_newlines(before_first(m.content, "</think>")), "<think>"));
      }
      out += "<|im_start|>assistant\n";
      if (i > last_query_index && (last || !reasoning.empty())) {
        out += "<think>\n";
        out += strip_newlines(reasoning);
        out += "\n</think>\n\n";
        out += lstrip_newlines(content);
      } else {
        out += content;
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {  // consecutive tool results share one user turn
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (last || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (opts.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!opts.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

std::vector<ChatMessage> parse_chat_messages(std::string_view json_text, const std::string& source) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    fail("chat", "{}: invalid JSON: {}", source, e.what());
  }
  if (!root.is_array()) fail("chat", "{}: expected a JSON list of messages", source);
  if (root.empty()) fail("chat", "{}: the message list is empty", source);
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < root.size(); ++i) {
    const auto& j = root[i];
    if (!j.is_object()) fail("chat", "{}: message {}: must be an object", source, i);
    for (const auto& [key, value] : j.items()) {
      if (key != "role" && key != "content" && key != "reasoning_content")
        fail("chat", "{}: message {}: field '{}' is not supported (only role, content, reasoning_content)",
             source, i, key);
    }
    ChatMessage m;
    auto role = j.find("role");
    if (role == j.end() || !role->is_string()) fail("chat", "{}: message {}: 'role' must be a string", source, i);
    m.role = role->get<std::string>();
    if (!known_role(m.role))
      fail("chat", "{}: message {}: role '{}' is not one of system, user, assistant, tool", source, i, m.role);
    auto content = j.find("content");
    if (content == j.end() || !content->is_string())
      fail("chat", "{}: message {}: 'content' must be a string", source, i);
    m.content = content->get<std::string>();
    if (auto rc = j.find("reasoning_content"); rc != j.end() && !rc->is_null()) {
      if (!rc->is_string()) fail("chat", "{}: message {}: 'reasoning_content' must be a string", source, i);
      if (m.role != "assistant")
        fail("chat", "{}: message {}: 'reasoning_content' is only allowed on assistant messages", source, i);
      m.reasoning_content = rc->get<std::string>();
      m.has_reasoning_content = true;
    }
    messages.push_back(std::move(m));
  }
  return messages;
}

}  // namespace gqa
