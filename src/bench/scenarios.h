// Benchmark scenarios as data (bench/scenarios.yaml): loading with strict validation, suites (quick,
// full, extended), and the caps that shrink a suite for small models and CI (always recorded, never silent).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gqa::bench {

struct Scenario {
  std::string name;
  std::string category;
  std::string prompt;           // the user turn, sections expanded
  int64_t max_tokens = 0;
  double fill_context = 0;      // > 0: tile the prompt's tokens to this fraction of the context window
};

struct ScenarioFile {
  std::string path;
  std::vector<Scenario> scenarios;                         // in file order
  std::map<std::string, std::vector<std::string>> suites;  // quick, full, extended (extended adds to full)
};

// Throws "[bench] FILE: KEY ..." for a missing file, bad YAML, unknown keys, wrong types, unknown
// sections or scenarios, duplicates and out-of-range values.
ScenarioFile load_scenarios(const std::string& path);
ScenarioFile parse_scenarios(const std::string& yaml_text, const std::string& path);

// Scenarios of a mode: quick, full, compare (= full), extended (= full + extended). Throws for others.
std::vector<Scenario> select_suite(const ScenarioFile& file, const std::string& mode);

// The default scenario file: $GQA_BENCH_SCENARIOS, else bench/scenarios.yaml under the current folder,
// else the copy in the source tree this binary was built from.
std::string default_scenarios_path();

// Limits applied to every scenario of a run (0: none). The caller records them and each scenario's
// original and effective values.
struct Caps {
  int64_t max_tokens = 0;      // generation length at most this
  int64_t prompt_tokens = 0;   // prompt cut to its first N tokens
};

}  // namespace gqa::bench
