// The CUDA target's import allow-list, without a GPU: the example CUDA programs and cheats compiled with
// nvcc as the evaluator compiles them (-cudart shared, so that the runtime's functions are imports) and
// their imports checked. Honest programs pass; a cheat calling anything a kernel launch does not need
// (cudaMalloc, cudaDeviceSynchronize, cudaStreamQuery, fopen, dlopen, exit) is refused, naming the symbol;
// so are code run at load time and a program linked to the runtime statically. Skips without nvcc.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <map>

#include "adversarial_util.h"
#include "evaluate/imports.h"

namespace gqa {
namespace {

using namespace gqa::test;

std::string cheat_file(const char* name) {
  return read_file(std::string(GQA_CHEATS_DIR) + "/" + name + ".cu", "test");
}

// name → source; every program is compiled once, all in parallel (nvcc takes ~2.5 s a program).
const std::map<std::string, std::string>& programs() {
  static const std::map<std::string, std::string> p = {
      {"initial", example("initial_program.cu")},
      {"tunable", example("tunable_program.cu")},
      {"not_capturable", with_cheat(cheat_file("not_capturable"), "", "tunable_program.cu")},
      {"calls_exit", with_cheat(cheat_file("calls_exit"), "", "tunable_program.cu")},
      // Each call hidden behind a condition that never holds: only the import matters here.
      {"forbidden_calls", with_cheat(R"(extern "C" struct _IO_FILE* fopen(const char*, const char*);
extern "C" void* dlopen(const char*, int);
static int attention(const gqa_attention_args* a) {
  if (a->num_seqs < 0) {
    void* p = nullptr;
    cudaMalloc(&p, 1 << 20);
    cudaDeviceSynchronize();
    fopen("/tmp/x", "w");
    dlopen("libc.so.6", 2);
  }
  return attention_real(a);
})", "", "tunable_program.cu")},
      // A global with a dynamic initialiser: host code that would run inside dlopen.
      {"load_time", with_cheat(R"(static int probe() { volatile int x = 3; return x; }
static int g_at_load = probe();
static int attention(const gqa_attention_args* a) { return g_at_load == 3 ? attention_real(a) : GQA_OK; })", "",
                               "tunable_program.cu")},
  };
  return p;
}

bool have_nvcc() {
  try {
    compiler_version(Target::Cuda);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

CompileOptions cuda_options(bool shared_runtime = true) {
  CompileOptions co;
  co.target = Target::Cuda;
  co.cuda_arch = "sm_90a";  // no GPU needed to compile
  co.cache_dir = std::string(GQA_TEST_CACHE_DIR) + "/imports";
  if (shared_runtime) co.extra_flags = eval::cuda_program_flags();
  return co;
}

class CudaImports : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_nvcc()) return;
    std::vector<std::pair<std::string, std::future<CompileResult>>> jobs;
    for (const auto& [name, src] : programs())
      jobs.emplace_back(name, std::async(std::launch::async, [&src = src, name = name] { return compile_program(src, name, cuda_options()); }));
    for (auto& [name, job] : jobs) checks_[name] = job.get();
  }
  void SetUp() override {
    if (!have_nvcc()) GTEST_SKIP() << "no nvcc";
  }
  static eval::ImportCheck check(const std::string& name) {
    const CompileResult& r = checks_.at(name);
    if (!r.ok) throw std::runtime_error(name + " did not compile:\n" + r.log);
    return eval::check_imports(r.so_path, Target::Cuda);
  }
  static inline std::map<std::string, CompileResult> checks_;
};

// True when one of the problems names `symbol` as an import.
bool refuses(const eval::ImportCheck& c, const std::string& symbol) {
  for (const auto& p : c.problems)
    if (p.find("imports '" + symbol + "'") != std::string::npos) return true;
  return false;
}

TEST_F(CudaImports, HonestExamplesPass) {
  for (const char* name : {"initial", "tunable"}) {
    const eval::ImportCheck c = check(name);
    EXPECT_TRUE(c.ok) << name << ":\n" << c.report;
    // The runtime's functions are imports now, checked one by one.
    EXPECT_NE(c.report.find("__cudaLaunchKernel"), std::string::npos) << c.report;
    EXPECT_NE(c.report.find("verdict: ok"), std::string::npos);
  }
}

TEST_F(CudaImports, CallsOutsideTheLaunchPathAreRefusedByName) {
  const eval::ImportCheck c = check("forbidden_calls");
  EXPECT_FALSE(c.ok);
  for (const char* symbol : {"cudaMalloc", "cudaDeviceSynchronize", "fopen", "dlopen"})
    EXPECT_TRUE(refuses(c, symbol)) << symbol << " not refused:\n" << c.report;
  EXPECT_FALSE(refuses(c, "cudaPeekAtLastError")) << c.report;  // the honest part's import stays allowed
  EXPECT_TRUE(refuses(check("not_capturable"), "cudaStreamQuery"));
  EXPECT_TRUE(refuses(check("calls_exit"), "exit"));
}

TEST_F(CudaImports, LoadTimeHostCodeIsRefused) {
  // nvcc's own registration constructor is allowed; the program's dynamic initialiser is not.
  const eval::ImportCheck c = check("load_time");
  ASSERT_FALSE(c.ok) << c.report;
  EXPECT_NE(c.problems.front().find("runs when it is loaded"), std::string::npos) << c.problems.front();
  EXPECT_NE(c.problems.front().find("_GLOBAL__sub_I"), std::string::npos) << c.problems.front();
}

TEST_F(CudaImports, RuntimeLinkedStaticallyIsRefused) {
  // nvcc's default: the runtime inside the object, so its imports say nothing about the program.
  const CompileResult r = compile_program(programs().at("tunable"), "tunable_static", cuda_options(false));
  ASSERT_TRUE(r.ok) << r.log;
  const eval::ImportCheck c = eval::check_imports(r.so_path, Target::Cuda);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.report.find("verdict: refused"), std::string::npos);
  bool said = false;
  for (const auto& p : c.problems) said |= p.find("-cudart shared") != std::string::npos;
  EXPECT_TRUE(said) << c.report;
}

// The worker gets --cuda-sandbox (the seccomp filter of a CUDA host entry) unless EvaluateOptions::cuda_sandbox
// (evaluate --no-cuda-sandbox) is off. The worker here is a script that writes down its arguments and exits, so
// no GPU is needed: the evaluation itself then fails at "load" (no record came), which is not what is tested.
TEST_F(CudaImports, TheSandboxFlagReachesTheWorkerUnlessTurnedOff) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(GQA_TEST_CACHE_DIR) / "sandbox-flag";
  fs::create_directories(dir);
  const fs::path program = dir / "tunable_program.cu", worker = dir / "worker.sh", args = dir / "args.txt";
  write_file_atomic(program.string(), example("tunable_program.cu"), "test");
  write_file_atomic(worker.string(), "#!/bin/sh\necho \"$@\" > '" + args.string() + "'\nexit 3\n", "test");
  fs::permissions(worker, fs::perms::owner_all);
  for (const bool sandbox : {true, false}) {
    fs::remove(args);
    eval::EvaluateOptions o = options(program.string());
    o.target = Target::Cuda;
    o.cuda_arch = "sm_90a";
    o.worker_executable = worker.string();
    o.cuda_sandbox = sandbox;
    const nlohmann::json r = eval::evaluate(o);
    EXPECT_EQ(r["metrics"].value("failed_stage", ""), "load") << r.dump(2);  // no "loaded" record: it ended first
    const std::string argv = read_file(args.string(), "test");
    EXPECT_NE(argv.find("eval-worker"), std::string::npos) << argv;
    EXPECT_EQ(argv.find("--cuda-sandbox") != std::string::npos, sandbox) << argv;
  }
}

}  // namespace
}  // namespace gqa
