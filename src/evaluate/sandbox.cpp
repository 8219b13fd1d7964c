// The worker's seccomp allow-list (libseccomp) and the OpenMP / floating-point state kept identical for
// the stock kernel and the candidate.
#include "evaluate/sandbox.h"

#include <omp.h>
#include <seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xmmintrin.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace gqa::eval {

namespace {

void on_refused_syscall(int, siginfo_t* info, void*) {
  // Only async-signal-safe calls: format the number by hand, write, die of SIGSYS.
  char msg[96] = "sandbox: system call ";
  size_t n = std::strlen(msg);
  char digits[16];
  int d = 0;
  for (unsigned v = static_cast<unsigned>(info->si_syscall); d == 0 || v; v /= 10) digits[d++] = static_cast<char>('0' + v % 10);
  while (d) msg[n++] = digits[--d];
  const char* tail = " refused by the evaluator's seccomp filter\n";
  for (const char* p = tail; *p; ++p) msg[n++] = *p;
  ssize_t ignored = write(2, msg, n);
  (void)ignored;
  signal(SIGSYS, SIG_DFL);
  raise(SIGSYS);
}

void add(scmp_filter_ctx ctx, uint32_t action, int nr, std::initializer_list<scmp_arg_cmp> args = {}) {
  const int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()), args.begin());
  if (rc != 0) fail("evaluate", "sandbox: cannot add the seccomp rule for system call {}: {}", nr, std::strerror(-rc));
}

// A filter context whose refused calls die of SIGSYS with enter_sandbox's message, released at scope exit.
struct Filter {
  scmp_filter_ctx ctx;
  explicit Filter(uint32_t default_action) : ctx(seccomp_init(default_action)) {
    if (!ctx) fail("evaluate", "sandbox: seccomp_init failed");
    struct sigaction sa {};
    sa.sa_sigaction = on_refused_syscall;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, nullptr);
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);  // every thread (OpenMP's pool, the CUDA driver's)
  }
  ~Filter() { seccomp_release(ctx); }
  void load() {
    const int rc = seccomp_load(ctx);
    if (rc != 0) fail("evaluate", "sandbox: cannot install the seccomp filter: {}", std::strerror(-rc));
  }
};

}  // namespace

void enter_sandbox(int threads) {
  // The OpenMP pool is made now, `threads` strong: later regions reuse it, and no new thread can be
  // started afterwards, so a program that asks for more threads than it was given dies of SIGSYS.
  omp_set_num_threads(threads);
#pragma omp parallel num_threads(threads)
  {
    volatile int x = omp_get_thread_num();
    (void)x;
  }
  Filter f(SCMP_ACT_TRAP);
  scmp_filter_ctx ctx = f.ctx;
  const uint32_t allow = SCMP_ACT_ALLOW;
  // Memory (never executable), waiting, time, signals to this process only, reading what is already open.
  for (int nr : {SCMP_SYS(read), SCMP_SYS(pread64), SCMP_SYS(readv), SCMP_SYS(lseek), SCMP_SYS(fstat),
                 SCMP_SYS(newfstatat), SCMP_SYS(close), SCMP_SYS(futex), SCMP_SYS(munmap), SCMP_SYS(mremap),
                 SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
                 SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack), SCMP_SYS(getpid), SCMP_SYS(gettid),
                 SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
                 SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday),
                 SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(getrandom), SCMP_SYS(restart_syscall),
                 SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(getrusage), SCMP_SYS(uname),
                 SCMP_SYS(pause)})
    add(ctx, allow, nr);
  add(ctx, allow, SCMP_SYS(write), {SCMP_A0(SCMP_CMP_EQ, 2)});
  add(ctx, allow, SCMP_SYS(writev), {SCMP_A0(SCMP_CMP_EQ, 2)});
  add(ctx, allow, SCMP_SYS(mmap), {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  add(ctx, allow, SCMP_SYS(mprotect), {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  add(ctx, allow, SCMP_SYS(tgkill), {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(getpid()))});
  // Opening files fails quietly (libraries probe /sys and /proc and cope); everything else not listed
  // (clone, fork, exec, sockets, ioctl, pkey_*, prctl, setrlimit, sched_set*, kill, ...) traps.
  for (int nr : {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(creat)})
    add(ctx, SCMP_ACT_ERRNO(EACCES), nr);
  f.load();
}

void enter_cuda_sandbox() {
  Filter f(SCMP_ACT_ALLOW);
  scmp_filter_ctx ctx = f.ctx;
  const uint32_t trap = SCMP_ACT_TRAP;
  for (int nr : {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(creat)})
    add(ctx, SCMP_ACT_ERRNO(EACCES), nr);
  add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3));
  add(ctx, trap, SCMP_SYS(clone), {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0)});
  for (int nr : {SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(socket),
                 SCMP_SYS(socketpair), SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(accept),
                 SCMP_SYS(accept4), SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
                 SCMP_SYS(pkey_mprotect), SCMP_SYS(pkey_alloc), SCMP_SYS(pkey_free), SCMP_SYS(unlink),
                 SCMP_SYS(unlinkat), SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(truncate),
                 SCMP_SYS(mkdir), SCMP_SYS(mkdirat), SCMP_SYS(rmdir), SCMP_SYS(chmod), SCMP_SYS(fchmodat),
                 SCMP_SYS(setrlimit), SCMP_SYS(sched_setaffinity), SCMP_SYS(sched_setscheduler),
                 SCMP_SYS(sched_setparam), SCMP_SYS(setpriority), SCMP_SYS(tkill)})
    add(ctx, trap, nr);
  add(ctx, trap, SCMP_SYS(prlimit64), {SCMP_A2(SCMP_CMP_NE, 0)});  // reading a limit stays allowed
  add(ctx, trap, SCMP_SYS(mmap), {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)});
  add(ctx, trap, SCMP_SYS(mprotect), {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)});
  const auto pid = static_cast<scmp_datum_t>(getpid());
  add(ctx, trap, SCMP_SYS(kill), {SCMP_A0(SCMP_CMP_NE, pid)});
  add(ctx, trap, SCMP_SYS(tgkill), {SCMP_A0(SCMP_CMP_NE, pid)});
  for (int nr : {SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(pwrite64), SCMP_SYS(pwritev), SCMP_SYS(pwritev2)})
    add(ctx, trap, nr, {SCMP_A0(SCMP_CMP_EQ, 1)});
  f.load();
}

ProcessState ProcessState::current() {
  ProcessState s;
  s.dynamic = omp_get_dynamic();
  s.max_threads = omp_get_max_threads();
  s.max_active_levels = omp_get_max_active_levels();
  omp_sched_t kind;
  omp_get_schedule(&kind, &s.schedule_chunk);
  s.schedule_kind = static_cast<int>(kind);
  s.mxcsr = _mm_getcsr() & ~0x3Fu;  // control bits only: the low six are sticky exception flags
  __asm__ volatile("fnstcw %0" : "=m"(s.x87_control));
  return s;
}

void ProcessState::apply() const {
  if (omp_get_dynamic() != dynamic) omp_set_dynamic(dynamic);
  if (omp_get_max_threads() != max_threads) omp_set_num_threads(max_threads);
  if (omp_get_max_active_levels() != max_active_levels) omp_set_max_active_levels(max_active_levels);
  omp_sched_t kind;
  int chunk;
  omp_get_schedule(&kind, &chunk);
  if (static_cast<int>(kind) != schedule_kind || chunk != schedule_chunk)
    omp_set_schedule(static_cast<omp_sched_t>(schedule_kind), schedule_chunk);
  if ((_mm_getcsr() & ~0x3Fu) != mxcsr) _mm_setcsr(mxcsr);
  unsigned short cw;
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  if (cw != x87_control) __asm__ volatile("fldcw %0" : : "m"(x87_control));
}

std::string ProcessState::differences(const ProcessState& now) const {
  std::string d;
  auto check = [&](const char* what, long long got, long long want) {
    if (got != want) d += fmt::format("{}{} {} (expected {})", d.empty() ? "" : "; ", what, got, want);
  };
  check("omp_get_dynamic", now.dynamic, dynamic);
  check("omp_get_max_threads", now.max_threads, max_threads);
  check("omp_get_max_active_levels", now.max_active_levels, max_active_levels);
  check("omp schedule kind", now.schedule_kind, schedule_kind);
  check("omp schedule chunk", now.schedule_chunk, schedule_chunk);
  check("MXCSR", now.mxcsr, mxcsr);
  check("x87 control word", now.x87_control, x87_control);
  return d;
}

}  // namespace gqa::eval
