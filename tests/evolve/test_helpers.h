// Shared helpers for the evolution tests: temporary folders, a fast deterministic stand-in evaluator that
// scores the tunable program's knob settings, and reading the example programs.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "common/error.h"
#include "evolve/controller.h"
#include "evolve/database.h"
#include "evolve/program_text.h"

namespace gqa::evolve::testing {

inline std::string temp_dir(const std::string& name) {
  const std::string d = fmt::format("{}/gqa-evolve-test-{}-{}", std::filesystem::temp_directory_path().string(), name, getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// Polls DB_PATH until it holds at least n programs, `seconds` pass, or the process pid (a run started by
// the test) exits; returns the count last seen and sets *exited when the process ended first.
inline int64_t wait_for_programs(const std::string& db_path, int64_t n, pid_t pid, int seconds, bool* exited) {
  const auto t0 = std::chrono::steady_clock::now();
  int64_t seen = 0;
  *exited = false;
  while (seen < n && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(seconds)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (std::filesystem::exists(db_path)) {
      try {
        seen = Database(db_path).count_programs();
      } catch (const Error&) {  // mid-creation: try again
      }
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) != 0) {
      *exited = true;
      break;
    }
  }
  return seen;
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
