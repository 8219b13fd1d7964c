// {{name}} substitution in one pass, so a value that itself holds "{{...}}" (program code, an answer
// quoted in the history) is never expanded again.
#include "evolve/prompt_template.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/error.h"

namespace gqa::evolve {

namespace {

bool known(const std::string& name) {
  const auto& names = template_placeholders();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string known_list() {
  std::string s;
  for (const auto& n : template_placeholders()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

int line_of(const std::string& text, size_t at) { return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n')); }

// Walks the placeholders: calls on_text for literal text and on_name for each {{name}} (name trimmed).
// Returns a problem, or "" when the text is well formed.
template <class Text, class Name>
std::string walk(const std::string& text, Text on_text, Name on_name) {
  size_t pos = 0;
  while (true) {
    const size_t open = text.find("{{", pos);
    if (open == std::string::npos) {
      on_text(text.substr(pos));
      return "";
    }
    on_text(text.substr(pos, open - pos));
    const size_t close = text.find("}}", open + 2);
    if (close == std::string::npos) return fmt::format("line {}: '{{{{' is not closed by '}}}}'", line_of(text, open));
    std::string name = text.substr(open + 2, close - open - 2);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (!known(name))
      return fmt::format("line {}: unknown placeholder {{{{{}}}}} (known: {})", line_of(text, open), name, known_list());
    on_name(name);
    pos = close + 2;
  }
}

}  // namespace

const std::vector<std::string>& template_placeholders() {
  static const std::vector<std::string> names = {
      "target",      "language",        "max_code_length",  "abi",          "rules",  "entry",  "abi_file",
      "parent_id",   "parent_generation", "parent_score",   "parent_code",  "parent_metrics",
      "parent_artifacts", "top_programs", "diverse_programs", "history",    "task"};
  return names;
}

std::optional<std::string> template_problem(const std::string& text) {
  const std::string problem = walk(text, [](const std::string&) {}, [](const std::string&) {});
  if (problem.empty()) return std::nullopt;
  return problem;
}

std::string fill_template(const std::string& text, const std::map<std::string, std::string>& values) {
  std::string out;
  const std::string problem = walk(
      text, [&](const std::string& t) { out += t; },
      [&](const std::string& name) {
        const auto it = values.find(name);
        if (it == values.end()) fail("prompt", "no value for placeholder {{{{{}}}}}", name);
        out += it->second;
      });
  if (!problem.empty()) fail("prompt", "{}", problem);
  return out;
}

}  // namespace gqa::evolve
