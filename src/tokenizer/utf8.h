// Strict UTF-8 helpers for the tokenizer: validation, code point iteration, and decoding with U+FFFD
// replacement of ill-formed bytes by "maximal subparts" (the policy of Python's errors="replace").
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gqa::utf8 {

enum class StepKind { Valid, Invalid, Truncated };

// One step of decoding at the start of `s` (non-empty): a whole character (Valid), an ill-formed
// maximal subpart to replace by one U+FFFD (Invalid), or a valid but unfinished prefix that runs into
// the end of `s` (Truncated). `len` is the number of bytes the step covers.
struct Step {
  StepKind kind;
  size_t len;
  uint32_t code_point;  // only for Valid
};
Step step(std::string_view s);

// Offset of the first ill-formed byte, or s.size() when `s` is valid UTF-8.
size_t first_invalid(std::string_view s);

// `s` with each ill-formed maximal subpart (a truncated tail included) replaced by U+FFFD.
std::string replace_invalid(std::string_view s);

// Converts the longest prefix of `s` that does not end inside an unfinished character: returns its text
// (ill-formed subparts replaced) and sets `consumed`. What is left is a Truncated tail of 1..3 bytes.
std::string take_complete(std::string_view s, size_t& consumed);

void append(std::string& out, uint32_t code_point);

// Decodes the character at s[i] (valid UTF-8 assumed) and advances i past it.
inline uint32_t next(std::string_view s, size_t& i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  uint32_t cp = c & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

// Decodes the character that ends at s[i-1] (valid UTF-8 assumed).
inline uint32_t prev(std::string_view s, size_t i) {
  size_t start = i - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return next(s, start);
}

}  // namespace gqa::utf8
