// Helpers of the CPU adversarial suites: cheat programs made from the tunable example (its entry point
// renamed attention_real, the cheat's own `attention` added to the EVOLVE-BLOCK), written to the test
// cache and evaluated with small limits.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "evaluate/evaluator.h"

namespace gqa::test {

inline std::string example(const char* name) { return read_file(std::string(GQA_EXAMPLES_DIR) + "/" + name, "test"); }

// The tunable program (`base`: the CPU one unless told) with `attention` renamed to attention_real and
// `cheat` (which defines a new `attention`, usually calling attention_real) added at the end of the
// EVOLVE-BLOCK; `includes` go right after the EVOLVE-BLOCK-START line.
inline std::string with_cheat(const std::string& cheat, const std::string& includes = "",
                              const char* base = "tunable_program.cpp") {
  std::string s = example(base);
  const std::string head = "static int attention(const gqa_attention_args* a) {";
  s.replace(s.find(head), head.size(), "static int attention_real(const gqa_attention_args* a) {");
  s.insert(s.find("// EVOLVE-BLOCK-END"), cheat + "\n");
  if (!includes.empty()) s.insert(s.find("// EVOLVE-BLOCK-START") + 22, includes);
  return s;
}

inline std::string write_program(const std::string& name, const std::string& source) {
  const std::string dir = std::string(GQA_TEST_CACHE_DIR) + "/adversarial";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name + ".cpp";
  write_file_atomic(path, source, "test");
  return path;
}

inline eval::EvaluateOptions options(const std::string& path) {
  eval::EvaluateOptions o;
  o.program_path = path;
  o.cache_dir = GQA_TEST_CACHE_DIR;
  o.worker_executable = GQA_BINARY;
  o.timeout_seconds = 120;
  o.threads = 2;
  o.bench = false;  // the cascade stops at correctness for most cheats; tests that need more turn it on
  o.end_to_end = false;
  o.memory_limit_bytes = 8ull << 30;
  return o;
}

// Asserts the evaluation failed at `stage` with combined_score 0 and, if given, that the failure (or the
// correctness report) mentions `because` — the mechanism that stopped it.
inline void expect_rejected(const nlohmann::json& r, const std::string& stage, const std::string& because = "") {
  const auto& m = r["metrics"];
  EXPECT_FALSE(m["correct"].get<bool>()) << r.dump(2);
  EXPECT_EQ(m["combined_score"].get<double>(), 0.0);
  ASSERT_TRUE(m["failed_stage"].is_string()) << r.dump(2);
  const std::string failure = m.value("failure", "");
  const std::string report = r["artifacts"].value("correctness_report", "");
  EXPECT_EQ(m["failed_stage"].get<std::string>(), stage) << failure << "\n" << report;
  if (!because.empty()) {
    EXPECT_TRUE(failure.find(because) != std::string::npos || report.find(because) != std::string::npos)
        << "expected '" << because << "' in: " << failure << "\n" << report << "\n" << r["artifacts"].value("worker_stderr", "");
  }
}

inline nlohmann::json cheat(const std::string& name, const std::string& code, bool skip_static = false,
                            const std::string& includes = "") {
  auto o = options(write_program(name, with_cheat(code, includes)));
  o.skip_static = skip_static;
  return eval::evaluate(o);
}

}  // namespace gqa::test
