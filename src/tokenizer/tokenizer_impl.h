// Internal state of gqa::Tokenizer shared by its .cpp files: the added-token matcher, the compiled
// pre-tokenizer regexes and the byte-level BPE model. Not part of the public API.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

struct pcre2_real_code_8;

namespace gqa::tok {

// Hash/equality that let maps keyed by std::string be probed with a string_view without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Finds added tokens in text, leftmost-longest (as HF's Aho-Corasick matcher does), honouring
// single_word / lstrip / rstrip.
class AddedTokenMatcher {
 public:
  void add(const AddedToken& t);
  bool empty() const { return tokens_.empty(); }
  // Calls on_text(segment) for each stretch of text between tokens and on_token(id) for each token,
  // in order. Whitespace taken by lstrip/rstrip belongs to the token and reaches neither callback.
  template <class OnText, class OnToken>
  void split(std::string_view text, OnText&& on_text, OnToken&& on_token) const;

 private:
  struct Match {
    size_t start, stop;
    int32_t id;
  };
  // Next token at or after `from` that is not rejected by single_word; false when there is none.
  bool find(std::string_view text, size_t from, size_t segment_start, Match& m) const;
  std::vector<AddedToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices into tokens_, longest first
};

template <class OnText, class OnToken>
void AddedTokenMatcher::split(std::string_view text, OnText&& on_text, OnToken&& on_token) const {
  size_t segment_start = 0;
  Match m;
  while (!tokens_.empty() && find(text, segment_start, segment_start, m)) {
    if (m.start > segment_start) on_text(text.substr(segment_start, m.start - segment_start));
    on_token(m.id);
    segment_start = m.stop;
  }
  if (segment_start < text.size()) on_text(text.substr(segment_start));
}

// A PCRE2 pattern compiled in UTF + Unicode-properties mode, JIT-compiled when the platform allows.
class Regex {
 public:
  // `what` names the JSON field in errors; `literal` matches `pattern` as a plain string.
  Regex(std::string_view pattern, bool literal, const std::string& what);
  Regex(Regex&& o) noexcept : code_(o.code_), jit_(o.jit_) { o.code_ = nullptr; }
  Regex& operator=(Regex&&) = delete;
  Regex(const Regex&) = delete;
  ~Regex();
  // Next match in `text` (valid UTF-8) at or after `from`; false when there is none. Throws when
  // PCRE2 gives up (match limit), so a pathological pattern cannot hang encode(). Thread-safe.
  bool search(std::string_view text, size_t from, size_t& start, size_t& end) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
};

struct Merge {
  int32_t rank;
  int32_t result;  // id of the merged token
};

// Merges keyed by (left id, right id) in one flat open-addressing array: the merge loop's lookups are
// its main cost, and this needs a single probe sequence where std::unordered_map chases two pointers.
class MergeTable {
 public:
  void insert_or_assign(int32_t left, int32_t right, Merge m);
  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    uint64_t key = pack(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i].merge;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are < 2^24, so no real key looks like this
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static uint64_t pack(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }
  size_t slot_of(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

// Byte-level BPE on token ids: the symbols of a word start as the ids of its single bytes and merge
// by rank, so no text is rebuilt during merging. Results are cached per word.
class Bpe {
 public:
  std::array<int32_t, 256> byte_ids{};  // id of each single byte, -1 when the vocab lacks it
  MergeTable merges;
  int32_t unk_id = -1;
  bool fuse_unk = false;
  bool ignore_merges = false;
  StringMap<int32_t> word_ids;  // raw bytes -> id, filled only when ignore_merges

  // Appends the ids of one pre-tokenized word (raw bytes).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

 private:
  void merge(std::string_view word, std::vector<int32_t>& out) const;
  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kCacheCapacity = 1 << 16;
  mutable std::mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

// Everything a loaded tokenizer holds (Tokenizer::Impl derives from it; Impl itself is private).
struct TokenizerState {
  std::string source;  // file name used in messages
  bool nfc = false;
  std::vector<Regex> splits;  // pre-tokenizer Split steps (Isolated), applied in order
  Bpe bpe;
  StringMap<int32_t> vocab;  // byte-level token string -> id (model vocab only)
  StringMap<int32_t> added_ids;  // added token content -> id
  std::vector<std::string> id_bytes;  // bytes each id decodes to; empty for ids in gaps
  std::vector<AddedToken> added;  // as read: tokenizer.json first, then tokenizer_config.json
  AddedTokenMatcher raw_added;  // added tokens matched before normalisation (normalized=false)
  AddedTokenMatcher normalized_added;  // matched in normalised text (normalized=true)

  std::string normalize(std::string_view text) const;
  // Pre-tokenizer step `step` on `piece`, then BPE on the resulting words.
  void pretokenize(std::string_view piece, size_t step, std::vector<int32_t>& out) const;
};

// Builds the tokenizer from tokenizer.json text (tokenizer_load.cpp).
void load_tokenizer_json(TokenizerState& impl, std::string_view json_text);
// Merges tokenizer_config.json's added_tokens_decoder into the added tokens (tokenizer_load.cpp).
void load_tokenizer_config(TokenizerState& impl, std::string_view json_text, const std::string& source);
// Rebuilds the tables that depend on impl.added: matchers, ids, decoding bytes (tokenizer.cpp).
void finish_added_tokens(TokenizerState& impl);

}  // namespace gqa::tok
