// Unit tests of the program machinery: SHA-256 against FIPS 180-4 vectors, the compile cache (hits,
// cached failures, keys), loading, the stock kernel against the reference, the static checks, and the
// process runner's time limit.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/error.h"
#include "common/process.h"
#include "engine/cpu/attention_bf16.h"
#include "evaluate/cases.h"
#include "evaluate/problem.h"
#include "evaluate/static_check.h"
#include "model/make_model.h"
#include "programs/loader.h"
#include "programs/sha256.h"

namespace gqa {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Sha256 h;  // the same digest fed in pieces
  h.update("abcdbcdecdefdefgefghfghighijhijk").update("ijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(h.hex(), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

CompileOptions test_options() {
  CompileOptions o;
  o.cache_dir = GQA_TEST_CACHE_DIR;
  return o;
}

TEST(Compiler, CachesSuccessAndFailure) {
  const std::string src = read_file(std::string(GQA_EXAMPLES_DIR) + "/tunable_program.cpp", "test");
  CompileResult a = compile_program(src, "tunable", test_options());
  ASSERT_TRUE(a.ok) << a.log;
  CompileResult b = compile_program(src, "tunable", test_options());
  EXPECT_TRUE(b.cached);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(b.so_path, a.so_path);
  CompileOptions flags = test_options();
  flags.extra_flags = {"-DGQA_TEST_FLAG=1"};
  EXPECT_NE(compile_program(src, "tunable", flags).key, a.key);  // flags are part of the key

  const std::string broken = src + "\nthis is not C++;\n";
  CompileResult f = compile_program(broken, "broken", test_options());
  EXPECT_FALSE(f.ok);
  EXPECT_NE(f.log.find("error"), std::string::npos) << f.log;
  CompileResult g = compile_program(broken, "broken", test_options());
  EXPECT_TRUE(g.cached);  // failures are cached, log included
  EXPECT_FALSE(g.ok);
  EXPECT_EQ(g.log, f.log);
}

TEST(Loader, RefusesOtherAbiVersion) {
  const std::string src = "#include \"gqa/abi.h\"\nextern \"C\" int gqa_abi_version(void) { return 999; }\n"
                          "extern \"C\" int gqa_attention(const gqa_attention_args*) { return 0; }\n";
  CompileResult r = compile_program(src, "v999", test_options());
  ASSERT_TRUE(r.ok) << r.log;
  try {
    LoadedProgram::open(r.so_path);
    FAIL() << "loaded a program of ABI version 999";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ABI version 999"), std::string::npos) << e.what();
  }
}

TEST(StockKernel, MatchesReferenceOnEveryCorrectnessCase) {
  eval::Rng rng{42};
  int index = 0;
  for (const eval::Case& c : eval::correctness_cases(Target::Cpu)) {
    if (c.max_kv_len() > 8192) continue;  // the 32K case is covered by the evaluator's runs
    eval::Problem p(c, index++ % 2 ? eval::KvLayout::HeadMajor : eval::KvLayout::PosMajor, 2);
    p.fill(rng);
    p.poison();
    ASSERT_EQ(cpu::stock_attention(&p.args()), GQA_OK) << c.name;
    p.set_inputs_read_only(false);
    eval::Comparison cmp = p.compare();
    EXPECT_TRUE(cmp.ok) << c.name << ": " << cmp.worst;
    EXPECT_LT(cmp.max_row_error, 0.005) << c.name;  // bf16 output rounding level
    EXPECT_TRUE(p.canaries_intact());
  }
}

// --shapes-of: a preset or a model directory gives its geometry; Q:KV:D round-trips; bad input is one error
// that names it.
TEST(HeadGeometry, FromPresetsDirectoriesAndText) {
  EXPECT_EQ(eval::head_geometry_of("qwen3-0.6b"), eval::HeadGeometry{});
  EXPECT_EQ(eval::head_geometry_of("qwen3-14b"), (eval::HeadGeometry{40, 8, 128}));
  EXPECT_EQ(eval::head_geometry_of("qwen3-32b"), (eval::HeadGeometry{64, 8, 128}));
  const std::string dir = testing::TempDir() + "/geometry-tiny-gqa4";
  make_random_model(preset_config("tiny-gqa4"), 1, dir, "");
  const eval::HeadGeometry t = eval::head_geometry_of(dir);
  EXPECT_EQ(t.q_heads / t.kv_heads, 4);
  EXPECT_EQ(t.head_dim, 64);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(eval::parse_head_geometry("32:8:128"), (eval::HeadGeometry{32, 8, 128}));
  EXPECT_EQ(eval::format_head_geometry({40, 8, 128}), "40:8:128");
  for (const char* bad : {"32:8", "32:7:128", "a:b:c", "32:8:128x", "0:8:128"}) {
    try {
      eval::parse_head_geometry(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos) << e.what();
    }
  }
  try {
    eval::head_geometry_of("qwen3-5b");
    ADD_FAILURE() << "qwen3-5b";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'qwen3-5b' is neither a model directory nor a preset"), std::string::npos);
  }
}

// The stock kernel against the float64 reference at the geometries of 4B (32:8) and 14B (40:8).
TEST(StockKernel, MatchesReferenceAtOtherGeometries) {
  eval::Rng rng{7};
  for (const eval::HeadGeometry g : {eval::HeadGeometry{32, 8, 128}, eval::HeadGeometry{40, 8, 128}}) {
    for (const eval::Case& c : eval::correctness_cases(Target::Cpu, g)) {
      if (c.max_kv_len() > 2048) continue;
      ASSERT_EQ(c.num_q_heads, g.q_heads);
      eval::Problem p(c, eval::KvLayout::HeadMajor, 2);
      p.fill(rng);
      p.poison();
      ASSERT_EQ(cpu::stock_attention(&p.args()), GQA_OK) << c.name;
      p.set_inputs_read_only(false);
      EXPECT_TRUE(p.compare().ok) << c.name << " at " << eval::format_head_geometry(g);
    }
  }
}

const std::string kFrame = "#include \"gqa/abi.h\"\n// EVOLVE-BLOCK-START\n{}\n// EVOLVE-BLOCK-END\nint tail_line;\n";

TEST(StaticCheck, MarkersIncludesAndDeniedCalls) {
  using eval::static_check;
  EXPECT_TRUE(static_check(fmt::format(fmt::runtime(kFrame), "int x = 1;"), Target::Cpu, std::nullopt).ok);
  EXPECT_FALSE(static_check("int x;\n", Target::Cpu, std::nullopt).ok);  // no markers
  EXPECT_FALSE(static_check(fmt::format(fmt::runtime(kFrame), "// EVOLVE-BLOCK-END"), Target::Cpu, std::nullopt).ok);
  for (const char* bad : {"#include <cstdio>", "#include <fstream>", "#include \"../secret.h\"", "int f() { return system(\"x\"); }",
                          "void f() { exit(0); }", "void f() { auto* p = fopen(\"x\", \"w\"); }", "void* p = malloc(4);",
                          "int* p = new int;", "void f() { std::ofstream o; }", "void f() { fork(); }",
                          "void f() { popen(\"ls\", \"r\"); }", "int s = socket(1, 2, 3);", "void f() { dlopen(0, 0); }",
                          "void f() { asm(\"nop\"); }", "#define CAT(a, b) a##b"}) {
    auto r = static_check(fmt::format(fmt::runtime(kFrame), bad), Target::Cpu, std::nullopt);
    EXPECT_FALSE(r.ok) << bad;
  }
  // Names in comments and strings are not calls.
  EXPECT_TRUE(static_check(fmt::format(fmt::runtime(kFrame), "// never call exit() here\nconst char* s = \"fopen\";"),
                           Target::Cpu, std::nullopt).ok);
  auto cuda = static_check(fmt::format(fmt::runtime(kFrame), "#include <cuda_bf16.h>\nvoid f() { cudaDeviceSynchronize(); }"),
                           Target::Cuda, std::nullopt);
  EXPECT_FALSE(cuda.ok);
  EXPECT_EQ(cuda.problems.size(), 1u) << fmt::format("{}", fmt::join(cuda.problems, "\n"));
}

TEST(StaticCheck, ParentRefusesEditsOutsideTheBlock) {
  const std::string parent = fmt::format(fmt::runtime(kFrame), "int x = 1;");
  EXPECT_TRUE(eval::static_check(fmt::format(fmt::runtime(kFrame), "int x = 2;\nint y = 3;"), Target::Cpu, parent).ok);
  std::string edited = parent;
  edited.replace(edited.find("int tail_line;"), 14, "int tail_line2;");
  auto r = eval::static_check(edited, Target::Cpu, parent);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.problems[0].find("outside") == std::string::npos ? r.problems[0].find("after") : 0, std::string::npos);
}

TEST(Process, KillsAtTheDeadlineAndReportsSignals) {
  ProcessOptions o;
  o.argv = {"sh", "-c", "echo started; sleep 30"};
  o.timeout_seconds = 0.5;
  ProcessResult r = run_process(o);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(r.seconds, 5);
  EXPECT_EQ(r.out, "started\n");
  o.argv = {"sh", "-c", "kill -SEGV $$"};
  o.timeout_seconds = 10;
  r = run_process(o);
  EXPECT_EQ(r.signal, 11);
  o.argv = {"sh", "-c", "echo err >&2; exit 3"};
  r = run_process(o);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "err\n");
}

TEST(Process, StdinDataReachesTheChildOnly) {
  // The evaluator hands the worker its nonce this way, never through the environment.
  ProcessOptions o;
  o.argv = {"sh", "-c", "cat; env | grep -c NONCE_TEXT_ || true"};
  o.stdin_data = "NONCE_TEXT_123\n";
  ProcessResult r = run_process(o);
  EXPECT_TRUE(r.ok()) << r.describe() << r.err;
  EXPECT_EQ(r.out, "NONCE_TEXT_123\n0\n");
}

}  // namespace
}  // namespace gqa
