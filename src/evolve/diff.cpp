// SEARCH/REPLACE format (as Aider and OpenEvolve use it):
//   <<<<<<< SEARCH
//   exact lines of the parent
//   =======
//   their replacement
//   >>>>>>> REPLACE
// A block whose text occurs only outside the EVOLVE-BLOCK, or that touches the markers, is refused.
#include "evolve/diff.h"

#include <sstream>
#include <vector>

#include "common/error.h"
#include "evolve/program_text.h"

namespace gqa::evolve {

namespace {

struct Edit {
  std::string search, replace;
};

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

std::string rstrip(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

// Returns an error message, or "" with the edits filled in.
std::string parse_edits(const std::string& response, std::vector<Edit>& edits) {
  std::istringstream in(response);
  std::string line;
  int state = 0;  // 0 outside, 1 in SEARCH, 2 in REPLACE
  Edit cur;
  while (std::getline(in, line)) {
    const std::string t = rstrip(line);
    if (state == 0) {
      if (starts_with(t, "<<<<<<< SEARCH")) state = 1, cur = Edit{};
      else if (t == "=======" || starts_with(t, ">>>>>>> REPLACE"))
        return fmt::format("malformed diff: '{}' outside a SEARCH/REPLACE block", t);
    } else if (state == 1) {
      if (t == "=======") state = 2;
      else if (starts_with(t, "<<<<<<< SEARCH") || starts_with(t, ">>>>>>> REPLACE"))
        return fmt::format("malformed diff: block {} has no '=======' line", edits.size() + 1);
      else cur.search += line + "\n";
    } else {
      if (starts_with(t, ">>>>>>> REPLACE")) {
        if (cur.search.empty()) return fmt::format("malformed diff: block {} has an empty SEARCH part", edits.size() + 1);
        edits.push_back(cur);
        state = 0;
      } else if (starts_with(t, "<<<<<<< SEARCH") || t == "=======") {
        return fmt::format("malformed diff: block {} has no '>>>>>>> REPLACE' line", edits.size() + 1);
      } else {
        cur.replace += line + "\n";
      }
    }
  }
  if (state != 0) return fmt::format("malformed diff: block {} is not closed by '>>>>>>> REPLACE'", edits.size() + 1);
  return "";
}

std::string first_line(const std::string& s) {
  std::string l = s.substr(0, s.find('\n'));
  return l.size() > 120 ? l.substr(0, 120) + "..." : l;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(" \t\r") + 1 - b);
}

// Lines of `text` with their byte offsets (a last line without '\n' counts).
std::vector<std::pair<size_t, std::string>> lines_of(const std::string& text) {
  std::vector<std::pair<size_t, std::string>> out;
  for (size_t at = 0; at < text.size();) {
    const size_t nl = text.find('\n', at);
    const size_t end = nl == std::string::npos ? text.size() : nl;
    out.emplace_back(at, text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// Where `search` matches `inside` line by line with indentation and trailing whitespace ignored: the byte
// range of the matched lines (their final newline included), if it matches exactly once; else how often.
struct LooseMatch {
  size_t begin = 0, end = 0;
  int count = 0;
};
LooseMatch loose_find(const std::string& inside, const std::string& search) {
  const auto hay = lines_of(inside);
  std::vector<std::string> needle;
  for (const auto& [at, l] : lines_of(search)) needle.push_back(trim(l));
  while (!needle.empty() && needle.back().empty()) needle.pop_back();
  LooseMatch m;
  if (needle.empty()) return m;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t k = 0;
    while (k < needle.size() && trim(hay[i + k].second) == needle[k]) ++k;
    if (k < needle.size()) continue;
    if (++m.count == 1) {
      const auto& last = hay[i + needle.size() - 1];
      m.begin = hay[i].first;
      m.end = std::min(inside.size(), last.first + last.second.size() + 1);
    }
  }
  return m;
}

ChildCode apply_edits(const std::string& parent, const std::vector<Edit>& edits) {
  ChildCode r;
  std::string code = parent;
  for (size_t i = 0; i < edits.size(); ++i) {
    const Edit& e = edits[i];
    if (e.search.find("EVOLVE-BLOCK") != std::string::npos || e.replace.find("EVOLVE-BLOCK") != std::string::npos) {
      r.error = fmt::format("SEARCH/REPLACE block {} touches an EVOLVE-BLOCK marker: only the code between them may change", i + 1);
      return r;
    }
    const BlockRange block = find_evolve_block(code);
    const std::string inside = code.substr(block.begin, block.end - block.begin);
    const size_t at = inside.find(e.search);
    if (at == std::string::npos) {
      const LooseMatch loose = loose_find(inside, e.search);
      if (loose.count == 1) {
        std::string replace = e.replace;
        if (loose.end == inside.size() && inside.back() != '\n' && !replace.empty() && replace.back() == '\n') replace.pop_back();
        code.replace(block.begin + loose.begin, loose.end - loose.begin, replace);
        ++r.whitespace_matched;
        continue;
      }
      if (loose.count > 1) {
        r.error = fmt::format("SEARCH/REPLACE block {}: the SEARCH text (first line '{}') is not in the EVOLVE-BLOCK "
                              "exactly, and matches {} places when whitespace is ignored (copy it character for "
                              "character, with enough lines to be unique)", i + 1, first_line(e.search), loose.count);
        return r;
      }
      r.error = code.find(e.search) != std::string::npos
                    ? fmt::format("SEARCH/REPLACE block {} matches only outside the EVOLVE-BLOCK, which must not change", i + 1)
                    : fmt::format("SEARCH/REPLACE block {}: the SEARCH text (first line '{}') is not in the EVOLVE-BLOCK "
                                  "exactly (copy it character for character)", i + 1, first_line(e.search));
      return r;
    }
    code.replace(block.begin + at, e.search.size(), e.replace);
  }
  r.ok = true;
  r.code = std::move(code);
  r.blocks = static_cast<int>(edits.size());
  return r;
}

// The fenced code block holding a whole program (with the EVOLVE-BLOCK markers), if any.
bool extract_program(const std::string& response, std::string& out) {
  size_t pos = 0;
  while ((pos = response.find("```", pos)) != std::string::npos) {
    const size_t body = response.find('\n', pos);
    if (body == std::string::npos) break;
    const size_t close = response.find("\n```", body);
    if (close == std::string::npos) break;
    std::string text = response.substr(body + 1, close + 1 - (body + 1));
    if (text.find("EVOLVE-BLOCK-START") != std::string::npos) {
      out = std::move(text);
      return true;
    }
    pos = close + 4;
  }
  if (response.find("EVOLVE-BLOCK-START") != std::string::npos && response.find("<<<<<<< SEARCH") == std::string::npos) {
    out = response;
    return true;
  }
  return false;
}

}  // namespace

ChildCode apply_response(const std::string& parent, const std::string& response, bool diff_based) {
  std::vector<Edit> edits;
  const std::string parse_error = parse_edits(response, edits);
  const bool has_diff = !edits.empty() || !parse_error.empty();
  std::string program;
  const bool has_program = extract_program(response, program);
  ChildCode r;
  if (has_diff && (diff_based || !has_program)) {
    if (!parse_error.empty()) {
      r.error = parse_error;
      return r;
    }
    try {
      return apply_edits(parent, edits);
    } catch (const Error& e) {
      r.error = e.what();
      return r;
    }
  }
  if (has_program) {
    r.ok = true;
    r.full_rewrite = true;
    r.code = std::move(program);
    return r;
  }
  r.error = "the response has no SEARCH/REPLACE block and no complete program in a code block";
  return r;
}

}  // namespace gqa::evolve
