// Strict UTF-8 decoding after the Unicode standard's table of well-formed byte sequences (Table 3-7):
// overlong forms, surrogates and code points past U+10FFFF are ill-formed.
#include "tokenizer/utf8.h"

namespace gqa::utf8 {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
}

Step step(std::string_view s) {
  auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return {StepKind::Valid, 1, b0};
  // Length of the sequence and the allowed range of its second byte; later bytes are always 80..BF.
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong 3-byte forms
    if (b0 == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong 4-byte forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return {StepKind::Invalid, 1, 0};  // 80..C1 and F5..FF never start a character
  }
  uint32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if (k >= s.size()) return {StepKind::Truncated, k, 0};
    auto b = static_cast<unsigned char>(s[k]);
    bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return {StepKind::Invalid, k, 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {StepKind::Valid, n, cp};
}

size_t first_invalid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII runs are the common case: skip them eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    Step st = step(s.substr(i));
    if (st.kind != StepKind::Valid) return i;
    i += st.len;
  }
  return s.size();
}

std::string replace_invalid(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    Step st = step(s.substr(i));
    if (st.kind == StepKind::Valid)
      out.append(s.substr(i, st.len));
    else
      out.append(kReplacement);
    i += st.len;
  }
  return out;
}

std::string take_complete(std::string_view s, size_t& consumed) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    Step st = step(s.substr(i));
    if (st.kind == StepKind::Truncated) break;
    if (st.kind == StepKind::Valid)
      out.append(s.substr(i, st.len));
    else
      out.append(kReplacement);
    i += st.len;
  }
  consumed = i;
  return out;
}

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace gqa::utf8
