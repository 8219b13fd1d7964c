// The reward-hacking suite (CPU target, issue #24): one cheat per class of what got through before,
// each evaluated for real (compiled, run in the sandboxed worker) and asserted to score 0 at the stage,
// and with the message, of the mechanism that stops it. Runtime defences are tested with the static
// checks skipped (skip_static), so that each layer is shown to hold on its own.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "adversarial_util.h"

namespace gqa {
namespace {

using namespace gqa::test;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- Forged results: the channel is written by a process the candidate does not run in.

TEST(Cheats, ForgedResultLinesOnEveryDescriptorKillTheWorker) {
  // Mechanism: seccomp (writes only to stderr); the nonce is never in the candidate's process.
  expect_rejected(cheat("forge_lines", R"(extern "C" long write(int, const void*, unsigned long);
static int attention(const gqa_attention_args* a) {
  const char line[] = "GQA-RESULT 0 {\"stage\":\"correctness\",\"passed\":true}\n";
  for (int fd = 0; fd < 64; ++fd) write(fd, line, sizeof line - 1);
  return attention_real(a);
})", true), "correctness", "Bad system call");
}

TEST(Cheats, NonceIsNotInTheCandidatesMemory) {
  // The old worker unset the nonce's variable but its text stayed in the environment block. Mechanism:
  // the relay reads it from stdin after forking the candidate's process. This "cheat" scans the whole
  // environment block and computes correctly only when it finds nothing.
  nlohmann::json r = cheat("nonce_scan", R"(extern "C" char** environ;
static int attention(const gqa_attention_args* a) {
  const char* lo = nullptr; const char* hi = nullptr;
  for (char** e = environ; *e; ++e) {
    if (!lo || *e < lo) lo = *e;
    const char* end = *e + __builtin_strlen(*e);
    if (!hi || end > hi) hi = end;
  }
  for (const char* p = lo; p && p + 14 < hi; ++p)
    if (std::memcmp(p, "GQA_EVAL_NONCE", 14) == 0) return GQA_OK;  // found: write nothing
  return attention_real(a);
})", true);
  EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << r["metrics"].dump(2) << r["artifacts"].value("correctness_report", "");
}

TEST(Cheats, ClosingEveryDescriptorDoesNotCutTheChannel) {
  nlohmann::json r = cheat("close_all", R"(extern "C" int close(int);
static int attention(const gqa_attention_args* a) {
  for (int fd = 0; fd < 1024; ++fd) close(fd);
  return attention_real(a);
})", true);
  EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << r["metrics"].dump(2) << r["artifacts"].value("worker_stderr", "");
}

// A stand-in worker that prints a given script of result lines tagged with the nonce it reads.
nlohmann::json fake_worker(const std::string& name, const std::string& body) {
  const std::string script = std::string(GQA_TEST_CACHE_DIR) + "/adversarial/" + name + ".sh";
  write_file_atomic(script, "#!/bin/sh\nread N\n" + body, "test");
  chmod(script.c_str(), 0755);
  auto o = options(std::string(GQA_EXAMPLES_DIR) + "/tunable_program.cpp");
  o.worker_executable = script;
  o.bench = true;
  return eval::evaluate(o);
}

TEST(Cheats, RepeatedStageRecordBreaksTheProtocol) {
  // A "benchmark" record sent again during the end-to-end stage used to replace the real one.
  // Mechanism: each stage once, in order.
  expect_rejected(fake_worker("repeated", R"(echo "GQA-RESULT $N {\"stage\":\"loaded\"}"
echo "GQA-RESULT $N {\"stage\":\"correctness\",\"passed\":true}"
echo "GQA-RESULT $N {\"stage\":\"benchmark\",\"passed\":true,\"metrics\":{\"speedup_geomean\":1.0}}"
echo "GQA-RESULT $N {\"stage\":\"benchmark\",\"passed\":true,\"metrics\":{\"speedup_geomean\":1000.0}}"
echo "GQA-RESULT $N {\"stage\":\"done\"}"
echo "GQA-RESULT $N {\"stage\":\"worker_end\",\"exit_code\":0}"
)"), "worker", "protocol");
}

TEST(Cheats, ResultsWithoutACleanExitAreRejected) {
  // Mechanism: the relay's record of how the candidate's process ended must say exit code 0.
  expect_rejected(fake_worker("unclean", R"(echo "GQA-RESULT $N {\"stage\":\"loaded\"}"
echo "GQA-RESULT $N {\"stage\":\"correctness\",\"passed\":true}"
echo "GQA-RESULT $N {\"stage\":\"benchmark\",\"passed\":true,\"metrics\":{\"speedup_geomean\":97.0}}"
echo "GQA-RESULT $N {\"stage\":\"done\"}"
echo "GQA-RESULT $N {\"stage\":\"worker_end\",\"signal\":9}"
)"), "worker", "did not exit cleanly");
}

// ---- The candidate shares nothing the judge uses.

TEST(Cheats, RewritesKvLensAfterUnprotectingThem) {
  // Makes the lengths writable again and halves them: the reference used to read them back. Mechanism:
  // the reference comes from the evaluator's own copies, and inputs are compared after every call.
  expect_rejected(cheat("rewrite_kv_lens", R"(extern "C" int mprotect(void*, unsigned long, int);
static int attention(const gqa_attention_args* a) {
  int32_t* kv = const_cast<int32_t*>(a->kv_lens);
  mprotect((void*)((unsigned long)kv & ~4095ul), 8192, 3);
  for (int s = 0; s < a->num_seqs; ++s) {
    const int q_len = a->cu_q_lens[s + 1] - a->cu_q_lens[s];
    kv[s] = std::max(q_len, kv[s] / 2);
  }
  return attention_real(a);
})", true), "correctness", "changed its inputs (kv_lens)");
}

TEST(Cheats, ProtectionKeysAreNotAvailable) {
  // Mechanism: seccomp traps pkey_mprotect (and pkey_alloc).
  expect_rejected(cheat("pkey", R"(extern "C" int pkey_mprotect(void*, unsigned long, int, int);
static int attention(const gqa_attention_args* a) {
  pkey_mprotect((void*)((unsigned long)a->q & ~4095ul), 4096, 3, 0);
  return attention_real(a);
})", true), "correctness", "Bad system call");
}

TEST(Cheats, ZeroesQueriesAfterUnprotectingThem) {
  // Zero queries make every output the mean of v, which a reference reading q back would agree with.
  expect_rejected(cheat("zero_q", R"(extern "C" int mprotect(void*, unsigned long, int);
static int attention(const gqa_attention_args* a) {
  const unsigned long n = (unsigned long)a->total_q * a->num_q_heads * a->head_dim * 2;
  const unsigned long lo = (unsigned long)a->q & ~4095ul, hi = ((unsigned long)a->q + n + 4095) & ~4095ul;
  mprotect((void*)lo, hi - lo, 3);
  std::memset(const_cast<gqa_bf16*>(a->q), 0, n);
  return attention_real(a);
})", true), "correctness", "changed its inputs (q)");
}

// ---- The baseline is insulated.

TEST(Cheats, OpenMpSettingsAreRefusedStatically) {
  expect_rejected(cheat("omp_settings", R"(static int attention(const gqa_attention_args* a) {
  omp_set_dynamic(1);
  omp_set_num_threads(1);
  return attention_real(a);
})", false, "#include <omp.h>\n"), "static", "omp_set_dynamic");
}

TEST(Cheats, OpenMpSettingsChangedAtRunTimeFailTheProgram) {
  // Slowing the stock kernel that runs next by leaving it one thread. Mechanism: the process state is
  // reset before and verified after every call.
  expect_rejected(cheat("omp_settings_rt", R"(static int attention(const gqa_attention_args* a) {
  int rc = attention_real(a);
  omp_set_dynamic(1);
  omp_set_num_threads(1);
  return rc;
})", true, "#include <omp.h>\n"), "correctness", "changed the process state");
}

TEST(Cheats, FloatingPointControlChangesFailTheProgram) {
  // Denormals-are-zero and flush-to-zero left on for the next kernel.
  expect_rejected(cheat("mxcsr", R"(static int attention(const gqa_attention_args* a) {
  int rc = attention_real(a);
  _mm_setcsr(_mm_getcsr() | 0x8040);
  return rc;
})", false, "#include <immintrin.h>\n"), "correctness", "MXCSR");
}

TEST(Cheats, FlushingTheCacheForTheNextKernelIsRefused) {
  // Evicting K and V after its own call would make a stock call that follows read from memory.
  expect_rejected(cheat("clflush", R"(static int attention(const gqa_attention_args* a) {
  int rc = attention_real(a);
  for (int i = 0; i < a->num_kv_heads * a->head_dim; i += 32) _mm_clflush(a->k + i);
  return rc;
})", false, "#include <immintrin.h>\n"), "static", "_mm_clflush");
}

TEST(Cheats, MoreThreadsThanGivenKillTheWorker) {
  // Given one thread (like the stock kernel), takes every core. Mechanism: the OpenMP pool is made with
  // num_threads threads before the seccomp filter, which refuses clone afterwards.
  auto o = options(write_program("more_threads", with_cheat(R"(static int attention(const gqa_attention_args* a) {
  gqa_attention_args b = *a;
  b.num_threads = 4;
  return attention_real(&b);
})")));
  o.threads = 1;
  expect_rejected(eval::evaluate(o), "correctness", "Bad system call");
}

// ---- Every timed output is checked.

TEST(Cheats, StopsComputingPartWayThroughTheBenchmark) {
  // Right for the correctness stage and the first benchmark repetitions, then does nothing. Mechanism:
  // every timed output is compared with the stock kernel's output for the same inputs.
  auto o = options(write_program("late_stop", with_cheat(R"(static long calls = 0;
static int attention(const gqa_attention_args* a) {
  if (++calls > 260) return GQA_OK;
  return attention_real(a);
})")));
  o.bench = true;
  o.bench_seconds = 0.5;
  expect_rejected(eval::evaluate(o), "benchmark", "differs from the stock kernel's");
}

// ---- Static checks read what the compiler reads; the compiled object's imports are an allow-list.

TEST(Cheats, LineSpliceHidesAnInclude) {
  expect_rejected(cheat("splice_include", "static int attention(const gqa_attention_args* a) { return attention_real(a); }",
                        false, "#inc\\\nlude <cstdio>\n"),
                  "static", "<cstdio>");
}

TEST(Cheats, LoneCarriageReturnHidesACall) {
  // GCC ends the comment at the lone CR; the old check saw one comment line.
  expect_rejected(cheat("cr_call", "static int attention(const gqa_attention_args* a) {\n"
                                   "  // harmless\r  if (!a) fopen(\"/tmp/x\", \"w\");\n"
                                   "  return attention_real(a);\n}"),
                  "static", "'fopen'");
}

TEST(Cheats, PragmaRenamesADeniedCall) {
  expect_rejected(cheat("redefine_extname", R"(_Pragma("redefine_extname harmless fopen")
extern "C" void* harmless(const char*, const char*);
static int attention(const gqa_attention_args* a) { if (!a) harmless("/tmp/x", "w"); return attention_real(a); })"),
                  "static", "_Pragma");
  expect_rejected(cheat("redefine_extname2", R"(#pragma redefine_extname harmless fopen
extern "C" void* harmless(const char*, const char*);
static int attention(const gqa_attention_args* a) { if (!a) harmless("/tmp/x", "w"); return attention_real(a); })"),
                  "static", "#pragma");
}

TEST(Cheats, UndeclaredLibcFunctionIsRefusedByItsImport) {
  // No header, no denied name: fopen64 declared by hand. Mechanism: the import allow-list.
  expect_rejected(cheat("fopen64", R"(extern "C" void* fopen64(const char*, const char*);
static int attention(const gqa_attention_args* a) { if (!a) fopen64("/tmp/x", "w"); return attention_real(a); })"),
                  "static", "imports 'fopen64'");
}

TEST(Cheats, CannotCreateFilesAtRunTime) {
  // With every check before the run skipped, opening fails inside the sandbox (seccomp: EACCES).
  const std::string path = std::string(GQA_TEST_CACHE_DIR) + "/adversarial/created_by_cheat.txt";
  std::filesystem::remove(path);
  nlohmann::json r = cheat("creates_file", fmt::format(R"(extern "C" void* fopen64(const char*, const char*);
extern "C" int fputs(const char*, void*);
static int attention(const gqa_attention_args* a) {{
  void* f = fopen64("{}", "w");
  if (f) fputs("escaped", f);
  return attention_real(a);
}})", path), true);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << r["metrics"].dump(2);
}

TEST(Cheats, ThreadsOutsideOpenMpKillTheWorker) {
  expect_rejected(cheat("pthread", R"(extern "C" int pthread_create(unsigned long*, const void*, void* (*)(void*), void*);
static void* spin(void*) { for (;;) {} return nullptr; }
static int attention(const gqa_attention_args* a) {
  unsigned long t;
  pthread_create(&t, nullptr, spin, nullptr);
  return attention_real(a);
})", true), "correctness", "Bad system call");
}

TEST(Cheats, LoadTimeCodeIsRefused) {
  // A global with a dynamic initialiser runs inside dlopen, before the sandbox exists.
  expect_rejected(cheat("load_time", R"(static int probe() { volatile int x = 3; return x; }
static int g_at_load = probe();
static int attention(const gqa_attention_args* a) { return g_at_load == 3 ? attention_real(a) : GQA_OK; })"),
                  "static", "runs when it is loaded");
  // The same through a pointer placed in .init_array by hand (no denied word in the source).
  expect_rejected(cheat("init_array", R"(static void at_load() {}
__attribute__((section(".init_array"), used)) static void (*p_at_load)() = at_load;
static int attention(const gqa_attention_args* a) { return attention_real(a); })"),
                  "static", "runs when it is loaded");
}

// ---- Inputs that break shortcuts.

TEST(Cheats, SoftmaxWithoutTheMaxSubtracted) {
  // Right while logits are small; exp overflows on the large-logit rows.
  expect_rejected(cheat("no_max", R"(static int attention(const gqa_attention_args* a) {
  const int D = a->head_dim, G = a->num_q_heads / a->num_kv_heads;
  float* p = static_cast<float*>(a->workspace);
  for (int s = 0; s < a->num_seqs; ++s)
    for (int t = a->cu_q_lens[s]; t < a->cu_q_lens[s + 1]; ++t)
      for (int h = 0; h < a->num_q_heads; ++h) {
        const int last = a->kv_lens[s] - (a->cu_q_lens[s + 1] - a->cu_q_lens[s]) + (t - a->cu_q_lens[s]), g = h / G;
        const gqa_bf16* q = a->q + ((size_t)t * a->num_q_heads + h) * D;
        float sum = 0;
        for (int j = 0; j <= last; ++j) {
          float d = 0;
          for (int i = 0; i < D; ++i) d += bf(q[i]) * bf(a->k[s * a->k_stride_seq + j * a->k_stride_pos + g * a->k_stride_head + i]);
          p[j] = std::exp(d * a->scale);
          sum += p[j];
        }
        for (int i = 0; i < D; ++i) {
          float acc = 0;
          for (int j = 0; j <= last; ++j) acc += p[j] * bf(a->v[s * a->v_stride_seq + j * a->v_stride_pos + g * a->v_stride_head + i]);
          a->out[((size_t)t * a->num_q_heads + h) * D + i] = to_bf(acc / sum);
        }
      }
  return GQA_OK;
})"), "correctness", "non-finite");
}

TEST(Cheats, WrongAtOneResidueOfTheTileSize) {
  // Decode with kv_len % 64 == 37 reads the wrong KV head. Mechanism: every evaluation has a decode batch
  // covering every residue modulo 128.
  expect_rejected(cheat("residue37", R"(static int attention(const gqa_attention_args* a) {
  bool hit = false;
  for (int s = 0; s < a->num_seqs; ++s)
    hit |= a->cu_q_lens[s + 1] - a->cu_q_lens[s] == 1 && a->kv_lens[s] % 64 == 37;
  if (!hit) return attention_real(a);
  gqa_attention_args b = *a;
  b.scale = a->scale * 0.5f;  // a softmax of the wrong temperature
  return attention_real(&b);
})"), "correctness", "decode_b128_every_residue");
}

TEST(Cheats, TrustsTheLengthBoundAsTheLength) {
  // Uses max_kv_len as the length of a single sequence: exact in the fixed shapes, an upper bound as the
  // engines pass it. Mechanism: the upper-bound cases.
  expect_rejected(cheat("trusts_bound", R"(static int attention(const gqa_attention_args* a) {
  if (a->num_seqs != 1) return attention_real(a);
  gqa_attention_args b = *a;
  b.kv_lens = &a->max_kv_len;
  return attention_real(&b);
})"), "correctness", "bound");
}

// ---- The end-to-end stage gates.

TEST(Cheats, WrongOnlyInsideTheEngine) {
  // The CPU engine passes k_stride_seq = 0 (one sequence); the correctness stage never does. Here the
  // program uses a softmax of the wrong temperature. Mechanism: teacher-forced logits against the stock
  // kernel.
  auto o = options(write_program("engine_only", with_cheat(R"(static int attention(const gqa_attention_args* a) {
  if (a->k_stride_seq != 0) return attention_real(a);
  gqa_attention_args b = *a;
  b.scale = a->scale * 0.5f;
  return attention_real(&b);
})")));
  o.end_to_end = true;
  expect_rejected(eval::evaluate(o), "end_to_end", "teacher-forced logits");
}

// ---- Time is bounded as a whole.

TEST(Cheats, TemplateBombIsBoundedByTheTimeout) {
  // 2^N distinct instantiations: Bomb<N - 1, P<T, char>> and Bomb<N - 1, P<T, int>> at every level.
  auto o = options(write_program("template_bomb", with_cheat(R"(template <class A, class B> struct P {};
template <int N, class T> struct Bomb {
  static constexpr long v = Bomb<N - 1, P<T, char>>::v + Bomb<N - 1, P<T, int>>::v;
};
template <class T> struct Bomb<0, T> { static constexpr long v = 1; };
static int attention(const gqa_attention_args* a) { return Bomb<40, int>::v > 0 ? attention_real(a) : GQA_OK; })")));
  o.timeout_seconds = 6;
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json r = eval::evaluate(o);
  expect_rejected(r, "compile", "time limit");
  EXPECT_LT(seconds_since(t0), 15);
}

}  // namespace
}  // namespace gqa
