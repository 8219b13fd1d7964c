// Tokenizer behaviour on small hand-built tokenizer.json texts (merge order and formats, added-token
// flags, normalisation, pre-tokenizer splitting), decoding, StreamDecoder, and the error messages.
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace gqa {
namespace {

using nlohmann::json;

// GPT-2's byte -> character table, written out independently of the library's.
std::string byte_char(int b) {
  bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    cp = 256;
    for (int k = 0; k < b; ++k) {
      bool p = (k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF);
      if (!p) ++cp;
    }
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A byte-level BPE tokenizer: ids 0..255 are the single bytes (id == byte value), then one id per
// merge result in merge order. `merges` are pairs of byte-level strings.
json tiny_tokenizer(const std::vector<std::pair<std::string, std::string>>& merges, bool string_merges = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  json merge_list = json::array();
  int next = 256;
  for (const auto& [l, r] : merges) {
    if (!vocab.contains(l + r)) vocab[l + r] = next++;
    merge_list.push_back(string_merges ? json(l + " " + r) : json::array({l, r}));
  }
  json split = {{"type", "Split"},
                {"pattern", {{"Regex", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"}}},
                {"behavior", "Isolated"},
                {"invert", false}};
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", json::array()},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {split, byte_level}}}},
          {"post_processor", byte_level},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
            {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
            {"vocab", vocab}, {"merges", merge_list}}}};
}

json added_token(int id, const std::string& content, bool lstrip = false, bool rstrip = false,
                 bool single_word = false, bool normalized = false) {
  return {{"id", id}, {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
          {"rstrip", rstrip}, {"normalized", normalized}, {"special", true}};
}

Tokenizer make(const json& j) { return Tokenizer::from_json_text(j.dump(), "tiny.json"); }

// The message of the gqa::Error that `f` throws ("" and a test failure when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no gqa::Error thrown";
  return "";
}

const std::vector<std::pair<std::string, std::string>> kHelloMerges = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"a", "a"}, {byte_char(' '), "w"}};

std::vector<int32_t> bytes_of(std::string_view s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

TEST(TinyTokenizer, MergesApplyInRankOrderLeftmostFirst) {
  Tokenizer tok = make(tiny_tokenizer(kHelloMerges));
  // he=256 ll=257 hell=258 hello=259 aa=260 " w"=261
  EXPECT_EQ(tok.encode("hello"), (std::vector<int32_t>{259}));
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{260, 'a'}));  // equal ranks: leftmost merges first
  EXPECT_EQ(tok.encode("aaaa"), (std::vector<int32_t>{260, 260}));
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int32_t>{259, 261, 'o', 'r', 'l', 'd'}));
  // Lower rank wins even when it is further right: "el" (rank 0) before "ll" (rank 1) in "ell".
  Tokenizer t2 = make(tiny_tokenizer({{"e", "l"}, {"l", "l"}}));
  EXPECT_EQ(t2.encode("ell"), (std::vector<int32_t>{256, 'l'}));
  Tokenizer t3 = make(tiny_tokenizer({{"l", "l"}, {"e", "l"}}));
  EXPECT_EQ(t3.encode("ell"), (std::vector<int32_t>{'e', 256}));
}

TEST(TinyTokenizer, StringAndPairMergeFormatsAgree) {
  Tokenizer pairs = make(tiny_tokenizer(kHelloMerges, false));
  Tokenizer strings = make(tiny_tokenizer(kHelloMerges, true));
  for (std::string text : {"hello world", "aaaaa hell", "  he ll o\n"})
    EXPECT_EQ(pairs.encode(text), strings.encode(text)) << text;
  json bad = tiny_tokenizer(kHelloMerges, true);
  bad["model"]["merges"][2] = "he ll o";
  EXPECT_NE(error_of([&] { make(bad); }).find("model.merges[2]"), std::string::npos);
}

TEST(TinyTokenizer, PreTokenizerSplitsBeforeMerging) {
  Tokenizer tok = make(tiny_tokenizer({{"o", byte_char(' ')}, {byte_char(' '), "w"}}));
  // "o w" never merges "o " because the regex cuts before the space.
  EXPECT_EQ(tok.encode("o w"), (std::vector<int32_t>{'o', 257}));
  // An empty match still ends a piece (as in HF): with x* every character is its own piece.
  json j = tiny_tokenizer({{"a", "b"}});
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "x*";
  EXPECT_EQ(make(j).encode("ab"), (std::vector<int32_t>{'a', 'b'}));
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"String", "|"}};
  EXPECT_EQ(make(j).encode("ab|ab"), (std::vector<int32_t>{256, '|', 256}));
  // ByteLevel's own GPT-2 regex when use_regex is true and it stands alone.
  json k = tiny_tokenizer({{"b", "!"}, {"a", "b"}});  // b!=256 (rank 0), ab=257
  k["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(make(k).encode("ab!"), (std::vector<int32_t>{257, '!'}));  // "ab" | "!"
  k["pre_tokenizer"]["use_regex"] = false;  // one piece: "b!" outranks "ab"
  EXPECT_EQ(make(k).encode("ab!"), (std::vector<int32_t>{'a', 256}));
}

TEST(TinyTokenizer, AddedTokensAreMatchedInRawTextLongestFirst) {
  json j = tiny_tokenizer(kHelloMerges);
  j["added_tokens"] = {added_token(300, "<s>"), added_token(301, "<s>x")};
  Tokenizer tok = make(j);
  EXPECT_EQ(tok.encode("a<s>xhello<s>"), (std::vector<int32_t>{'a', 301, 259, 300}));
  EXPECT_EQ(tok.encode("<s"), (std::vector<int32_t>{'<', 's'}));
  EXPECT_EQ(tok.decode({300, 'a', 301}), "<s>a<s>x");
  EXPECT_EQ(tok.token_id("<s>x"), 301);
  EXPECT_EQ(tok.vocab_size(), 302);
}

TEST(TinyTokenizer, AddedTokenStripAndSingleWordFlags) {
  json j = tiny_tokenizer({});
  j["added_tokens"] = {added_token(300, "<l>", true, false), added_token(301, "<r>", false, true),
                       added_token(302, "<w>", false, false, true)};
  Tokenizer tok = make(j);
  EXPECT_EQ(tok.encode("a \t <l>b"), (std::vector<int32_t>{'a', 300, 'b'}));
  EXPECT_EQ(tok.encode("a<r> \n b"), (std::vector<int32_t>{'a', 301, 'b'}));
  EXPECT_EQ(tok.encode("a <w> b"), (std::vector<int32_t>{'a', ' ', 302, ' ', 'b'}));
  EXPECT_EQ(tok.encode("a<w>"), bytes_of("a<w>"));  // inside a word: not a token
  EXPECT_EQ(tok.encode("<w>b"), bytes_of("<w>b"));
}

TEST(TinyTokenizer, NormalizationAndNormalizedAddedTokens) {
  json j = tiny_tokenizer({});
  j["added_tokens"] = {added_token(300, "\xC3\xA9", false, false, false, true),    // "é", normalized
                       added_token(301, "\xC3\xB1", false, false, false, false)};  // "ñ", raw
  Tokenizer tok = make(j);
  EXPECT_EQ(tok.encode("e\xCC\x81"), (std::vector<int32_t>{300}));  // e + U+0301 -> é after NFC
  EXPECT_EQ(tok.encode("\xC3\xA9"), (std::vector<int32_t>{300}));
  EXPECT_EQ(tok.encode("\xC3\xB1"), (std::vector<int32_t>{301}));
  EXPECT_EQ(tok.encode("n\xCC\x83"), (std::vector<int32_t>{0xC3, 0xB1}));  // NFC gives ñ, but too late to match
  j["normalizer"] = nullptr;
  EXPECT_EQ(make(j).encode("e\xCC\x81"), bytes_of("e\xCC\x81"));
}

TEST(TinyTokenizer, IgnoreMergesTakesWholeWordsFromTheVocab) {
  json j = tiny_tokenizer({{"x", "y"}});
  j["model"]["vocab"]["xyz"] = 400;
  EXPECT_EQ(make(j).encode("xyz"), (std::vector<int32_t>{256, 'z'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(make(j).encode("xyz"), (std::vector<int32_t>{400}));
}

TEST(TokenizerDecode, UnknownIdsAreSkippedAndBadBytesReplaced) {
  Tokenizer tok = make(tiny_tokenizer({}));
  EXPECT_EQ(tok.decode({'h', 'i', 99999, -5, '!'}), "hi!");
  EXPECT_EQ(tok.decode_bytes({0xE4, 0xBD}), "\xE4\xBD");
  EXPECT_EQ(tok.decode({0xE4, 0xBD}), "\xEF\xBF\xBD");  // one U+FFFD for a truncated character
  EXPECT_EQ(tok.decode({0xFF, 'a', 0xE4, 'b', 0xC0, 0xAF}),
            "\xEF\xBF\xBD" "a" "\xEF\xBF\xBD" "b" "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(StreamDecoder, HoldsIncompleteCharactersUntilComplete) {
  Tokenizer tok = make(tiny_tokenizer({}));
  StreamDecoder s(tok);
  EXPECT_EQ(s.push(0xE4), "");  // 你 = E4 BD A0
  EXPECT_EQ(s.push(0xBD), "");
  EXPECT_EQ(s.push(0xA0), "\xE4\xBD\xA0");
  EXPECT_EQ(s.push(0xF0), "");  // 😀 = F0 9F 98 80, then 'x'
  EXPECT_EQ(s.push(0x9F), "");
  EXPECT_EQ(s.push(0x98), "");
  EXPECT_EQ(s.push(0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(s.push('x'), "x");
  EXPECT_EQ(s.push(0xFF), "\xEF\xBF\xBD");  // can never become valid: replaced at once
  EXPECT_EQ(s.push(0xE4), "");
  EXPECT_EQ(s.push('a'), "\xEF\xBF\xBD" "a");  // the held byte cannot be continued by 'a'
  EXPECT_EQ(s.push(0xE4), "");
  EXPECT_EQ(s.push(0xBD), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(s.flush(), "");
}

TEST(StreamDecoder, RealTokensSplittingCharactersMatchDecode) {
  GQA_REQUIRE_QWEN3_TOKENIZER(tok);
  std::string text = "Emoji 👨‍👩‍👧‍👦 🇯🇵 👍🏽, CJK 機械学習 𠀋𪚲, Hangul 토크나이저, Thai กรุงเทพมหานคร.";
  auto ids = tok->encode(text);
  int partial_tokens = 0;
  for (int32_t id : ids) partial_tokens += tok->decode({id}) != tok->decode_bytes({id});
  ASSERT_GT(partial_tokens, 3) << "the text should contain tokens that split characters";
  // The tiny tokenizer maps ids to bytes one to one: its decode() leaves exactly valid UTF-8 unchanged.
  Tokenizer bytes = make(tiny_tokenizer({}));
  auto is_valid_utf8 = [&](const std::string& piece) {
    return bytes.decode(bytes_of(piece)) == piece;
  };
  StreamDecoder s(*tok);
  std::string streamed;
  for (int32_t id : ids) {
    std::string piece = s.push(id);
    EXPECT_TRUE(is_valid_utf8(piece)) << "piece is not whole UTF-8: " << test::quoted(piece);
    streamed += piece;
  }
  streamed += s.flush();
  EXPECT_EQ(streamed, text);
}

TEST(TokenizerErrors, MissingFilesAndBadJsonNameTheFile) {
  std::string msg = error_of([] { Tokenizer::load("/nonexistent-dir"); });
  EXPECT_EQ(msg.rfind("[tokenizer] /nonexistent-dir/tokenizer.json: cannot open", 0), 0u) << msg;

  msg = error_of([] { Tokenizer::from_json_text("{\"model\": [1,", "broken.json"); });
  EXPECT_EQ(msg.rfind("[tokenizer] broken.json: invalid JSON", 0), 0u) << msg;

  auto dir = std::filesystem::temp_directory_path() / "gqa_tokenizer_test_config";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << tiny_tokenizer({}).dump();
  std::ofstream(dir / "tokenizer_config.json") << "{ not json";
  msg = error_of([&] { Tokenizer::load(dir.string()); });
  EXPECT_NE(msg.find("tokenizer_config.json: invalid JSON"), std::string::npos) << msg;
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"added_tokens_decoder": {"300": {"content": "<new>", "special": true}}})";
  EXPECT_EQ(Tokenizer::load(dir.string()).encode("a<new>"), (std::vector<int32_t>{'a', 300}));
  std::filesystem::remove_all(dir);
}

TEST(TokenizerErrors, UnsupportedConfigurationNamesTheField) {
  auto expect_error = [](json j, const std::string& expected) {
    std::string msg = error_of([&] { make(j); });
    EXPECT_EQ(msg.rfind("[tokenizer] tiny.json: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(expected), std::string::npos) << "message: " << msg << "\nexpected to contain: " << expected;
  };
  json j = tiny_tokenizer({{"a", "b"}});
  json k = j;
  k["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}};
  expect_error(k, "pre_tokenizer type 'Metaspace' is not supported");
  k = j;
  k["normalizer"] = {{"type", "NFKC"}};
  expect_error(k, "normalizer type 'NFKC' is not supported");
  k = j;
  k["model"]["type"] = "WordPiece";
  expect_error(k, "model type 'WordPiece' is not supported");
  k = j;
  k["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  expect_error(k, "pre_tokenizer.pretokenizers[0].behavior 'Removed' is not supported");
  k = j;
  k["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expect_error(k, "pre_tokenizer.pretokenizers[0].pattern.Regex: cannot compile");
  k = j;
  k["pre_tokenizer"] = k["pre_tokenizer"]["pretokenizers"][0];
  expect_error(k, "pre_tokenizer has no ByteLevel step");
  k = j;
  k["model"]["merges"].push_back({"a", "zz"});
  expect_error(k, "model.merges[1] 'zz' is not in model.vocab");
  k = j;
  k["model"]["vocab"]["huge"] = 1LL << 40;
  expect_error(k, "model.vocab[\"huge\"] id 1099511627776 is out of range");
  k = j;
  k["model"]["dropout"] = 0.1;
  expect_error(k, "model.dropout must be null");
  k = j;
  k["frobnicate"] = true;
  expect_error(k, "has unknown field 'frobnicate'");
  k = j;
  k["decoder"] = {{"type", "WordPiece"}};
  expect_error(k, "decoder type 'WordPiece' is not supported");
  k = j;
  k["added_tokens"] = {{{"id", 300}}};
  expect_error(k, "added_tokens[0].content must be a non-empty string");
}

TEST(TokenizerErrors, InvalidUtf8InputIsRejected) {
  Tokenizer tok = make(tiny_tokenizer({}));
  std::vector<std::string> inputs = {"\xFF", "ok\x80", "\xC0\xAF", "\xE0\x80\x80", "\xED\xA0\x80", "\xE4\xBD",
                                     "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", std::string("a\0\xC3", 3)};
  for (const std::string& bad : inputs) {
    std::string msg = error_of([&] { tok.encode(bad); });
    EXPECT_EQ(msg.rfind("[tokenizer] encode: input is not valid UTF-8", 0), 0u) << test::quoted(msg);
  }
  EXPECT_EQ(tok.encode(std::string("a\0b", 3)), (std::vector<int32_t>{'a', 0, 'b'}));
  EXPECT_EQ(tok.encode("\xF4\x8F\xBF\xBF").size(), 4u);  // U+10FFFF is valid
}

}  // namespace
}  // namespace gqa
