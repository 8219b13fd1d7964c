// The real Qwen3 tokenizer against outputs of the independent JS implementation (@lenml/tokenizers),
// written by scripts/make_tokenizer_fixtures.mjs into tests/fixtures/tokenizer/.
#include <thread>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace gqa {
namespace {

using test::describe_difference;
using test::quoted;

const std::string kEncodeCases = std::string(GQA_FIXTURES_DIR) + "/tokenizer/encode_cases.jsonl";
const std::string kChatCases = std::string(GQA_FIXTURES_DIR) + "/tokenizer/chat_cases.jsonl";

TEST(Qwen3Reference, KnownIds) {
  GQA_REQUIRE_QWEN3_TOKENIZER(tok);
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{9707, 1879}));
  EXPECT_EQ(tok->token_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 151643);
  EXPECT_EQ(tok->token_id("Hello"), 9707);
  EXPECT_EQ(tok->token_id("no such token"), -1);
  EXPECT_EQ(tok->vocab_size(), 151669);
}

TEST(Qwen3Reference, EncodeMatchesReferenceOnEveryCase) {
  GQA_REQUIRE_QWEN3_TOKENIZER(tok);
  auto rows = test::read_jsonl(kEncodeCases);
  ASSERT_GE(rows.size(), 1000u);
  int failures = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string text = rows[i]["text"];
    std::vector<int32_t> want = rows[i]["ids"];
    std::vector<int32_t> got;
    try {
      got = tok->encode(text);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "case " << i << " " << quoted(text) << ": threw " << e.what();
      if (++failures >= 5) break;
      continue;
    }
    if (got != want) {
      ADD_FAILURE() << "case " << i << " (line " << i + 1 << " of encode_cases.jsonl) " << quoted(text) << "\n"
                    << describe_difference(*tok, got, want);
      if (++failures >= 5) break;  // the first few tell the story
    }
  }
}

TEST(Qwen3Reference, DecodeOfEncodeIsNfcOfInput) {
  GQA_REQUIRE_QWEN3_TOKENIZER(tok);
  auto rows = test::read_jsonl(kEncodeCases);
  int failures = 0, changed_by_nfc = 0;
  for (size_t i = 0; i < rows.size() && failures < 5; ++i) {
    std::string text = rows[i]["text"];
    std::string nfc = rows[i].value("nfc", text);
    changed_by_nfc += nfc != text;
    std::string back = tok->decode(tok->encode(text));
    if (back != nfc) {
      ++failures;
      ADD_FAILURE() << "case " << i << ": decode(encode(" << quoted(text) << ")) = " << quoted(back)
                    << ", expected " << quoted(nfc);
    }
  }
  EXPECT_GT(changed_by_nfc, 50) << "the fixtures should exercise NFC";
}

TEST(Qwen3Reference, ChatTemplateIds) {
  GQA_REQUIRE_QWEN3_TOKENIZER(tok);
  // The rendered text itself is checked in chat_template_test.cpp.
  auto rows = test::read_jsonl(kChatCases);
  ASSERT_GE(rows.size(), 20u);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<int32_t> want = rows[i]["ids"];
    auto got = tok->encode(rows[i]["text"].get<std::string>());
    EXPECT_EQ(got, want) << "chat case " << i << "\n" << describe_difference(*tok, got, want);
  }
}

TEST(Qwen3Reference, ConcurrentEncodesAgree) {
  GQA_REQUIRE_QWEN3_TOKENIZER(tok);
  auto rows = test::read_jsonl(kEncodeCases);
  // The BPE cache is shared: threads encoding at once must neither race nor see each other's words.
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < rows.size(); i += 2) {
        std::vector<int32_t> want = rows[i]["ids"];
        if (tok->encode(rows[i]["text"].get<std::string>()) != want) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(Qwen3Reference, LongInputsStayFastAndRoundTrip) {
  GQA_REQUIRE_QWEN3_TOKENIZER(tok);
  // Single pre-tokens of a megabyte (one word, one whitespace run) must not go quadratic.
  for (std::string unit : {"a", " ", "\n", "\r\n", " \n", "é", "😀", "1", "!", "<"}) {
    std::string text;
    while (text.size() < (1 << 20)) text += unit;
    auto ids = tok->encode(text);
    EXPECT_EQ(tok->decode(ids), text) << "unit " << quoted(unit);
  }
}

}  // namespace
}  // namespace gqa
