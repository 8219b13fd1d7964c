// Byte-level BPE tokenizer read from an HF tokenizer.json (Qwen2/Qwen3 style): NFC normaliser, regex
// pre-tokenizer, added/special tokens matched before BPE, byte-level decoding.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gqa {

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (and DIR/tokenizer_config.json when present, for the chat template's
  // special tokens). Throws gqa::Error "[tokenizer] FILE: ..." naming the field that is wrong.
  static Tokenizer load(const std::string& dir);
  // Same, from the JSON text of tokenizer.json (`source` names it in errors). Used by the fuzzer.
  static Tokenizer from_json_text(std::string_view tokenizer_json, const std::string& source);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Added tokens (e.g. "<|im_start|>") are recognised inside text, as HF does with
  // split_special_tokens=false. Invalid UTF-8 is an error.
  std::vector<int32_t> encode(std::string_view text) const;
  // Concatenated bytes of the tokens; may end in a partial UTF-8 sequence (see StreamDecoder).
  std::string decode_bytes(const std::vector<int32_t>& ids) const;
  // Text of the tokens; invalid or partial UTF-8 becomes U+FFFD (as HF's errors="replace").
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t vocab_size() const;  // highest id + 1, added tokens included
  // Id of a token string (vocab entry or added token), -1 if absent.
  int32_t token_id(std::string_view token) const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend class StreamDecoder;
};

// Turns a stream of token ids into text pieces that never split a UTF-8 character: bytes of an
// incomplete character are held until the next token completes it (flush() emits leftovers as U+FFFD).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer& tok_;
  std::string pending_;
};

// Qwen3's chat template, rendered exactly as its Jinja template in tokenizer_config.json renders it.
struct ChatMessage {
  std::string role;     // system | user | assistant | tool
  std::string content;
  std::string reasoning_content;  // optional, assistant only
  bool has_reasoning_content = false;
};

struct ChatOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = true;  // false appends the empty <think></think> block
};

std::string render_qwen3_chat(const std::vector<ChatMessage>& messages, const ChatOptions& opts);
// Parses a JSON list of {role, content[, reasoning_content]}; errors name the file and the index.
std::vector<ChatMessage> parse_chat_messages(std::string_view json_text, const std::string& source);

}  // namespace gqa
