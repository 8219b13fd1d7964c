// `gqa-evolve bench` end to end on the CPU with the tiny preset (scaled): quick writes JSON/CSV/Markdown (and
// charts when gnuplot is present) with the expected fields; compare races the stock kernel against the
// tunable example program; Ctrl-C (SIGINT) still writes what was measured.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct CmdResult {
  int code;
  std::string out;
};

CmdResult run(const std::string& args) {
  const std::string cmd = std::string("GQA_CACHE_DIR='") + GQA_TEST_CACHE_DIR + "' " + GQA_BINARY + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The one file of the output folder ending in `suffix`.
fs::path only_file(const fs::path& dir, const std::string& suffix) {
  fs::path found;
  int count = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      found = e.path();
      ++count;
    }
  }
  EXPECT_EQ(count, 1) << suffix << " in " << dir;
  return found;
}

bool have_gnuplot() { return std::system("gnuplot --version >/dev/null 2>&1") == 0; }

class BenchCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(fs::path(GQA_TOKENIZER_DIR) / "tokenizer.json")) return;
    dir_ = fs::temp_directory_path() / ("gqa-bench-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    CmdResult r = run("make-model --preset tiny --seed 1 --out " + (dir_ / "tiny").string() + " --tokenizer-dir " + GQA_TOKENIZER_DIR);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (dir_.empty()) GTEST_SKIP() << "tokenizer files missing: run scripts/setup.sh";
  }
  static std::string model() { return (dir_ / "tiny").string(); }
  static std::string common() {
    return "--model " + model() + " --device cpu --scenarios " + GQA_SOURCE_DIR + "/bench/scenarios.yaml --no-progress ";
  }
  static fs::path dir_;
};
fs::path BenchCli::dir_;

TEST(BenchCliHelp, BenchAndMicrobenchHaveHelp) {
  CmdResult r = run("bench --help");
  EXPECT_EQ(r.code, 0);
  for (const char* opt : {"--mode", "--program", "--output-dir", "--max-tokens-cap", "--context-cap", "--device"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  r = run("microbench --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--target"), std::string::npos) << r.out;
  r = run("microbench /nonexistent.cpp");
  EXPECT_NE(r.code, 0);
}

TEST_F(BenchCli, QuickOnTinyWritesEveryReport) {
  const fs::path out = dir_ / "quick";
  CmdResult r = run("bench --mode quick " + common() + "--max-tokens-cap 12 --context-cap 192 --output-dir " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("SCALED run"), std::string::npos) << r.out;

  const json j = json::parse(slurp(only_file(out, ".json")));
  EXPECT_EQ(j["format"], "gqa-evolve-bench/1");
  EXPECT_EQ(j["mode"], "quick");
  EXPECT_FALSE(j["interrupted"].get<bool>());
  EXPECT_EQ(j["settings"]["caps"]["max_tokens"], 12);
  EXPECT_EQ(j["settings"]["caps"]["prompt_tokens"], 192);
  EXPECT_EQ(j["settings"]["runs"], 3);
  ASSERT_EQ(j["scenarios"].size(), 5u);
  for (const auto& s : j["scenarios"]) {
    SCOPED_TRACE(s["name"].get<std::string>());
    EXPECT_TRUE(s["complete"].get<bool>());
    EXPECT_LE(s["prompt_tokens"].get<int>(), 192);
    EXPECT_LE(s["max_tokens"].get<int>(), 12);
    const json& a = s["arms"]["stock"];
    EXPECT_EQ(a["n"], 3);
    EXPECT_EQ(a["generated_tokens"], s["max_tokens"]);
    for (const char* k : {"decode_tokens_per_second", "prefill_tokens_per_second", "total_tokens_per_second", "wall_seconds"})
      for (const char* f : {"median", "mean", "cv", "ci95_low", "ci95_high", "stddev"}) EXPECT_TRUE(a[k].contains(f)) << k << f;
    EXPECT_GT(a["decode_tokens_per_second"]["median"].get<double>(), 0);
    EXPECT_GT(a["peak_rss_bytes"].get<double>(), 1e6);
    ASSERT_EQ(s["runs"].size(), 3u);
    for (const auto& run : s["runs"]) {
      for (const char* k : {"prompt_tokens", "generated_tokens", "prefill_tokens_per_second", "decode_tokens_per_second",
                            "total_tokens_per_second", "peak_rss_bytes", "peak_device_bytes", "wall_seconds"})
        EXPECT_TRUE(run.contains(k)) << k;
    }
  }
  // The long-context scenario was cut, and says so.
  bool cut = false;
  for (const auto& s : j["scenarios"])
    if (s["uncapped_prompt_tokens"].get<int>() > s["prompt_tokens"].get<int>()) cut |= !s["adjustments"].empty();
  EXPECT_TRUE(cut);

  const std::string csv = slurp(only_file(out, ".csv"));
  EXPECT_EQ(csv.rfind("scenario,category,arm,", 0), 0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 6);
  const std::string md = slurp(only_file(out, ".md"));
  EXPECT_NE(md.find("# gqa-evolve bench: quick"), std::string::npos);
  EXPECT_NE(md.find("**Scaled run**"), std::string::npos);
  EXPECT_NE(md.find("| short_context_quick | stock | 3 |"), std::string::npos) << md;
  if (have_gnuplot()) {
    for (const char* chart : {"-decode.svg", "-context.svg"}) {
      const std::string svg = slurp(only_file(out, chart));
      EXPECT_NE(svg.find("<svg"), std::string::npos);
      EXPECT_NE(md.find(chart), std::string::npos);
    }
  } else {
    EXPECT_NE(md.find("gnuplot was not found"), std::string::npos);
  }
}

TEST_F(BenchCli, GnuplotMissingStillWritesTheRest) {
  const fs::path out = dir_ / "nognuplot";
  const std::string cmd = std::string("GQA_GNUPLOT=none GQA_CACHE_DIR='") + GQA_TEST_CACHE_DIR + "' " + GQA_BINARY +
                          " bench --mode quick --only micro_generation " + common() + "--max-tokens-cap 4 --output-dir " +
                          out.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string md = slurp(only_file(out, ".md"));
  EXPECT_NE(md.find("gnuplot was not found"), std::string::npos) << md;
  only_file(out, ".json");
  only_file(out, ".csv");
  only_file(out, "-decode.gp");  // the script, to draw the chart later
}

TEST_F(BenchCli, CompareStockAgainstTunableProgram) {
  const fs::path out = dir_ / "compare";
  CmdResult r = run("bench --mode compare --only short_context_quick,micro_generation " + common() +
                    "--max-tokens-cap 10 --context-cap 128 --program " + GQA_EXAMPLES_DIR + "/tunable_program.cpp --output-dir " +
                    out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("across scenarios, decode"), std::string::npos) << r.out;
  const json j = json::parse(slurp(only_file(out, ".json")));
  ASSERT_EQ(j["arms"].size(), 2u);
  EXPECT_EQ(j["arms"][0]["name"], "baseline");
  EXPECT_EQ(j["arms"][1]["name"], "candidate");
  ASSERT_EQ(j["scenarios"].size(), 2u);
  for (const auto& s : j["scenarios"]) {
    SCOPED_TRACE(s["name"].get<std::string>());
    const json& c = s["comparison"];
    EXPECT_EQ(c["pairs"], 3);
    EXPECT_DOUBLE_EQ(c["token_agreement"].get<double>(), 1.0);
    EXPECT_GT(c["candidate_program_calls_min"].get<int>(), 0);
    for (const char* k : {"change_percent", "change_ci95_low_percent", "change_ci95_high_percent", "verdict"})
      EXPECT_TRUE(c["decode"].contains(k)) << k;
    // Interleaved: baseline and candidate alternate, the order flipping each repetition.
    std::string order;
    for (const auto& run : s["runs"]) order += run["arm"] == "baseline" ? "A" : "B";
    EXPECT_EQ(order, "ABBAAB");
  }
  EXPECT_TRUE(j["validity"]["program_ran"].get<bool>());
  EXPECT_EQ(j["across_scenarios"]["decode"]["scenarios"], 2);
  EXPECT_TRUE(j["across_scenarios"]["decode"]["change_percent"].contains("stddev"));
  const std::string md = slurp(only_file(out, ".md"));
  EXPECT_NE(md.find("## Candidate against baseline"), std::string::npos);
  EXPECT_NE(md.find("Across scenarios"), std::string::npos);
}

TEST_F(BenchCli, CompareWithoutProgramOrRunIsAClearError) {
  const fs::path empty = dir_ / "empty-cwd";
  fs::create_directories(empty);
  const std::string cmd = "cd '" + empty.string() + "' && " + GQA_BINARY + " bench --mode compare " + common() +
                          "--max-tokens-cap 2 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string outp;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) outp.append(buf, n);
  const int st = pclose(p);
  EXPECT_EQ(WEXITSTATUS(st), 1) << outp;
  EXPECT_NE(outp.find("pass --program PROG"), std::string::npos) << outp;
}

TEST_F(BenchCli, RefusesScenariosThatDoNotFitAndTooFewRuns) {
  CmdResult r = run("bench --mode quick " + common() + "--runs 2 --output-dir " + (dir_ / "x").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("at least 3 measured runs"), std::string::npos) << r.out;
  r = run("bench --mode full " + common() + "--output-dir " + (dir_ / "x").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("do not fit the model's context window of 4096"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--context-cap"), std::string::npos) << r.out;
}

TEST_F(BenchCli, SigintWritesPartialResults) {
  const fs::path out = dir_ / "sigint";
  const fs::path log = dir_ / "sigint.log";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    if (!f) _exit(99);
    dup2(fileno(stderr), STDOUT_FILENO);
    const std::string args = "bench --mode quick " + common() + "--max-tokens-cap 48 --context-cap 192 --runs 200 --output-dir " + out.string();
    std::vector<std::string> parts;
    std::istringstream is(args);
    for (std::string w; is >> w;) parts.push_back(w);
    std::vector<char*> argv{const_cast<char*>(GQA_BINARY)};
    for (auto& s : parts) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(GQA_BINARY, argv.data());
    _exit(98);
  }
  // Wait until measuring has begun, then a little longer, then Ctrl-C.
  const auto t0 = std::chrono::steady_clock::now();
  while (slurp(log).find("bench quick:") == std::string::npos &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  kill(pid, SIGINT);
  int st = 0;
  waitpid(pid, &st, 0);
  const std::string text = slurp(log);
  ASSERT_TRUE(WIFEXITED(st)) << text;
  EXPECT_EQ(WEXITSTATUS(st), 130) << text;
  EXPECT_NE(text.find("interrupted"), std::string::npos) << text;
  const json j = json::parse(slurp(only_file(out, ".json")));
  EXPECT_TRUE(j["interrupted"].get<bool>());
  ASSERT_GE(j["scenarios"].size(), 1u);
  EXPECT_FALSE(j["scenarios"].back()["complete"].get<bool>());
  EXPECT_LT(j["scenarios"][0]["runs"].size(), 200u);
  only_file(out, ".csv");
  EXPECT_NE(slurp(only_file(out, ".md")).find("**Interrupted**"), std::string::npos);
}

}  // namespace
