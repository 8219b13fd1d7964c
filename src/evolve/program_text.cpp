// EVOLVE-BLOCK and EVOLVE-KNOB parsing. Knob lines are matched plainly (no regex engine): the annotation
// comment, then the last `= value;` before it on the same line.
#include "evolve/program_text.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"

namespace gqa::evolve {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

BlockRange find_evolve_block(const std::string& code) {
  const size_t start = code.find("EVOLVE-BLOCK-START");
  const size_t end = code.find("EVOLVE-BLOCK-END");
  if (start == std::string::npos || end == std::string::npos) fail("evolve", "the program has no EVOLVE-BLOCK-START/END markers");
  if (code.find("EVOLVE-BLOCK-START", start + 1) != std::string::npos || code.find("EVOLVE-BLOCK-END", end + 1) != std::string::npos)
    fail("evolve", "the program has more than one EVOLVE-BLOCK marker pair");
  if (end < start) fail("evolve", "EVOLVE-BLOCK-END comes before EVOLVE-BLOCK-START");
  BlockRange r;
  const size_t nl = code.find('\n', start);
  r.begin = nl == std::string::npos ? code.size() : nl + 1;
  r.end = code.rfind('\n', end);
  r.end = r.end == std::string::npos || r.end < r.begin ? r.begin : r.end + 1;
  return r;
}

std::vector<Knob> parse_knobs(const std::string& code) {
  const BlockRange block = find_evolve_block(code);
  std::vector<Knob> knobs;
  size_t line_begin = block.begin;
  while (line_begin < block.end) {
    size_t line_end = code.find('\n', line_begin);
    if (line_end == std::string::npos || line_end > block.end) line_end = block.end;
    const std::string line = code.substr(line_begin, line_end - line_begin);
    const size_t ann = line.find("EVOLVE-KNOB");
    const size_t comment = line.rfind("//", ann);
    if (ann != std::string::npos && comment != std::string::npos) {
      const size_t semi = line.rfind(';', comment);
      const size_t eq = semi == std::string::npos ? std::string::npos : line.rfind('=', semi);
      const size_t vals = line.find("values=", ann);
      if (semi == std::string::npos || eq == std::string::npos || vals == std::string::npos)
        fail("evolve", "malformed EVOLVE-KNOB line (want `NAME = VALUE; // EVOLVE-KNOB values=a,b`): {}", trim(line));
      Knob k;
      std::string lhs = trim(line.substr(0, eq));
      size_t n = lhs.size();
      while (n > 0 && (std::isalnum(static_cast<unsigned char>(lhs[n - 1])) || lhs[n - 1] == '_')) --n;
      k.name = lhs.substr(n);
      size_t vb = eq + 1;
      while (vb < semi && std::isspace(static_cast<unsigned char>(line[vb]))) ++vb;
      size_t ve = semi;
      while (ve > vb && std::isspace(static_cast<unsigned char>(line[ve - 1]))) --ve;
      k.value = line.substr(vb, ve - vb);
      k.value_begin = line_begin + vb;
      k.value_end = line_begin + ve;
      std::string list = line.substr(vals + 7);
      list = list.substr(0, list.find_first_of(" \t"));
      size_t p = 0;
      while (p <= list.size()) {
        size_t c = list.find(',', p);
        if (c == std::string::npos) c = list.size();
        std::string v = trim(list.substr(p, c - p));
        if (!v.empty()) k.values.push_back(v);
        p = c + 1;
      }
      if (k.name.empty() || k.values.empty()) fail("evolve", "malformed EVOLVE-KNOB line: {}", trim(line));
      for (const Knob& other : knobs)
        if (other.name == k.name) fail("evolve", "EVOLVE-KNOB '{}' appears twice", k.name);
      knobs.push_back(std::move(k));
    }
    line_begin = line_end + 1;
  }
  return knobs;
}

std::string set_knobs(const std::string& code, const std::map<std::string, std::string>& values) {
  std::vector<Knob> knobs = parse_knobs(code);
  for (const auto& [name, v] : values)
    if (std::none_of(knobs.begin(), knobs.end(), [&](const Knob& k) { return k.name == name; }))
      fail("evolve", "no EVOLVE-KNOB named '{}'", name);
  std::string out = code;
  // Replace from the back so earlier offsets stay valid.
  for (auto it = knobs.rbegin(); it != knobs.rend(); ++it) {
    auto v = values.find(it->name);
    if (v != values.end()) out.replace(it->value_begin, it->value_end - it->value_begin, v->second);
  }
  return out;
}

std::string knob_summary(const std::string& code) {
  std::string s;
  try {
    for (const Knob& k : parse_knobs(code)) s += (s.empty() ? "" : " ") + k.name + "=" + k.value;
  } catch (const Error&) {
  }
  return s;
}

}  // namespace gqa::evolve
