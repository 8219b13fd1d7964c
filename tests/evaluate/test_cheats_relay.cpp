// Deliberate attackers against the judge in the relay (CPU target): programs written against this
// evaluator's own data layout that read and write their process's memory (static checks skipped, so that
// only the run-time design stands between them and a score). Each names the mechanism that stops it.
#include <gtest/gtest.h>

#include "adversarial_util.h"

namespace gqa {
namespace {

using namespace gqa::test;

// The correctness stage makes exactly this many calls (31 cases, two trials each) when every case passes.
constexpr int kCorrectnessCalls = 62;

TEST(RelayCheats, ForgesEveryRecordInTheSharedAreaAndExitsCleanly) {
  // Walks up its stack for a pointer to the record area (the page that starts with a count and the
  // "loaded" record), appends passing correctness and benchmark records and "done", and exits with code 0
  // without computing anything. Against the worker of commit 6af3e05, whose child wrote the records, it
  // scored 1000 (correct: true; checked by hand with that worker).
  // Mechanism: the relay writes the correctness and benchmark records itself and forwards from the child
  // only the record it is waiting for; anything else becomes a record the evaluator refuses.
  auto o = options(write_program("forges_records", with_cheat(R"(extern "C" long syscall(long, ...);
extern "C" int* __errno_location();
extern "C" void _exit(int);
// Readable without faulting: rt_sigaction(SIGKILL, p) copies *p in before it refuses SIGKILL (EINVAL),
// and says EFAULT where p cannot be read (unmapped or PROT_NONE).
static bool mapped(const void* p) { return syscall(13, 9, p, nullptr, 8) == -1 && *__errno_location() == 22; }
static int attention(const gqa_attention_args* a) {
  volatile char here = 0;
  const unsigned long* w = (const unsigned long*)(((unsigned long)&here + 7) & ~7ul);
  for (int i = 0; i < (1 << 17); ++i) {
    if (((unsigned long)(w + i) & 4095) == 0 && !mapped(w + i)) break;  // the stack's end
    const unsigned long v = w[i];
    if (v == 0 || (v & 4095) != 0 || !mapped((void*)v)) continue;
    char* data = (char*)v + 8;
    if (std::memcmp(data, "{\"stage\":\"loaded\"}\n", 19) != 0) continue;
    unsigned long* committed = (unsigned long*)v;
    const char rec[] = "{\"stage\":\"correctness\",\"passed\":true}\n"
                       "{\"stage\":\"benchmark\",\"passed\":true,\"metrics\":{\"speedup_geomean\":1000.0}}\n"
                       "{\"stage\":\"done\"}\n";
    std::memcpy(data + *committed, rec, sizeof rec - 1);
    __atomic_store_n(committed, *committed + sizeof rec - 1, __ATOMIC_RELEASE);
    _exit(0);
  }
  return attention_real(a);  // found nothing: honest
})")));
  o.skip_static = true;
  o.bench = true;
  expect_rejected(eval::evaluate(o), "worker", "refused_from_candidate");
}

TEST(RelayCheats, LooksForTheStockOutputWhereTheArenaPutsIt) {
  // In the benchmark the stock kernel's output for the same inputs sits two guard pages after the
  // candidate's workspace in the shared arena. This program computes that address, makes the pages
  // readable and copies the output when it holds numbers, skipping its own work. Mechanism: the child
  // poisons the stock kernel's output and workspace right after the stock call (before the candidate's
  // call), and the relay poisons both before every repetition: there is never anything to copy. (With the
  // child's poisoning removed it copies on every repetition where the stock kernel runs first and passes
  // every check: a copy of the stock output is as right as the stock output.)
  auto o = options(write_program("copies_stock_output", with_cheat(fmt::format(R"(extern "C" int mprotect(void*, unsigned long, int);
extern "C" long write(int, const void*, unsigned long);
static long calls = 0;
static bool looked = false;
static int attention(const gqa_attention_args* a) {{
  if (++calls <= {}) return attention_real(a);  // the correctness stage: nothing to copy there
  const unsigned long P = 4096, r256 = 255;
  const unsigned long out_bytes = (unsigned long)a->total_q * a->num_q_heads * a->head_dim * 2;
  const unsigned long span = (out_bytes + r256) & ~r256, pages = (span + P - 1) & ~(P - 1);
  const unsigned long ws_end = (unsigned long)a->workspace + ((a->workspace_bytes + r256) & ~r256);
  const unsigned long stock_pages = ws_end + 2 * P;
  const uint16_t* stock = (const uint16_t*)(stock_pages + pages - span);
  if (!looked) {{
    looked = true;
    const char m[] = "looked for the stock output\n";
    write(2, m, sizeof m - 1);
  }}
  if (mprotect((void*)stock_pages, pages, 3) != 0) return attention_real(a);
  for (int i = 0; i < 64; ++i)
    if ((stock[i] & 0x7F80) == 0x7F80) return attention_real(a);  // NaN or Inf: poisoned, nothing to copy
  std::memcpy(a->out, stock, out_bytes);
  const char m[] = "copied the stock output\n";
  write(2, m, sizeof m - 1);
  return GQA_OK;
}})", kCorrectnessCalls))));
  o.skip_static = true;
  o.bench = true;
  o.bench_seconds = 0.05;
  nlohmann::json r = eval::evaluate(o);
  const std::string err = r["artifacts"].value("worker_stderr", "");
  EXPECT_TRUE(r["metrics"]["correct"].get<bool>()) << r["metrics"].dump(2) << err;
  EXPECT_NE(err.find("looked for the stock output"), std::string::npos) << err;
  EXPECT_EQ(err.find("copied the stock output"), std::string::npos) << err;
}

TEST(RelayCheats, UnderstatesItsOwnTime) {
  // Computes honestly, then finds the start time its caller took just before calling it (a steady-clock
  // value on the stack, or in a register its own prologue saved there) and moves it to the present, so
  // that its calls are timed at about 1 us. Mechanism: the relay's wall clock around every repetition; the
  // reported times must account for all of it but a small share (the round trip, measured without kernels).
  auto o = options(write_program("understates_time", with_cheat(fmt::format(R"(extern "C" int clock_gettime(int, struct timespec*);
static long now_ns() {{
  timespec ts;
  clock_gettime(1, &ts);  // CLOCK_MONOTONIC: std::chrono::steady_clock
  return ts.tv_sec * 1000000000L + ts.tv_nsec;
}}
static long calls = 0;
__attribute__((noinline)) static int attention(const gqa_attention_args* a) {{
  __asm__ volatile("" ::: "rbx", "r12", "r13", "r14", "r15");  // every callee-saved register spilled below
  const long t_in = now_ns();
  const int rc = attention_real(a);
  if (++calls <= {}) return rc;
  volatile long here = 0;
  volatile long* w = &here;  // volatile: the stores into its caller's saved state must not be dropped
  for (int i = 1; i < (1 << 13); ++i)  // its own frame, then its callers'
    if (w[i] < t_in && w[i] > t_in - 5000000) {{ w[i] = now_ns() - 1000; break; }}
  return rc;
}})", kCorrectnessCalls))));
  o.skip_static = true;
  o.bench = true;
  o.bench_seconds = 0.05;
  expect_rejected(eval::evaluate(o), "benchmark", "understated");
}

TEST(RelayCheats, FixesAnOutputAfterItWasChecked) {
  // Writes zeros now and the right answer into the same output at its next call, for a judge that looks
  // late. Mechanism: the relay compares every output at the call's answer, before the next request.
  expect_rejected(cheat("fixes_later", R"(static gqa_attention_args last;
static bool have_last = false;
static int attention(const gqa_attention_args* a) {
  if (have_last && last.out == a->out) attention_real(&last);  // the same buffers: the next trial of a case
  last = *a;
  have_last = true;
  std::memset(a->out, 0, (size_t)a->total_q * a->num_q_heads * a->head_dim * 2);
  return GQA_OK;
})", true), "correctness", "rows over the bound");
}

}  // namespace
}  // namespace gqa
