// gqa::Tokenizer: the encode pipeline (added tokens -> NFC -> regex pre-tokenizer -> byte-level BPE),
// decoding, and StreamDecoder. Loading lives in tokenizer_load.cpp, BPE merging in bpe.cpp.
#include "tokenizer/tokenizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "common/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace gqa {

struct Tokenizer::Impl : tok::TokenizerState {};

namespace tok {

namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Code points below U+0300 have combining class 0 and NFC quick-check Yes, so text can be cut before
// any of them without changing its NFC. In UTF-8 they are the bytes below 0xCC that start a character.
bool starts_char_below_u0300(unsigned char c) { return c < 0x80 || (c >= 0xC0 && c < 0xCC); }

void append_nfc(std::string& out, std::string_view text) {
  utf8proc_uint8_t* nfc = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    static_cast<utf8proc_ssize_t>(text.size()), &nfc,
                                    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::unique_ptr<utf8proc_uint8_t, FreeDeleter> owned(nfc);
  if (n < 0) fail("tokenizer", "NFC normalisation failed: {}", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(nfc), static_cast<size_t>(n));
}

}  // namespace

std::string TokenizerState::normalize(std::string_view text) const {
  if (!nfc) return std::string(text);
  // Only each run of characters from U+0300 up, with the character before it (which they may compose
  // with), goes through utf8proc; the rest, usually most of the text, is copied.
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && static_cast<unsigned char>(text[j]) < 0xCC) ++j;
    if (j == text.size()) {
      out.append(text.substr(i));
      break;
    }
    size_t start = j;
    if (start > i) {
      do --start;
      while (start > i && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80);
    }
    size_t end = j + 1;
    while (end < text.size() && !starts_char_below_u0300(static_cast<unsigned char>(text[end]))) ++end;
    out.append(text.substr(i, start - i));
    append_nfc(out, text.substr(start, end - start));
    i = end;
  }
  return out;
}

void TokenizerState::pretokenize(std::string_view piece, size_t step, std::vector<int32_t>& out) const {
  if (step == splits.size()) {
    bpe.encode_word(piece, out);
    return;
  }
  // Split with behaviour Isolated: every match and every stretch between matches is a piece for the
  // next step. An empty match emits nothing but still ends the stretch before it, as in HF.
  const Regex& re = splits[step];
  size_t emitted = 0, from = 0, start = 0, end = 0;
  while (from <= piece.size() && re.search(piece, from, start, end)) {
    if (start > emitted) pretokenize(piece.substr(emitted, start - emitted), step + 1, out);
    if (end > start) {
      pretokenize(piece.substr(start, end - start), step + 1, out);
      emitted = from = end;
      continue;
    }
    emitted = start;
    if (start == piece.size()) break;
    utf8::next(piece, start);  // step over one character after an empty match
    from = start;
  }
  if (emitted < piece.size()) pretokenize(piece.substr(emitted), step + 1, out);
}

void finish_added_tokens(TokenizerState& impl) {
  impl.raw_added = {};
  impl.normalized_added = {};
  impl.added_ids.clear();
  for (const auto& t : impl.added) {
    if (static_cast<size_t>(t.id) >= impl.id_bytes.size()) {
      impl.id_bytes.resize(static_cast<size_t>(t.id) + 1);
    }
    // Added tokens decode to their own text, not through the byte-level table.
    impl.id_bytes[t.id] = t.content;
    impl.added_ids[t.content] = t.id;
    if (t.normalized) {
      // Matched against normalised text, so the token's own text is normalised too (as HF does).
      AddedToken n = t;
      n.content = impl.normalize(t.content);
      impl.normalized_added.add(n);
    } else {
      impl.raw_added.add(t);
    }
  }
}

}  // namespace tok

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json_text(std::string_view tokenizer_json, const std::string& source) {
  Tokenizer t;
  t.impl_->source = source;
  tok::load_tokenizer_json(*t.impl_, tokenizer_json);
  tok::finish_added_tokens(*t.impl_);
  return t;
}

Tokenizer Tokenizer::load(const std::string& dir) {
  std::string json_path = (std::filesystem::path(dir) / "tokenizer.json").string();
  Tokenizer t;
  t.impl_->source = json_path;
  tok::load_tokenizer_json(*t.impl_, read_file(json_path, "tokenizer"));
  std::string config_path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  if (std::filesystem::exists(config_path))
    tok::load_tokenizer_config(*t.impl_, read_file(config_path, "tokenizer"), config_path);
  tok::finish_added_tokens(*t.impl_);
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  size_t bad = utf8::first_invalid(text);
  if (bad != text.size())
    fail("tokenizer", "encode: input is not valid UTF-8 (byte {} of {}: 0x{:02X})", bad, text.size(),
         static_cast<unsigned char>(text[bad]));
  const Impl& im = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  auto on_token = [&](int32_t id) { out.push_back(id); };
  // HF order: tokens with normalized=false are found in the raw text; each stretch between them is
  // normalised, searched for tokens with normalized=true, then pre-tokenized and merged.
  im.raw_added.split(
      text,
      [&](std::string_view raw) {
        std::string normalized = im.normalize(raw);
        im.normalized_added.split(
            normalized, [&](std::string_view piece) { im.pretokenize(piece, 0, out); }, on_token);
      },
      on_token);
  return out;
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids) const {
  // Ids the tokenizer does not know (the model's padding rows past the vocabulary) decode to nothing,
  // as in HF, so sampling from a random-weight model never fails here.
  std::string out;
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < impl_->id_bytes.size()) out += impl_->id_bytes[id];
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  return utf8::replace_invalid(decode_bytes(ids));
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_bytes.size()); }

int32_t Tokenizer::token_id(std::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
  return -1;
}

std::string StreamDecoder::push(int32_t id) {
  const auto& table = tok_.impl_->id_bytes;
  if (id >= 0 && static_cast<size_t>(id) < table.size()) pending_ += table[id];
  size_t consumed = 0;
  std::string text = utf8::take_complete(pending_, consumed);
  pending_.erase(0, consumed);
  return text;
}

std::string StreamDecoder::flush() {
  std::string text = utf8::replace_invalid(pending_);
  pending_.clear();
  return text;
}

}  // namespace gqa
