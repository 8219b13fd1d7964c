// Helpers shared by the tokenizer tests: the real Qwen3 tokenizer (loaded once), fixture files, and
// readable printing of texts and ids.
#pragma once
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace gqa::test {

// The Qwen3 tokenizer from GQA_TOKENIZER_DIR, or nullptr when scripts/setup.sh has not fetched it.
inline const Tokenizer* qwen3_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = []() -> std::unique_ptr<Tokenizer> {
    if (!std::filesystem::exists(std::string(GQA_TOKENIZER_DIR) + "/tokenizer.json")) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::load(GQA_TOKENIZER_DIR));
  }();
  return tok.get();
}

#define GQA_REQUIRE_QWEN3_TOKENIZER(tok)                                                              \
  const ::gqa::Tokenizer* tok = ::gqa::test::qwen3_tokenizer();                                       \
  if (!tok) GTEST_SKIP() << "no tokenizer files in " GQA_TOKENIZER_DIR " (run scripts/setup.sh)"

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path << " (regenerate with scripts/make_tokenizer_fixtures.mjs)";
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

// JSON string form: shows newlines, tabs and invisible characters of a test text.
inline std::string quoted(const std::string& s) { return nlohmann::json(s).dump(); }

inline std::string ids_str(const std::vector<int32_t>& ids) { return nlohmann::json(ids).dump(); }

// Where two id lists first differ, with a few ids of context and what each side's tokens spell.
inline std::string describe_difference(const Tokenizer& tok, const std::vector<int32_t>& got,
                                       const std::vector<int32_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto window = [&](const std::vector<int32_t>& v) {
    std::vector<int32_t> w(v.begin() + static_cast<ptrdiff_t>(std::min(i, v.size())),
                           v.begin() + static_cast<ptrdiff_t>(std::min(i + 4, v.size())));
    return ids_str(w) + " = " + quoted(tok.decode(w));
  };
  return "first difference at token " + std::to_string(i) + ": got " + window(got) + ", expected " + window(want) +
         "\n  got      " + ids_str(got) + "\n  expected " + ids_str(want);
}

}  // namespace gqa::test
