// Scenario files: the shipped bench/scenarios.yaml is valid and complete; malformed files fail with the
// file and the key in the message.
#include <gtest/gtest.h>

#include <set>

#include "bench/scenarios.h"
#include "common/error.h"

namespace gqa::bench {
namespace {

// The message of the error parse_scenarios throws for `yaml` (empty when it does not throw).
std::string error_of(const std::string& yaml) {
  try {
    parse_scenarios(yaml, "test.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const char* kValid = R"(
version: 1
suites: {quick: [a], full: [a, b], extended: [c]}
sections:
  s1: "section text. "
scenarios:
  - {name: a, category: x, max_tokens: 5, prompt: "hello"}
  - name: b
    category: y
    max_tokens: 7
    prompt:
      - text: "intro "
      - section: s1
        repeat: 3
  - {name: c, category: z, max_tokens: 9, prompt: "p", fill_context: 0.5}
)";

TEST(BenchScenarios, ShippedFileHasTheSeventeenScenarios) {
  const ScenarioFile f = load_scenarios(GQA_SCENARIOS_FILE);
  const auto full = select_suite(f, "full");
  EXPECT_EQ(full.size(), 17u);
  const std::set<std::string> expected = {
      "short_context_quick", "medium_context_analysis", "long_context_detailed", "very_long_context_comprehensive",
      "micro_generation", "short_generation", "long_generation", "very_long_generation", "ultra_long_generation",
      "code_generation", "step_by_step_reasoning", "creative_writing", "technical_documentation",
      "conversational_assistant", "progressive_context_building", "repetitive_pattern_generation",
      "memory_pressure_test"};
  std::set<std::string> got;
  for (const auto& s : full) got.insert(s.name);
  EXPECT_EQ(got, expected);
  const auto quick = select_suite(f, "quick");
  EXPECT_GE(quick.size(), 4u);
  EXPECT_LE(quick.size(), 5u);
  EXPECT_EQ(select_suite(f, "compare").size(), 17u);
  const auto ext = select_suite(f, "extended");
  EXPECT_GT(ext.size(), 17u);
  bool long_gen = false, near_limit = false;
  for (const auto& s : ext) {
    long_gen |= s.max_tokens >= 6000 && s.max_tokens <= 10000;
    near_limit |= s.fill_context >= 0.9;
  }
  EXPECT_TRUE(long_gen);
  EXPECT_TRUE(near_limit);
  for (const auto& s : full) {
    EXPECT_FALSE(s.prompt.empty()) << s.name;
    if (s.name == "micro_generation") {
      EXPECT_EQ(s.max_tokens, 10);
    }
    if (s.name == "ultra_long_generation") {
      EXPECT_EQ(s.max_tokens, 5000);
    }
  }
}

TEST(BenchScenarios, PartsAndSectionsCompose) {
  const ScenarioFile f = parse_scenarios(kValid, "t.yaml");
  ASSERT_EQ(f.scenarios.size(), 3u);
  EXPECT_EQ(f.scenarios[1].prompt, "intro section text. section text. section text. ");
  EXPECT_DOUBLE_EQ(f.scenarios[2].fill_context, 0.5);
  EXPECT_EQ(select_suite(f, "quick").size(), 1u);
  EXPECT_EQ(select_suite(f, "extended").size(), 3u);
  EXPECT_THROW(select_suite(f, "fast"), Error);
}

TEST(BenchScenarios, ErrorsNameTheFileAndTheKey) {
  auto with = [](const std::string& from, const std::string& to) {
    std::string y = kValid;
    const size_t at = y.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return y.replace(at, from.size(), to);
  };
  std::string e = error_of(with("max_tokens: 5,", "max_token: 5,"));
  EXPECT_NE(e.find("test.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("scenarios.a.max_token"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;

  e = error_of(with("max_tokens: 5,", "max_tokens: five,"));
  EXPECT_NE(e.find("scenarios.a.max_tokens: must be an integer"), std::string::npos) << e;
  e = error_of(with("max_tokens: 5,", "max_tokens: 0,"));
  EXPECT_NE(e.find("scenarios.a.max_tokens: must be 1.."), std::string::npos) << e;
  e = error_of(with("section: s1", "section: s2"));
  EXPECT_NE(e.find("unknown section 's2'"), std::string::npos) << e;
  e = error_of(with("repeat: 3", "repeat: [3]"));
  EXPECT_NE(e.find("repeat: must be an integer"), std::string::npos) << e;
  e = error_of(with("quick: [a]", "quick: [zz]"));
  EXPECT_NE(e.find("suites.quick: unknown scenario 'zz'"), std::string::npos) << e;
  e = error_of(with("version: 1", "version: 1\nextra: 2"));
  EXPECT_NE(e.find("extra"), std::string::npos) << e;
  e = error_of(with("name: b", "name: a"));
  EXPECT_NE(e.find("duplicate"), std::string::npos) << e;
  e = error_of(with("fill_context: 0.5", "fill_context: 1.5"));
  EXPECT_NE(e.find("fill_context: must be in (0, 1]"), std::string::npos) << e;
  e = error_of(with("prompt: \"hello\"", "prompt: {text: hello}"));
  EXPECT_NE(e.find("scenarios.a.prompt: must be a string or a list"), std::string::npos) << e;
  e = error_of(with("category: x, ", ""));
  EXPECT_NE(e.find("scenarios.a.category: missing"), std::string::npos) << e;
  e = error_of("version: 1\nsuites: [\n");
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  EXPECT_THROW(load_scenarios("/nonexistent/scenarios.yaml"), Error);
}

}  // namespace
}  // namespace gqa::bench
