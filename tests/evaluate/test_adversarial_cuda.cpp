// The adversarial suite on the CUDA target (ctest label gpu; skips itself without a GPU): each cheat in
// cuda_cheats/ is spliced into the tunable CUDA example's EVOLVE-BLOCK (the real entry renamed to
// attention_real) and must fail, scoring 0, costing only its worker; the honest examples must pass.
// On a machine other than the build's, GQA_SOURCE_DIR (the checkout), GQA_EVOLVE_BINARY and
// GQA_TEST_CACHE_DIR override the compiled-in paths.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <sstream>

#include "common/error.h"
#include "evaluate/evaluator.h"
#include "evaluate/imports.h"
#include "programs/compiler.h"

namespace gqa {
namespace {

namespace fs = std::filesystem;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}
std::string source_dir() { return env_or("GQA_SOURCE_DIR", GQA_SOURCE_DIR); }
std::string cache_dir() { return env_or("GQA_TEST_CACHE_DIR", GQA_TEST_CACHE_DIR) + "/cuda"; }
std::string example(const char* name) { return read_file(source_dir() + "/examples/qwen3_gqa/" + name, "test"); }

const std::vector<std::string> kCheats = {
    "writes_nothing", "writes_zeros", "partial_output", "cached_results", "no_causal_mask", "half_kv",
    "spins_forever", "host_segfault", "device_illegal_address", "writes_past_output", "writes_into_inputs",
    "calls_exit", "benchmark_shortcut", "right_until_benchmark", "not_capturable", "ignores_stream", "engine_only",
    "late_stop", "residue37", "trusts_bound", "no_max", "forks", "creates_file", "forges_records"};

std::string with_cheat(const std::string& name) {
  std::string s = example("tunable_program.cu");
  const std::string head = "static int attention(const gqa_attention_args* a) {";
  s.replace(s.find(head), head.size(), "static int attention_real(const gqa_attention_args* a) {");
  const std::string cheat = read_file(source_dir() + "/tests/evaluate/cuda_cheats/" + name + ".cu", "test");
  s.insert(s.find("// EVOLVE-BLOCK-END"), cheat + "\n");
  return s;
}

std::string program_path(const std::string& name) { return cache_dir() + "/adversarial/" + name + ".cu"; }

bool have_gpu() {
  static const bool gpu = !detect_cuda_arch().empty();
  return gpu;
}

class AdversarialCuda : public ::testing::Test {
 protected:
  // Writes every cheat and compiles them all at once (nvcc is slow; the evaluations then hit the cache).
  static void SetUpTestSuite() {
    if (!have_gpu()) return;
    fs::create_directories(cache_dir() + "/adversarial");
    std::vector<std::future<void>> jobs;
    for (const std::string& name : kCheats) {
      const std::string src = with_cheat(name);
      write_file_atomic(program_path(name), src, "test");
      jobs.push_back(std::async(std::launch::async, [src, name] {
        CompileOptions co;
        co.target = Target::Cuda;
        co.cache_dir = cache_dir();
        co.extra_flags = eval::cuda_program_flags();  // as the evaluator compiles: the same cache entries
        compile_program(src, name, co);
      }));
    }
    for (auto& j : jobs) j.get();
  }
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no GPU";
  }
};

eval::EvaluateOptions options(const std::string& path) {
  eval::EvaluateOptions o;
  o.program_path = path;
  o.target = Target::Cuda;
  o.cache_dir = cache_dir();
  o.worker_executable = env_or("GQA_EVOLVE_BINARY", GQA_BINARY);
  o.timeout_seconds = 120;
  o.bench = false;  // the cascade stops at correctness for most cheats; tests that need more turn it on
  o.end_to_end = false;
  return o;
}

void expect_rejected(const nlohmann::json& r, const std::string& stage) {
  const auto& m = r["metrics"];
  EXPECT_FALSE(m["correct"].get<bool>()) << r.dump(2);
  EXPECT_EQ(m["combined_score"].get<double>(), 0.0);
  ASSERT_TRUE(m["failed_stage"].is_string()) << r.dump(2);
  EXPECT_EQ(m["failed_stage"].get<std::string>(), stage) << m.value("failure", "") << "\n"
                                                        << r["artifacts"].value("correctness_report", "");
  std::printf("  -> %s: %s\n", m["failed_stage"].get<std::string>().c_str(),
              m.value("failure", std::string()).substr(0, 200).c_str());
}

nlohmann::json cheat(const std::string& name, bool skip_static = false, bool bench = false, double timeout = 120) {
  auto o = options(program_path(name));
  o.skip_static = skip_static;
  o.bench = bench;
  o.bench_seconds = 0.05;
  o.timeout_seconds = timeout;
  std::printf("[%s]\n", name.c_str());
  return eval::evaluate(o);
}

TEST_F(AdversarialCuda, WritesNothing) { expect_rejected(cheat("writes_nothing"), "correctness"); }
TEST_F(AdversarialCuda, WritesZeros) { expect_rejected(cheat("writes_zeros"), "correctness"); }
TEST_F(AdversarialCuda, WritesOnlyPartOfTheOutput) { expect_rejected(cheat("partial_output"), "correctness"); }
TEST_F(AdversarialCuda, ReturnsResultsCachedFromAnEarlierCall) { expect_rejected(cheat("cached_results"), "correctness"); }
TEST_F(AdversarialCuda, IgnoresTheCausalMask) { expect_rejected(cheat("no_causal_mask"), "correctness"); }
TEST_F(AdversarialCuda, ReadsOnlyHalfTheKvCache) { expect_rejected(cheat("half_kv"), "correctness"); }
TEST_F(AdversarialCuda, ShortcutOnBenchmarkShapes) { expect_rejected(cheat("benchmark_shortcut"), "correctness"); }
TEST_F(AdversarialCuda, WritesPastTheOutput) { expect_rejected(cheat("writes_past_output"), "correctness"); }
TEST_F(AdversarialCuda, WritesIntoInputs) { expect_rejected(cheat("writes_into_inputs"), "correctness"); }
TEST_F(AdversarialCuda, NotCapturableInAGraph) {
  expect_rejected(cheat("not_capturable"), "static");  // imports cudaStreamQuery
  expect_rejected(cheat("not_capturable", true), "correctness");  // the capture holds on its own
}
TEST_F(AdversarialCuda, LaunchesOnTheDefaultStream) { expect_rejected(cheat("ignores_stream"), "correctness"); }

TEST_F(AdversarialCuda, IllegalAddressIsStickyButCostsOnlyThisCandidate) {
  expect_rejected(cheat("device_illegal_address"), "correctness");
  // The next evaluation gets a fresh worker and a fresh CUDA context.
  expect_rejected(cheat("writes_zeros"), "correctness");
}

TEST_F(AdversarialCuda, HostSegfault) {
  auto r = cheat("host_segfault", true);
  expect_rejected(r, "correctness");
  EXPECT_NE(r["metrics"].value("failure", "").find("signal"), std::string::npos) << r["metrics"].dump(2);
}

TEST_F(AdversarialCuda, SpinsForeverIsKilledAtTheLimit) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = cheat("spins_forever", false, false, 15);
  expect_rejected(r, "correctness");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60);
}

TEST_F(AdversarialCuda, CallsExit) {
  expect_rejected(cheat("calls_exit"), "static");
  expect_rejected(cheat("calls_exit", true), "correctness");
}

// Right for its first 50 host calls, then nothing: the correctness stage alone makes more (H100: its last 7 cases
// of the first trial came back NaN).
TEST_F(AdversarialCuda, RightOnlyForItsFirstCalls) {
  expect_rejected(cheat("right_until_benchmark", false, true), "correctness");
}
// Stops computing part-way through the timed replays (a device-side counter): every timed output is
// compared with the stock kernel's.
TEST_F(AdversarialCuda, StopsComputingPartWayThroughTheBenchmark) { expect_rejected(cheat("late_stop", false, true), "benchmark"); }

// A deliberate attacker against the result channel (static checks skipped): the relay, which judges the CUDA
// target's host entries, refuses every record the child writes unasked.
TEST_F(AdversarialCuda, ForgesEveryRecordInTheSharedAreaAndExitsCleanly) {
  const nlohmann::json r = cheat("forges_records", /*skip_static=*/true, /*bench=*/true);
  expect_rejected(r, "worker");
  EXPECT_NE(r["metrics"].value("failure", "").find("refused_from_candidate"), std::string::npos) << r.dump(2);
}

// The classes of inputs the fixed shapes never had (lengths live on the device, so the cheats rewrite them there).
// Whether the correctness report has a failed line of the case `name`.
bool case_failed(const nlohmann::json& r, const std::string& name) {
  std::istringstream report(r["artifacts"].value("correctness_report", ""));
  for (std::string line; std::getline(report, line);)
    if (line.rfind(name, 0) == 0 && line.find(" FAIL: ") != std::string::npos) return true;
  return false;
}
// Wrong only for decode lengths of 37 modulo 64: every evaluation has a decode batch covering every residue.
TEST_F(AdversarialCuda, WrongAtOneResidueOfTheTileSize) {
  const nlohmann::json r = cheat("residue37");
  expect_rejected(r, "correctness");
  EXPECT_TRUE(case_failed(r, "decode_b128_every_residue")) << r["artifacts"].value("correctness_report", "");
}
// Takes max_kv_len as the length of a single sequence: the cases that pass it as the cache capacity.
TEST_F(AdversarialCuda, TrustsTheLengthBoundAsTheLength) {
  const nlohmann::json r = cheat("trusts_bound");
  expect_rejected(r, "correctness");
  EXPECT_TRUE(case_failed(r, "decode_kv_bound_4096")) << r["artifacts"].value("correctness_report", "");
}
// exp of the raw scores: the large-logit rows overflow.
TEST_F(AdversarialCuda, SoftmaxWithoutTheMaxSubtracted) { expect_rejected(cheat("no_max"), "correctness"); }

TEST_F(AdversarialCuda, WrongOnlyInsideTheEngine) {
  // 0.533 on an H100 against kE2eLogitToleranceCuda 0.3 (the honest programs: 0.007).
  auto o = options(program_path("engine_only"));
  o.end_to_end = true;
  std::printf("[engine_only]\n");
  expect_rejected(eval::evaluate(o), "end_to_end");
}

// The worker's seccomp filter on the CUDA target (EvaluateOptions::cuda_sandbox, on by default since these tests
// passed on an H200): honest programs run through every stage under it, a program that starts a process is
// killed, one that creates a file gets EACCES and no file.
TEST_F(AdversarialCuda, SandboxedWorkerRunsHonestProgramsThroughEveryStage) {
  for (const char* name : {"initial_program.cu", "tunable_program.cu"}) {
    auto o = options(source_dir() + "/examples/qwen3_gqa/" + name);
    o.cuda_sandbox = true;
    o.bench = true;
    o.bench_seconds = 0.2;
    o.end_to_end = true;
    const auto r = eval::evaluate(o);
    EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << name << "\n" << r.dump(2);
    std::printf("[%s, sandboxed] combined_score %.4f\n", name, r["metrics"]["combined_score"].get<double>());
  }
}
TEST_F(AdversarialCuda, SandboxedWorkerKillsAProgramThatStartsAProcess) {
  auto o = options(program_path("forks"));
  o.skip_static = true;  // the filter is EvaluateOptions' default: this test fails if that default goes off
  std::printf("[forks, sandboxed]\n");
  const auto r = eval::evaluate(o);
  expect_rejected(r, "correctness");
  EXPECT_NE(r["artifacts"].value("worker_stderr", "").find("system call 57 refused"), std::string::npos) << r.dump(2);
}
TEST_F(AdversarialCuda, SandboxedWorkerKeepsAProgramFromCreatingFiles) {
  const std::string made = "/tmp/gqa_cuda_cheat_created";
  std::filesystem::remove(made);
  auto o = options(program_path("creates_file"));
  o.skip_static = true;
  o.cuda_sandbox = true;
  const auto r = eval::evaluate(o);
  EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << r.dump(2);
  EXPECT_FALSE(std::filesystem::exists(made));
}

// The other side of the gate: honest host-entry programs pass it, and their teacher-forced logit error is printed
// (0.007 on an H200), with what the evaluation cost (the end-to-end stage's share of it: the next GPU run).
TEST_F(AdversarialCuda, HonestProgramsPassTheEndToEndGate) {
  for (const char* name : {"initial_program.cu", "tunable_program.cu"}) {
    auto o = options(source_dir() + "/examples/qwen3_gqa/" + name);
    o.end_to_end = true;
    const auto r = eval::evaluate(o);
    const auto& m = r["metrics"];
    ASSERT_TRUE(m["correct"].get<bool>()) << name << "\n" << r.dump(2);
    ASSERT_TRUE(m.contains("e2e_logit_error")) << name << "\n" << r.dump(2);
    std::printf("[%s] e2e_logit_error %.4g at step %d (bound %.3g), token agreement %.3f\n", name,
                m["e2e_logit_error"].get<double>(), m["e2e_logit_error_step"].get<int>(),
                m["e2e_logit_tolerance"].get<double>(), m["e2e_token_agreement"].get<double>());
    std::printf("[%s] worker %.2f s, of which correctness %.2f s; evaluation %.2f s\n", name,
                m.value("worker_seconds", 0.0), m.value("correctness_seconds", 0.0),
                m.value("evaluation_seconds", 0.0));
  }
}

// A device entry (gqa/decode_abi.cuh) that never returns: the worker is killed at the time limit, the program
// scores 0, and the next evaluation on the same GPU works (the stock persistent-step program, correct).
TEST_F(AdversarialCuda, DeviceEntryThatHangsIsKilledAndTheNextEvaluationWorks) {
  std::string s(stock_decode_program_text());
  const std::string head = "__device__ __forceinline__ int attend(gqa_decode_split* s) {";
  // clock64() reads the SM's clock (never negative): a loop the compiler cannot remove or prove finite. (A loop on
  // a volatile local was compiled away on the H100: the program then passed.)
  s.replace(s.find(head), head.size(), head + "\n  while (clock64() >= 0) {\n  }");
  const std::string path = cache_dir() + "/adversarial/device_spins.cu";
  write_file_atomic(path, s, "test");
  auto o = options(path);
  o.timeout_seconds = 40;
  std::printf("[device_spins]\n");
  expect_rejected(eval::evaluate(o), "correctness");
  const std::string stock = cache_dir() + "/adversarial/device_stock.cu";
  write_file_atomic(stock, std::string(stock_decode_program_text()), "test");
  const auto r = eval::evaluate(options(stock));
  EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << r.dump(2);
  EXPECT_EQ(r["metrics"]["entry"].get<std::string>(), "device");
}

// A device entry right at the scored model's group (Qwen3-0.6B: 2 query heads per KV head) and wrong at 4B's and
// 8B's (4: it attends as if there were 2, leaving two heads' states unwritten): `generate --attention` would link it
// into those models' steps, so the correctness stage, which checks every Qwen3 group, refuses it at group 4.
TEST_F(AdversarialCuda, DeviceEntryRightOnlyAtTheScoredModelsGroup) {
  std::string s(stock_decode_program_text());
  const std::string right = "case 4: return stock_decode::attend<128, 4>(s);";
  s.replace(s.find(right), right.size(), "case 4: return stock_decode::attend<128, 2>(s);");
  const std::string path = cache_dir() + "/adversarial/device_group_2_only.cu";
  write_file_atomic(path, s, "test");
  std::printf("[device_group_2_only]\n");
  const auto r = eval::evaluate(options(path));
  expect_rejected(r, "correctness");
  EXPECT_NE(r["metrics"].value("failure", std::string()).find("at group 4"), std::string::npos) << r.dump(2);
}

TEST_F(AdversarialCuda, EditsOutsideTheEvolveBlock) {
  std::string s = example("tunable_program.cu");
  const std::string entry = "{ return attention(args); }";
  s.replace(s.find(entry), entry.size(), "{ return attention(args) * 0; }");
  const std::string path = cache_dir() + "/adversarial/edits_outside.cu";
  write_file_atomic(path, s, "test");
  auto o = options(path);
  o.parent_path = source_dir() + "/examples/qwen3_gqa/tunable_program.cu";
  expect_rejected(eval::evaluate(o), "static");
}

TEST_F(AdversarialCuda, InitialProgramIsCorrect) {
  auto o = options(source_dir() + "/examples/qwen3_gqa/initial_program.cu");
  auto r = eval::evaluate(o);
  EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << r.dump(2);
  EXPECT_EQ(r["metrics"]["combined_score"].get<double>(), 1.0);
}

TEST_F(AdversarialCuda, TunableProgramIsCorrectWithAScore) {
  auto o = options(source_dir() + "/examples/qwen3_gqa/tunable_program.cu");
  o.bench = true;
  o.bench_seconds = 0.2;
  auto r = eval::evaluate(o);
  const auto& m = r["metrics"];
  ASSERT_TRUE(m["correct"].get<bool>()) << r.dump(2);
  EXPECT_GT(m["combined_score"].get<double>(), 0.0);
  EXPECT_EQ(m["benchmark"].size(), 7u);
  std::printf("%s\n", r["artifacts"].value("benchmark_table", "").c_str());
  // What the per-call checks (integrity, comparison with the stock output) cost of the timed loops' wall time.
  ASSERT_TRUE(m.contains("benchmark_check_seconds")) << r.dump(2);
  std::printf("per-call checks: %.3f s of %.3f s in the timed loops\n", m["benchmark_check_seconds"].get<double>(),
              m["benchmark_timed_loop_seconds"].get<double>());
}

}  // namespace
}  // namespace gqa
