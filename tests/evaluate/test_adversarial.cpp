// The adversarial suite (CPU target): programs that try to cheat or break the evaluator must all fail,
// scoring 0, and cost only their own worker process. Each cheat is the tunable example with its entry
// point wrapped (so that everything else about it is a good program); the honest examples must pass.
#include <gtest/gtest.h>

#include <chrono>

#include "adversarial_util.h"

namespace gqa {
namespace {

using namespace gqa::test;

nlohmann::json run(const eval::EvaluateOptions& o) { return eval::evaluate(o); }

TEST(Adversarial, WritesNothing) {
  expect_rejected(cheat("writes_nothing", "static int attention(const gqa_attention_args* a) { return GQA_OK; }"), "correctness");
}

TEST(Adversarial, WritesZeros) {
  expect_rejected(cheat("writes_zeros", R"(static int attention(const gqa_attention_args* a) {
  std::memset(a->out, 0, sizeof(gqa_bf16) * a->total_q * a->num_q_heads * a->head_dim);
  return GQA_OK;
})"), "correctness");
}

TEST(Adversarial, WritesOnlyPartOfTheOutput) {
  // As if the last half of the output had never been written: the poison shows through.
  expect_rejected(cheat("partial_output", R"(static int attention(const gqa_attention_args* a) {
  const size_t n = (size_t)a->total_q * a->num_q_heads * a->head_dim;
  gqa_bf16* keep = a->out;
  int rc = attention_real(a);
  for (size_t i = n / 2 + 1; i < n; ++i) keep[i] = 0x7FC1;
  return rc;
})"), "correctness");
}

TEST(Adversarial, ReturnsResultsCachedFromAnEarlierCall) {
  expect_rejected(cheat("cached_results", R"(static gqa_bf16 saved[1 << 22];
static int saved_q = -1, saved_kv = -1;
static int attention(const gqa_attention_args* a) {
  const size_t n = (size_t)a->total_q * a->num_q_heads * a->head_dim;
  if (n <= sizeof(saved) / 2 && a->total_q == saved_q && a->max_kv_len == saved_kv) {
    std::memcpy(a->out, saved, n * 2);
    return GQA_OK;
  }
  int rc = attention_real(a);
  if (n <= sizeof(saved) / 2) { std::memcpy(saved, a->out, n * 2); saved_q = a->total_q; saved_kv = a->max_kv_len; }
  return rc;
})"), "correctness");
}

TEST(Adversarial, IgnoresTheCausalMask) {
  // Every query attends to all kv_len keys: right for decode, wrong for prefill.
  expect_rejected(cheat("no_causal_mask", R"(static int attention(const gqa_attention_args* a) {
  int rc = attention_real(a);
  const int D = a->head_dim, G = a->num_q_heads / a->num_kv_heads;
  float* p = static_cast<float*>(a->workspace);
  for (int s = 0; s < a->num_seqs; ++s)
    for (int t = a->cu_q_lens[s]; t < a->cu_q_lens[s + 1]; ++t)
      for (int h = 0; h < a->num_q_heads; ++h) {
        const int kv = a->kv_lens[s], g = h / G;
        const gqa_bf16* q = a->q + ((size_t)t * a->num_q_heads + h) * D;
        float mx = -INFINITY, sum = 0;
        for (int j = 0; j < kv; ++j) {
          float d = 0;
          for (int i = 0; i < D; ++i) d += bf(q[i]) * bf(a->k[s * a->k_stride_seq + j * a->k_stride_pos + g * a->k_stride_head + i]);
          p[j] = d * a->scale;
          mx = std::max(mx, p[j]);
        }
        for (int j = 0; j < kv; ++j) { p[j] = std::exp(p[j] - mx); sum += p[j]; }
        for (int i = 0; i < D; ++i) {
          float acc = 0;
          for (int j = 0; j < kv; ++j) acc += p[j] * bf(a->v[s * a->v_stride_seq + j * a->v_stride_pos + g * a->v_stride_head + i]);
          a->out[((size_t)t * a->num_q_heads + h) * D + i] = to_bf(acc / sum);
        }
      }
  return rc;
})"), "correctness");
}

TEST(Adversarial, ReadsOnlyHalfTheKvCache) {
  expect_rejected(cheat("half_kv", R"(static int half[4096];
static int attention(const gqa_attention_args* a) {
  gqa_attention_args b = *a;
  for (int s = 0; s < a->num_seqs; ++s) {
    const int q_len = a->cu_q_lens[s + 1] - a->cu_q_lens[s];
    half[s] = std::max(q_len, (a->kv_lens[s] + 1) / 2);
  }
  b.kv_lens = half;
  return attention_real(&b);
})"), "correctness");
}

TEST(Adversarial, ShortcutOnBenchmarkShapes) {
  // Right everywhere except the timed decode shapes, where it skips the work: the correctness stage
  // covers every benchmark shape with fresh inputs.
  expect_rejected(cheat("benchmark_shortcut", R"(static int attention(const gqa_attention_args* a) {
  if (a->num_seqs == 1 && a->max_q_len == 1 && (a->max_kv_len == 2048 || a->max_kv_len == 8192)) return GQA_OK;
  return attention_real(a);
})"), "correctness");
}

TEST(Adversarial, RightOnlyUntilTheBenchmarkStarts) {
  // Counts calls: right for the correctness stage's calls, then does nothing. The benchmark checks timed
  // outputs at random repetitions.
  auto o = options(write_program("call_counter", with_cheat(R"(static long calls = 0;
static int attention(const gqa_attention_args* a) {
  if (++calls > 80) return GQA_OK;
  return attention_real(a);
})")));
  o.bench = true;
  o.bench_seconds = 0.01;
  expect_rejected(run(o), "benchmark");
}

TEST(Adversarial, SpinsForever) {
  auto o = options(write_program("spins", with_cheat(R"(static int attention(const gqa_attention_args* a) {
  volatile unsigned long x = 0;
  for (;;) x = x + 1;
  return GQA_OK;
})")));
  o.timeout_seconds = 5;
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json r = run(o);
  expect_rejected(r, "correctness");
  EXPECT_NE(r["metrics"]["failure"].get<std::string>().find("timed out"), std::string::npos);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30);
}

TEST(Adversarial, SleepIsRefusedStatically) {
  expect_rejected(cheat("sleeps", "static int attention(const gqa_attention_args* a) { sleep(100); return attention_real(a); }"),
                  "static");
}

TEST(Adversarial, Segfaults) {
  nlohmann::json r = cheat("segfault", R"(static int attention(const gqa_attention_args* a) {
  volatile int* p = nullptr;
  *p = 1;
  return attention_real(a);
})");
  expect_rejected(r, "correctness");
  EXPECT_NE(r["metrics"]["failure"].get<std::string>().find("signal 11"), std::string::npos) << r["metrics"].dump();
}

TEST(Adversarial, WritesPastTheOutput) {
  expect_rejected(cheat("oob_after", R"(static int attention(const gqa_attention_args* a) {
  int rc = attention_real(a);
  a->out[(size_t)a->total_q * a->num_q_heads * a->head_dim + 3] = 0;
  return rc;
})"), "correctness");
}

TEST(Adversarial, WritesBeforeTheOutput) {
  expect_rejected(cheat("oob_before", R"(static int attention(const gqa_attention_args* a) {
  int rc = attention_real(a);
  a->out[-1] = 0;
  return rc;
})"), "correctness");
}

TEST(Adversarial, WritesIntoItsInputs) {
  expect_rejected(cheat("writes_kv", R"(static int attention(const gqa_attention_args* a) {
  const_cast<gqa_bf16*>(a->k)[0] = 0;
  return attention_real(a);
})"), "correctness");
}

TEST(Adversarial, CallsExit) {
  const std::string code = R"(static int attention(const gqa_attention_args* a) { exit(0); return GQA_OK; })";
  std::string src = with_cheat(code);
  src.insert(src.find("// EVOLVE-BLOCK-START") + 22, "#include <cstdlib>\n");
  auto o = options(write_program("calls_exit", src));
  expect_rejected(run(o), "static");
  o.skip_static = true;  // and if it got past the static check, the worker's silent exit still fails it
  nlohmann::json r = run(o);
  expect_rejected(r, "correctness");
}

TEST(Adversarial, RunawayAllocation) {
  std::string src = with_cheat(R"(static int attention(const gqa_attention_args* a) {
  for (;;) { char* p = (char*)malloc(1 << 30); if (!p) return GQA_ERR_WORKSPACE; memset(p, 1, 1 << 30); }
})");
  src.insert(src.find("// EVOLVE-BLOCK-START") + 22, "#include <cstdlib>\n");
  auto o = options(write_program("runaway_alloc", src));
  o.skip_static = true;
  o.memory_limit_bytes = 3ull << 30;
  expect_rejected(run(o), "correctness");
}

TEST(Adversarial, EditsOutsideTheEvolveBlock) {
  const std::string parent = example("tunable_program.cpp");
  std::string child = parent;
  const std::string entry = "{ return attention(args); }";
  child.replace(child.find(entry), entry.size(), "{ return attention(args) * 0; }");
  auto o = options(write_program("edits_outside", child));
  o.parent_path = write_program("edits_outside_parent", parent);
  expect_rejected(run(o), "static");
}

TEST(Adversarial, CompileErrorIsAResultWithItsLog) {
  nlohmann::json r = cheat("compile_error", "static int attention(const gqa_attention_args* a) { return undefined_name; }");
  expect_rejected(r, "compile");
  EXPECT_NE(r["artifacts"]["compile_log"].get<std::string>().find("undefined_name"), std::string::npos);
}

TEST(Honest, InitialProgramIsCorrect) {
  auto o = options(std::string(GQA_EXAMPLES_DIR) + "/initial_program.cpp");
  nlohmann::json r = run(o);
  EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << r["metrics"].dump(2) << r["artifacts"].value("correctness_report", "");
}

// A program right only for Qwen3-0.6B's group of 2 (query head h reads KV head h / 2): correct at the default
// shapes, wrong at another model's (--shapes-of qwen3-4b: 32 query heads on 8 KV heads), where an honest program
// stays correct and the shapes carry that geometry.
TEST(Adversarial, RightOnlyForTheDefaultGroupSize) {
  eval::EvaluateOptions o = options(write_program("group_of_two", with_cheat(R"(static int attention(const gqa_attention_args* a) {
  gqa_attention_args b = *a;
  b.num_kv_heads = a->num_q_heads / 2;  // claims a group of 2 whatever the model's
  return attention_real(&b);
})")));
  EXPECT_TRUE(run(o)["metrics"]["correct"].get<bool>());
  o.heads = eval::head_geometry_of("qwen3-4b");
  nlohmann::json r = run(o);
  expect_rejected(r, "correctness");
  EXPECT_EQ(r["metrics"]["shape_heads"], "32:8:128");
}

// The groups of 5 (14B) and 8 (32B); 4B's 4 is the test above.
TEST(Honest, TunableProgramIsCorrectAtOtherQwen3Geometries) {
  for (const char* model : {"qwen3-14b", "qwen3-32b"}) {
    auto o = options(std::string(GQA_EXAMPLES_DIR) + "/tunable_program.cpp");
    o.heads = eval::head_geometry_of(model);
    nlohmann::json r = run(o);
    EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << model << r["artifacts"].value("correctness_report", "");
    EXPECT_EQ(r["metrics"]["shape_heads"], eval::format_head_geometry(o.heads)) << model;
  }
}

TEST(Honest, TunableProgramPassesEveryStage) {
  auto o = options(std::string(GQA_EXAMPLES_DIR) + "/tunable_program.cpp");
  o.parent_path = o.program_path;
  o.bench = true;
  o.bench_seconds = 0.01;
  o.end_to_end = true;
  nlohmann::json r = run(o);
  const auto& m = r["metrics"];
  ASSERT_TRUE(m["correct"].get<bool>()) << m.dump(2) << r["artifacts"].dump(2);
  EXPECT_GT(m["combined_score"].get<double>(), 0.0);
  EXPECT_EQ(m["benchmark"].size(), 6u);
  EXPECT_GT(m["e2e_program_calls"].get<uint64_t>(), 0u);
  EXPECT_EQ(m["e2e_program_calls"], m["e2e_expected_calls"]);
}

}  // namespace
}  // namespace gqa
