// Reads bench/scenarios.yaml. Every key is looked up by name and anything left over is an error, so a
// misspelt key cannot silently do nothing; messages name the file and the key path.
#include "bench/scenarios.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "common/error.h"

#ifndef GQA_SOURCE_DIR
#define GQA_SOURCE_DIR "."
#endif

namespace gqa::bench {

namespace {

std::string where(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.line >= 0 ? fmt::format(" (line {})", m.line + 1) : "";
}

// Checks that a mapping holds only `allowed` keys.
void only_keys(const YAML::Node& map, const std::set<std::string>& allowed, const std::string& file,
               const std::string& path) {
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail("bench", "{}: {}{}: unknown key{} (allowed: {})", file, path.empty() ? key : path + "." + key,
           where(kv.first), "", list);
    }
  }
}

std::string get_string(const YAML::Node& map, const std::string& key, const std::string& file, const std::string& path) {
  const YAML::Node n = map[key];
  if (!n) fail("bench", "{}: {}.{}: missing{}", file, path, key, where(map));
  if (!n.IsScalar()) fail("bench", "{}: {}.{}: must be a string{}", file, path, key, where(n));
  return n.as<std::string>();
}

int64_t get_int(const YAML::Node& n, const std::string& file, const std::string& path) {
  if (!n.IsScalar()) fail("bench", "{}: {}: must be an integer{}", file, path, where(n));
  try {
    const std::string s = n.as<std::string>();
    size_t used = 0;
    const long long v = std::stoll(s, &used);
    if (used != s.size()) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    fail("bench", "{}: {}: must be an integer, got '{}'{}", file, path, n.as<std::string>(), where(n));
  }
}

double get_double(const YAML::Node& n, const std::string& file, const std::string& path) {
  if (!n.IsScalar()) fail("bench", "{}: {}: must be a number{}", file, path, where(n));
  try {
    return n.as<double>();
  } catch (const std::exception&) {
    fail("bench", "{}: {}: must be a number, got '{}'{}", file, path, n.as<std::string>(), where(n));
  }
}

std::vector<std::string> get_names(const YAML::Node& n, const std::string& file, const std::string& path) {
  if (!n.IsSequence()) fail("bench", "{}: {}: must be a list of scenario names{}", file, path, where(n));
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsScalar()) fail("bench", "{}: {}[{}]: must be a scenario name{}", file, path, i, where(n[i]));
    out.push_back(n[i].as<std::string>());
  }
  return out;
}

std::string build_prompt(const YAML::Node& p, const std::map<std::string, std::string>& sections,
                         const std::string& file, const std::string& path) {
  if (p.IsScalar()) return p.as<std::string>();
  if (!p.IsSequence()) fail("bench", "{}: {}: must be a string or a list of parts{}", file, path, where(p));
  std::string text;
  for (size_t i = 0; i < p.size(); ++i) {
    const YAML::Node part = p[i];
    const std::string pp = fmt::format("{}[{}]", path, i);
    if (!part.IsMap()) fail("bench", "{}: {}: must be a mapping {{text: ...}} or {{section: NAME, repeat: N}}{}", file, pp, where(part));
    only_keys(part, {"text", "section", "repeat"}, file, pp);
    if (part["text"] && part["section"]) fail("bench", "{}: {}: give text or section, not both{}", file, pp, where(part));
    int64_t repeat = 1;
    if (part["repeat"]) {
      repeat = get_int(part["repeat"], file, pp + ".repeat");
      if (repeat < 1 || repeat > 1000) fail("bench", "{}: {}.repeat: must be 1..1000, got {}", file, pp, repeat);
    }
    std::string piece;
    if (part["text"]) {
      piece = get_string(part, "text", file, pp);
    } else if (part["section"]) {
      const std::string name = get_string(part, "section", file, pp);
      auto it = sections.find(name);
      if (it == sections.end()) fail("bench", "{}: {}.section: unknown section '{}'{}", file, pp, name, where(part["section"]));
      piece = it->second;
    } else {
      fail("bench", "{}: {}: needs text or section{}", file, pp, where(part));
    }
    for (int64_t r = 0; r < repeat; ++r) text += piece;
  }
  return text;
}

}  // namespace

ScenarioFile parse_scenarios(const std::string& yaml_text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail("bench", "{}: not valid YAML: {}", file, e.what());
  }
  if (!root.IsMap()) fail("bench", "{}: top level: must be a mapping with version, suites, sections, scenarios", file);
  only_keys(root, {"version", "suites", "sections", "scenarios"}, file, "");
  if (!root["version"] || get_int(root["version"], file, "version") != 1)
    fail("bench", "{}: version: must be 1 (the format docs/bench.md describes)", file);

  std::map<std::string, std::string> sections;
  if (const YAML::Node s = root["sections"]) {
    if (!s.IsMap()) fail("bench", "{}: sections: must be a mapping of name: text{}", file, where(s));
    for (const auto& kv : s) {
      const std::string name = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) fail("bench", "{}: sections.{}: must be a string{}", file, name, where(kv.second));
      sections[name] = kv.second.as<std::string>();
    }
  }

  ScenarioFile out;
  out.path = file;
  const YAML::Node list = root["scenarios"];
  if (!list || !list.IsSequence() || list.size() == 0) fail("bench", "{}: scenarios: must be a non-empty list", file);
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node n = list[i];
    std::string path = fmt::format("scenarios[{}]", i);
    if (!n.IsMap()) fail("bench", "{}: {}: must be a mapping{}", file, path, where(n));
    if (n["name"] && n["name"].IsScalar()) path = "scenarios." + n["name"].as<std::string>();
    only_keys(n, {"name", "category", "prompt", "max_tokens", "fill_context"}, file, path);
    Scenario sc;
    sc.name = get_string(n, "name", file, path);
    if (sc.name.empty() || sc.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
      fail("bench", "{}: {}.name: '{}' must be lower-case letters, digits and '_'", file, path, sc.name);
    if (!names.insert(sc.name).second) fail("bench", "{}: {}: duplicate scenario name{}", file, path, where(n));
    sc.category = get_string(n, "category", file, path);
    if (!n["max_tokens"]) fail("bench", "{}: {}.max_tokens: missing{}", file, path, where(n));
    sc.max_tokens = get_int(n["max_tokens"], file, path + ".max_tokens");
    if (sc.max_tokens < 1 || sc.max_tokens > 1000000)
      fail("bench", "{}: {}.max_tokens: must be 1..1000000, got {}", file, path, sc.max_tokens);
    if (!n["prompt"]) fail("bench", "{}: {}.prompt: missing{}", file, path, where(n));
    sc.prompt = build_prompt(n["prompt"], sections, file, path + ".prompt");
    if (sc.prompt.empty()) fail("bench", "{}: {}.prompt: is empty", file, path);
    if (n["fill_context"]) {
      sc.fill_context = get_double(n["fill_context"], file, path + ".fill_context");
      if (!(sc.fill_context > 0 && sc.fill_context <= 1))
        fail("bench", "{}: {}.fill_context: must be in (0, 1], got {}", file, path, sc.fill_context);
    }
    out.scenarios.push_back(std::move(sc));
  }

  const YAML::Node suites = root["suites"];
  if (!suites || !suites.IsMap()) fail("bench", "{}: suites: must be a mapping with quick, full and extended", file);
  only_keys(suites, {"quick", "full", "extended"}, file, "suites");
  for (const char* s : {"quick", "full", "extended"}) {
    if (!suites[s]) fail("bench", "{}: suites.{}: missing", file, s);
    auto list_names = get_names(suites[s], file, std::string("suites.") + s);
    std::set<std::string> seen;
    for (const auto& name : list_names) {
      if (!names.count(name)) fail("bench", "{}: suites.{}: unknown scenario '{}'", file, s, name);
      if (!seen.insert(name).second) fail("bench", "{}: suites.{}: '{}' listed twice", file, s, name);
    }
    out.suites[s] = std::move(list_names);
  }
  return out;
}

ScenarioFile load_scenarios(const std::string& path) { return parse_scenarios(read_file(path, "bench"), path); }

std::vector<Scenario> select_suite(const ScenarioFile& file, const std::string& mode) {
  std::vector<std::string> names;
  if (mode == "quick") {
    names = file.suites.at("quick");
  } else if (mode == "full" || mode == "compare") {
    names = file.suites.at("full");
  } else if (mode == "extended") {
    names = file.suites.at("full");
    for (const auto& n : file.suites.at("extended"))
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  } else {
    fail("bench", "unknown mode '{}' (expected quick, full, compare or extended)", mode);
  }
  std::vector<Scenario> out;
  for (const auto& n : names)
    for (const auto& s : file.scenarios)
      if (s.name == n) out.push_back(s);
  return out;
}

std::string default_scenarios_path() {
  if (const char* env = std::getenv("GQA_BENCH_SCENARIOS"); env && *env) return env;
  if (std::filesystem::exists("bench/scenarios.yaml")) return "bench/scenarios.yaml";
  return std::string(GQA_SOURCE_DIR) + "/bench/scenarios.yaml";
}

}  // namespace gqa::bench
