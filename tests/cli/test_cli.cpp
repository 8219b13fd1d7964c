// The gqa-evolve binary as a user runs it: help, make-model, generate, tokenize, and clear errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;

struct CmdResult {
  int code;
  std::string out;
};

CmdResult run(const std::string& args) {
  std::string cmd = std::string(GQA_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

bool have_tokenizer() { return fs::exists(fs::path(GQA_TOKENIZER_DIR) / "tokenizer.json"); }

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("gqa-cli-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    std::string tok = have_tokenizer() ? GQA_TOKENIZER_DIR : "";
    CmdResult r = run("make-model --preset tiny --seed 3 --out " + (dir_ / "tiny").string() + " --tokenizer-dir '" + tok + "'");
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string model() { return (dir_ / "tiny").string(); }
  static fs::path dir_;
};
fs::path Cli::dir_;

TEST_F(Cli, EverySubcommandHasHelp) {
  for (const char* sub : {"make-model", "tokenize", "generate"}) {
    CmdResult r = run(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find("--"), std::string::npos) << r.out;
  }
  CmdResult r = run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("generate"), std::string::npos);
}

// `report DIR`: a folder without a run, and a run folder without the chart library, are clear errors.
TEST_F(Cli, ReportErrorsNameWhatIsMissing) {
  CmdResult r = run("report " + (dir_ / "nowhere").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("error: [report] " + (dir_ / "nowhere").string() + ": no evolve.db here (not a run folder)"), std::string::npos) << r.out;
  const fs::path run_dir = dir_ / "run";
  fs::create_directories(run_dir);
  std::ofstream(run_dir / "evolve.db").put('x');
  r = run("report " + run_dir.string() + " --assets " + (dir_ / "no-assets").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find((dir_ / "no-assets" / "uplot" / "uPlot.iife.min.js").string() + " is missing: run scripts/setup.sh"),
            std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(run_dir / "report.html"));
  r = run("--help");
  EXPECT_NE(r.out.find("report"), std::string::npos) << r.out;
}

TEST_F(Cli, GenerateFromIdsAsJsonIsDeterministic) {
  std::string args = "generate --model " + model() + " --prompt-ids 9707,1879,11 --max-tokens 7 --ignore-eos --json";
  CmdResult a = run(args), b = run(args);
  ASSERT_EQ(a.code, 0) << a.out;
  auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja["prompt_ids"], nlohmann::json({9707, 1879, 11}));
  EXPECT_EQ(ja["token_ids"].size(), 7u);
  EXPECT_EQ(ja["token_ids"], jb["token_ids"]);
  EXPECT_EQ(ja["generated_tokens"], 7);
  EXPECT_GT(ja["decode_tokens_per_second"].get<double>(), 0);
  EXPECT_GT(ja["peak_memory_bytes"].get<double>(), 1e6);
  // Sampling with a seed is reproducible and differs from greedy in general.
  CmdResult s1 = run("generate --model " + model() + " --prompt-ids 1,2,3 --max-tokens 10 --temperature 1.5 --seed 5 --ignore-eos --json");
  CmdResult s2 = run("generate --model " + model() + " --prompt-ids 1,2,3 --max-tokens 10 --temperature 1.5 --seed 5 --ignore-eos --json");
  ASSERT_EQ(s1.code, 0) << s1.out;
  EXPECT_EQ(nlohmann::json::parse(s1.out)["token_ids"], nlohmann::json::parse(s2.out)["token_ids"]);
}

TEST_F(Cli, GenerateTextStreamsAndReportsSpeed) {
  if (!have_tokenizer()) GTEST_SKIP() << "tokenizer files missing: run scripts/setup.sh";
  CmdResult r = run("generate --model " + model() + " --prompt 'Hello there' --chat --max-tokens 5 --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("prompt:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tok/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak memory"), std::string::npos) << r.out;
  CmdResult j = run("generate --model " + model() + " --prompt 'Hello there' --max-tokens 3 --ignore-eos --json");
  ASSERT_EQ(j.code, 0) << j.out;
  auto js = nlohmann::json::parse(j.out);
  EXPECT_TRUE(js["text"].is_string());
  EXPECT_EQ(js["prompt_ids"], nlohmann::json({9707, 1052}));
}

TEST_F(Cli, Tokenize) {
  if (!have_tokenizer()) GTEST_SKIP() << "tokenizer files missing: run scripts/setup.sh";
  CmdResult r = run("tokenize --model " + model() + " --text 'Hello world' --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["ids"], nlohmann::json({9707, 1879}));
  fs::path lines = dir_ / "lines.jsonl";
  std::ofstream(lines) << "\"Hello world\"\n\"<|im_end|>\"\n";
  r = run("tokenize --model " + model() + " --input " + lines.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "[9707,1879]\n[151645]\n");
  fs::path chat = dir_ / "chat.json";
  std::ofstream(chat) << R"([{"role":"user","content":"Hi"}])";
  r = run("tokenize --model " + model() + " --chat " + chat.string() + " --enable-thinking=false --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["text"], "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(j["ids"].front(), 151644);
}

TEST_F(Cli, BadInputGivesOneClearError) {
  CmdResult r = run("generate --model /nonexistent/model --prompt-ids 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("/nonexistent/model"), std::string::npos) << r.out;
  r = run("generate --model " + model() + " --prompt-ids 1,x,3");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("'x'"), std::string::npos) << r.out;
  r = run("generate --model " + model() + " --prompt-ids 1 --top-p 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("top-p"), std::string::npos) << r.out;
  r = run("make-model --preset nope --out " + (dir_ / "x").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("nope"), std::string::npos) << r.out;
  r = run("generate --bogus-flag");
  EXPECT_NE(r.code, 0);
  // The CUDA engine's flags: checked before any GPU work (so also here, without one), and refused for the CPU.
  r = run("generate --model " + model() + " --prompt-ids 1 --device cuda --decode-layout sideways");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("'sideways' is unknown (known: persistent, fused, unfused)"), std::string::npos) << r.out;
  r = run("generate --model " + model() + " --prompt-ids 1 --device cuda --cuda-option persistent_tile_kib=1000");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("persistent_tile_kib='1000' must be an integer in [32, 192]"), std::string::npos) << r.out;
  r = run("generate --model " + model() + " --prompt-ids 1 --device cpu --decode-layout fused");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("apply to the CUDA engine only"), std::string::npos) << r.out;
  // A damaged config.json names the file.
  fs::path broken = dir_ / "broken";
  fs::create_directories(broken);
  fs::copy(model() + "/model.safetensors", broken / "model.safetensors");
  std::ofstream(broken / "config.json") << "{\"hidden_size\": \"big\"";
  r = run("generate --model " + broken.string() + " --prompt-ids 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("config.json"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("terminate"), std::string::npos) << r.out;
}

}  // namespace
