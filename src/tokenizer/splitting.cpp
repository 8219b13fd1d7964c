// Text splitting before BPE: the PCRE2 regexes of the pre-tokenizer and the added-token matcher.
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <memory>

#include "common/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace gqa::tok {

namespace {

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};
// One ovector pair is enough for every pattern: only the whole match is used (PCRE2 returns 0 when a
// pattern's groups do not fit, and still fills pair 0). Per thread, so encode() is thread-safe.
pcre2_match_data* thread_match_data() {
  thread_local std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(pcre2_match_data_create(1, nullptr));
  return md.get();
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Unicode White_Space, the set Rust's char::is_whitespace (used by HF for lstrip/rstrip) tests.
bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Letters, numbers and '_' form words for single_word tokens.
bool is_word_char(uint32_t c) {
  if (c == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

}  // namespace

Regex::Regex(std::string_view pattern, bool literal, const std::string& what) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);  // PCRE2 refuses UCP with LITERAL
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err,
                        &offset, nullptr);
  if (!code_) fail("tokenizer", "{}: cannot compile: {} at offset {}", what, pcre2_message(err), offset);
  // JIT makes the pre-tokenizer several times faster; the interpreter is the fallback where it is
  // unavailable.
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(code_); }

bool Regex::search(std::string_view text, size_t from, size_t& start, size_t& end) const {
  pcre2_match_data* md = thread_match_data();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  // The input was validated once in encode(); every piece handed here starts and ends on a character
  // boundary, so PCRE2's own UTF check would only repeat that work.
  int rc = jit_ ? pcre2_jit_match(code_, subject, text.size(), from, PCRE2_NO_UTF_CHECK, md, nullptr)
                : pcre2_match(code_, subject, text.size(), from, PCRE2_NO_UTF_CHECK, md, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) fail("tokenizer", "pre-tokenizer regex failed: {}", pcre2_message(rc));
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
  start = ov[0];
  end = ov[1];
  // \K in a lookahead can report a match that ends before it starts; treat it as empty.
  if (end < start) end = start;
  return true;
}

void AddedTokenMatcher::add(const AddedToken& t) {
  if (t.content.empty()) return;  // an empty token would match everywhere
  auto idx = static_cast<uint32_t>(tokens_.size());
  tokens_.push_back(t);
  auto& list = by_first_byte_[static_cast<unsigned char>(t.content[0])];
  list.push_back(idx);
  std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
    return tokens_[a].content.size() > tokens_[b].content.size();
  });
}

bool AddedTokenMatcher::find(std::string_view text, size_t from, size_t segment_start, Match& m) const {
  for (size_t i = from; i < text.size(); ++i) {
    const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[i])];
    if (candidates.empty()) continue;
    const AddedToken* hit = nullptr;
    for (uint32_t idx : candidates) {
      if (text.substr(i).starts_with(tokens_[idx].content)) {
        hit = &tokens_[idx];
        break;  // longest first
      }
    }
    if (!hit) continue;
    size_t start = i, stop = i + hit->content.size();
    if (hit->single_word) {
      bool word_before = start > 0 && is_word_char(utf8::prev(text, start));
      size_t j = stop;
      bool word_after = stop < text.size() && is_word_char(utf8::next(text, j));
      if (word_before || word_after) {
        // Like HF, a rejected match is consumed, not retried with a shorter token.
        i = stop - 1;
        continue;
      }
    }
    if (hit->lstrip) {
      while (start > segment_start && is_white_space(utf8::prev(text, start))) {
        do --start;
        while ((static_cast<unsigned char>(text[start]) & 0xC0) == 0x80);
      }
    }
    if (hit->rstrip) {
      size_t j = stop;
      while (j < text.size() && is_white_space(utf8::next(text, j))) stop = j;
    }
    m = {start, stop, hit->id};
    return true;
  }
  return false;
}

}  // namespace gqa::tok
