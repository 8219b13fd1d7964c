// `gqa-evolve tokenize`: ids of a text (--text), of each line of a JSON-lines file (--input), or of a
// conversation rendered with Qwen3's chat template (--chat).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace gqa::cli {

namespace {
std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}
}  // namespace

Runner add_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, text, input, chat;
    bool json = false, enable_thinking = true;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "model or tokenizer directory (default: the default model's)");
  auto* text = app.add_option("--text", o->text, "text to tokenize");
  auto* input = app.add_option("--input", o->input, "JSON-lines file, one JSON string per line; prints one JSON array of ids per line");
  auto* chat = app.add_option("--chat", o->chat, "JSON file with a list of {role, content}: rendered with the chat template and the generation prompt");
  text->excludes(input)->excludes(chat);
  input->excludes(chat);
  app.add_flag("--enable-thinking,!--disable-thinking", o->enable_thinking, "with --chat: thinking on (default) or off (--enable-thinking=false)");
  app.add_flag("--json", o->json, "print JSON: {\"ids\": [...]} (with --chat also \"text\")");
  return [o, text, input, chat]() {
    std::string dir = o->model;
    if (dir.empty()) {
      dir = default_model_dir();
      if (!std::filesystem::exists(dir + "/tokenizer.json")) {
        const char* env = std::getenv("GQA_TOKENIZER_DIR");
        dir = env ? env : "assets/qwen3-tokenizer";
      }
    }
    Tokenizer tok = Tokenizer::load(dir);
    if (*input) {
      std::ifstream in(o->input);
      if (!in) fail("tokenize", "{}: cannot open", o->input);
      std::string line;
      for (int lineno = 1; std::getline(in, line); ++lineno) {
        if (line.empty()) continue;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_string())
          fail("tokenize", "{}: line {}: expected a JSON string", o->input, lineno);
        std::printf("%s\n", nlohmann::json(tok.encode(j.get<std::string>())).dump().c_str());
      }
      return 0;
    }
    if (*chat) {
      auto messages = parse_chat_messages(read_file(o->chat, "tokenize"), o->chat);
      ChatOptions opts;
      opts.enable_thinking = o->enable_thinking;
      std::string rendered = render_qwen3_chat(messages, opts);
      auto ids = tok.encode(rendered);
      if (o->json)
        std::printf("%s\n", nlohmann::json{{"text", rendered}, {"ids", ids}}.dump().c_str());
      else
        std::printf("%s\n", join_ids(ids).c_str());
      return 0;
    }
    if (!*text) fail("tokenize", "give one of --text, --input or --chat");
    auto ids = tok.encode(o->text);
    if (o->json)
      std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
    else
      std::printf("%s\n", join_ids(ids).c_str());
    return 0;
  };
}

}  // namespace gqa::cli
