// Shared helpers for the evolution tests: temporary folders, a fast deterministic stand-in evaluator that
// scores the tunable program's knob settings, and reading the example programs.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "evolve/controller.h"
#include "evolve/program_text.h"

namespace gqa::evolve::testing {

inline std::string temp_dir(const std::string& name) {
  const std::string d = fmt::format("{}/gqa-evolve-test-{}-{}", std::filesystem::temp_directory_path().string(), name, getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

inline std::string tunable_path() { return std::string(GQA_EXAMPLES_DIR) + "/tunable_program.cpp"; }
inline std::string tunable_code() { return read_file(tunable_path(), "test"); }

// Scores knob settings: larger KV_BLOCK and Q_TILE and GQA_PACK=1 are better; KV_BLOCK=16 "fails".
// Programs without knobs (LLM rewrites) score by length, so edits are visible.
inline nlohmann::json fake_evaluate(const std::string& code, const std::string&, int64_t) {
  double score = 0.5;
  bool correct = true;
  try {
    for (const Knob& k : parse_knobs(code)) {
      size_t i = 0;
      while (i < k.values.size() && k.values[i] != k.value) ++i;
      score += 0.1 * static_cast<double>(i) / static_cast<double>(k.values.size());
      if (k.name == "KV_BLOCK" && k.value == "16") correct = false;
    }
  } catch (const Error&) {
    correct = false;
  }
  if (code.find("FASTER") != std::string::npos) score += 1.0;
  nlohmann::json m = {{"combined_score", correct ? score : 0.0}, {"correct", correct}};
  m["failed_stage"] = correct ? nlohmann::json(nullptr) : nlohmann::json("correctness");
  if (!correct) m["failure"] = "row error too large";
  return {{"metrics", m}, {"artifacts", {{"correctness_report", correct ? "all ok" : "case 3: mismatch"}}}};
}

}  // namespace gqa::evolve::testing
