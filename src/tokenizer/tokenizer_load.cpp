// Reads tokenizer.json (and tokenizer_config.json's added_tokens_decoder) into Tokenizer::Impl. Every
// field is checked; what the tokenizer cannot honour is an error naming the field, never ignored.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <initializer_list>

#include "common/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace gqa::tok {

namespace {

using json = nlohmann::json;

// Ids index dense tables, so a corrupt file must not be able to ask for billions of entries.
constexpr int64_t kMaxTokenId = (1 << 24) - 1;

// GPT-2's pre-tokenizer regex, which ByteLevel applies itself when use_regex is true.
constexpr std::string_view kByteLevelRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The byte <-> character table of byte-level BPE: printable Latin-1 bytes stand for themselves, the
// other 68 bytes take the code points from U+0100 upwards, in byte order.
struct ByteLevelTable {
  std::array<uint32_t, 256> byte_to_char{};
  std::array<int16_t, 324> char_to_byte{};  // indexed by code point; -1 where no byte maps
  ByteLevelTable() {
    char_to_byte.fill(-1);
    uint32_t next_extra = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_to_char[b] = printable ? static_cast<uint32_t>(b) : next_extra++;
      char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteLevelTable& byte_level() {
  static const ByteLevelTable table;
  return table;
}

// Bytes a byte-level token string stands for. Like HF's decoder, a token holding a character outside
// the table decodes to its own UTF-8 text.
std::string byte_level_decode(std::string_view token) {
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    uint32_t c = utf8::next(token, i);
    if (c >= byte_level().char_to_byte.size() || byte_level().char_to_byte[c] < 0) return std::string(token);
    out.push_back(static_cast<char>(byte_level().char_to_byte[c]));
  }
  return out;
}

struct Reader {
  const std::string& source;

  [[noreturn]] void error(const std::string& field, const std::string& what) const {
    fail("tokenizer", "{}: {} {}", source, field, what);
  }
  void allow_keys(const json& obj, const std::string& field, std::initializer_list<std::string_view> keys) const {
    for (const auto& [key, value] : obj.items()) {
      if (std::find(keys.begin(), keys.end(), key) == keys.end())
        error(field, fmt::format("has unknown field '{}'", key));
    }
  }
  const json& object(const json& j, const std::string& field) const {
    if (!j.is_object()) error(field, "must be an object");
    return j;
  }
  std::string type_of(const json& obj, const std::string& field) const {
    object(obj, field);
    auto it = obj.find("type");
    if (it == obj.end() || !it->is_string()) error(field, "needs a string 'type'");
    return it->get<std::string>();
  }
  bool boolean(const json& obj, const char* key, const std::string& field, bool fallback) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) error(field + "." + key, "must be true or false");
    return it->get<bool>();
  }
  int32_t id(const json& j, const std::string& field) const {
    if (!j.is_number_integer()) error(field, "must be an integer id");
    auto v = j.get<int64_t>();
    if (v < 0 || v > kMaxTokenId) error(field, fmt::format("id {} is out of range 0..{}", v, kMaxTokenId));
    return static_cast<int32_t>(v);
  }
  [[noreturn]] void unsupported(const std::string& field, const std::string& type, std::string_view supported) const {
    fail("tokenizer", "{}: {} type '{}' is not supported (supported: {})", source, field, type, supported);
  }
};

void read_normalizer(const Reader& r, const json& j, const std::string& field, TokenizerState& impl) {
  if (j.is_null()) return;
  std::string type = r.type_of(j, field);
  if (type == "NFC") {
    r.allow_keys(j, field, {"type"});
    impl.nfc = true;
  } else if (type == "Sequence") {
    r.allow_keys(j, field, {"type", "normalizers"});
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) r.error(field + ".normalizers", "must be a list");
    for (size_t i = 0; i < it->size(); ++i)
      read_normalizer(r, (*it)[i], fmt::format("{}.normalizers[{}]", field, i), impl);
  } else {
    r.unsupported(field, type, "NFC, Sequence");
  }
}

// Keys of the ByteLevel pre-tokenizer/post-processor/decoder. trim_offsets only moves offsets, which
// this tokenizer does not report, so any value is fine.
void read_byte_level_common(const Reader& r, const json& j, const std::string& field) {
  r.allow_keys(j, field, {"type", "add_prefix_space", "trim_offsets", "use_regex"});
  if (r.boolean(j, "add_prefix_space", field, false))
    r.error(field + ".add_prefix_space", "= true is not supported");
}

// Appends the Split steps of the pre-tokenizer; `done` becomes true at the ByteLevel step, which must
// come last because it turns text into byte-level characters.
void read_pre_tokenizer(const Reader& r, const json& j, const std::string& field, TokenizerState& impl, bool& done) {
  std::string type = r.type_of(j, field);
  if (done) r.error(field, fmt::format("(type '{}') comes after the ByteLevel step, which must be last", type));
  if (type == "Sequence") {
    r.allow_keys(j, field, {"type", "pretokenizers"});
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) r.error(field + ".pretokenizers", "must be a list");
    for (size_t i = 0; i < it->size(); ++i)
      read_pre_tokenizer(r, (*it)[i], fmt::format("{}.pretokenizers[{}]", field, i), impl, done);
  } else if (type == "Split") {
    r.allow_keys(j, field, {"type", "pattern", "behavior", "invert"});
    auto behavior = j.find("behavior");
    if (behavior == j.end() || !behavior->is_string()) r.error(field + ".behavior", "must be a string");
    if (*behavior != "Isolated")
      r.error(field + ".behavior", fmt::format("'{}' is not supported (only 'Isolated')", behavior->get<std::string>()));
    if (r.boolean(j, "invert", field, false)) r.error(field + ".invert", "= true is not supported");
    auto pattern = j.find("pattern");
    if (pattern == j.end() || !pattern->is_object() || pattern->size() != 1)
      r.error(field + ".pattern", "must be {\"Regex\": ...} or {\"String\": ...}");
    const std::string& kind = pattern->begin().key();
    const json& value = pattern->begin().value();
    if ((kind != "Regex" && kind != "String") || !value.is_string())
      r.error(field + ".pattern", "must be {\"Regex\": ...} or {\"String\": ...}");
    std::string what = fmt::format("{}: {}.pattern.{}", r.source, field, kind);
    impl.splits.emplace_back(value.get<std::string>(), kind == "String", what);
  } else if (type == "ByteLevel") {
    read_byte_level_common(r, j, field);
    if (r.boolean(j, "use_regex", field, true))
      impl.splits.emplace_back(kByteLevelRegex, false, fmt::format("{}: {} (GPT-2 regex)", r.source, field));
    done = true;
  } else {
    r.unsupported(field, type, "Sequence, Split, ByteLevel");
  }
}

void read_bpe(const Reader& r, json& model, TokenizerState& impl) {
  std::string type = r.type_of(model, "model");
  if (type != "BPE") r.unsupported("model", type, "BPE");
  r.allow_keys(model, "model", {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
                                "fuse_unk", "byte_fallback", "ignore_merges", "vocab", "merges"});
  if (auto it = model.find("dropout"); it != model.end() && !it->is_null() && !(it->is_number() && *it == 0))
    r.error("model.dropout", "must be null (BPE dropout is not supported)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    if (it != model.end() && !it->is_null() && *it != "") r.error(std::string("model.") + key, "must be empty");
  }
  if (r.boolean(model, "byte_fallback", "model", false)) r.error("model.byte_fallback", "= true is not supported");
  impl.bpe.fuse_unk = r.boolean(model, "fuse_unk", "model", false);
  impl.bpe.ignore_merges = r.boolean(model, "ignore_merges", "model", false);

  auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) r.error("model.vocab", "must be an object of token: id");
  impl.vocab.reserve(vocab_it->size());
  int32_t max_id = -1;
  for (auto& [token, id_json] : vocab_it->items()) {
    int32_t id = r.id(id_json, fmt::format("model.vocab[\"{}\"]", token));
    impl.vocab.emplace(token, id);
    max_id = std::max(max_id, id);
  }
  impl.id_bytes.assign(static_cast<size_t>(max_id + 1), {});
  std::vector<bool> seen(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : impl.vocab) {
    if (seen[id]) r.error("model.vocab", fmt::format("uses id {} twice ('{}')", id, token));
    seen[id] = true;
    impl.id_bytes[id] = byte_level_decode(token);
    if (impl.bpe.ignore_merges) impl.bpe.word_ids.emplace(impl.id_bytes[id], id);
  }
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::append(ch, byte_level().byte_to_char[b]);
    auto it = impl.vocab.find(ch);
    impl.bpe.byte_ids[b] = it == impl.vocab.end() ? -1 : it->second;
  }
  if (auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
    if (!it->is_string()) r.error("model.unk_token", "must be a string or null");
    auto unk = impl.vocab.find(it->get<std::string>());
    if (unk == impl.vocab.end()) r.error("model.unk_token", fmt::format("'{}' is not in model.vocab", it->get<std::string>()));
    impl.bpe.unk_id = unk->second;
  }

  auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) r.error("model.merges", "must be a list");
  auto lookup = [&](const std::string& token, const std::string& field) {
    auto it = impl.vocab.find(token);
    if (it == impl.vocab.end()) r.error(field, fmt::format("'{}' is not in model.vocab", token));
    return it->second;
  };
  for (size_t i = 0; i < merges_it->size(); ++i) {
    const json& m = (*merges_it)[i];
    std::string field = fmt::format("model.merges[{}]", i);
    std::string left, right;
    // tokenizers >= 0.20 writes [left, right]; older files write "left right".
    if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else if (m.is_string()) {
      const auto& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        r.error(field, "must be \"left right\" (two tokens separated by one space)");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else {
      r.error(field, "must be [left, right] or \"left right\"");
    }
    int32_t l = lookup(left, field), rr = lookup(right, field), merged = lookup(left + right, field);
    // A repeated pair takes its last rank, as HF's map construction does.
    impl.bpe.merges.insert_or_assign(l, rr, Merge{static_cast<int32_t>(i), merged});
  }
}

AddedToken read_added_token(const Reader& r, const json& j, const std::string& field, const json* id_json) {
  r.object(j, field);
  r.allow_keys(j, field, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
  AddedToken t;
  auto id_it = j.find("id");
  if (!id_json) {
    if (id_it == j.end()) r.error(field, "needs an 'id'");
    id_json = &*id_it;
  }
  t.id = r.id(*id_json, field + ".id");
  auto content = j.find("content");
  if (content == j.end() || !content->is_string() || content->get_ref<const std::string&>().empty())
    r.error(field + ".content", "must be a non-empty string");
  t.content = content->get<std::string>();
  t.special = r.boolean(j, "special", field, false);
  t.single_word = r.boolean(j, "single_word", field, false);
  t.lstrip = r.boolean(j, "lstrip", field, false);
  t.rstrip = r.boolean(j, "rstrip", field, false);
  t.normalized = r.boolean(j, "normalized", field, !t.special);  // HF's default
  return t;
}

json parse_json(std::string_view text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("tokenizer", "{}: invalid JSON: {}", source, e.what());
  }
}

}  // namespace

void load_tokenizer_json(TokenizerState& impl, std::string_view json_text) {
  Reader r{impl.source};
  json root = parse_json(json_text, impl.source);
  r.object(root, "top level");
  r.allow_keys(root, "top level", {"version", "truncation", "padding", "added_tokens", "normalizer",
                                   "pre_tokenizer", "post_processor", "decoder", "model"});
  for (const char* key : {"truncation", "padding"}) {
    if (auto it = root.find(key); it != root.end() && !it->is_null()) r.error(key, "must be null (not supported)");
  }
  auto model = root.find("model");
  if (model == root.end()) r.error("model", "is missing");
  read_bpe(r, *model, impl);

  read_normalizer(r, root.value("normalizer", json()), "normalizer", impl);

  auto pre = root.find("pre_tokenizer");
  if (pre == root.end() || pre->is_null()) r.error("pre_tokenizer", "is missing (a ByteLevel step is required)");
  bool byte_level_seen = false;
  read_pre_tokenizer(r, *pre, "pre_tokenizer", impl, byte_level_seen);
  if (!byte_level_seen) r.error("pre_tokenizer", "has no ByteLevel step (only byte-level BPE is supported)");

  if (auto post = root.find("post_processor"); post != root.end() && !post->is_null()) {
    std::string type = r.type_of(*post, "post_processor");
    if (type != "ByteLevel") r.unsupported("post_processor", type, "ByteLevel, null");
    read_byte_level_common(r, *post, "post_processor");
  }
  auto decoder = root.find("decoder");
  if (decoder == root.end() || decoder->is_null()) r.error("decoder", "is missing (must be ByteLevel)");
  std::string decoder_type = r.type_of(*decoder, "decoder");
  if (decoder_type != "ByteLevel") r.unsupported("decoder", decoder_type, "ByteLevel");
  read_byte_level_common(r, *decoder, "decoder");

  if (auto added = root.find("added_tokens"); added != root.end() && !added->is_null()) {
    if (!added->is_array()) r.error("added_tokens", "must be a list");
    for (size_t i = 0; i < added->size(); ++i)
      impl.added.push_back(read_added_token(r, (*added)[i], fmt::format("added_tokens[{}]", i), nullptr));
  }
}

void load_tokenizer_config(TokenizerState& impl, std::string_view json_text, const std::string& source) {
  // Only added_tokens_decoder matters to encoding: transformers adds those tokens to the ones in
  // tokenizer.json. The other keys configure transformers' Python side and are not read.
  Reader r{source};
  json root = parse_json(json_text, source);
  r.object(root, "top level");
  auto decoder = root.find("added_tokens_decoder");
  if (decoder == root.end() || decoder->is_null()) return;
  r.object(*decoder, "added_tokens_decoder");
  for (const auto& [key, value] : decoder->items()) {
    std::string field = fmt::format("added_tokens_decoder[\"{}\"]", key);
    char* end = nullptr;
    long long id = std::strtoll(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0') r.error(field, "key must be a token id");
    json id_json = id;
    AddedToken t = read_added_token(r, value, field, &id_json);
    auto same_id = std::find_if(impl.added.begin(), impl.added.end(), [&](const auto& a) { return a.id == t.id; });
    if (same_id != impl.added.end()) {
      if (same_id->content != t.content)
        r.error(field, fmt::format("content '{}' differs from '{}' in {}", t.content, same_id->content, impl.source));
      continue;  // tokenizer.json's entry, flags included, stays authoritative
    }
    impl.added.push_back(std::move(t));
  }
}

}  // namespace gqa::tok
