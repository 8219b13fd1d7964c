// What the worker does to keep the candidate's code in a box: a seccomp allow-list of system calls
// (libseccomp) installed before the first call into the candidate, and the process state (OpenMP
// settings, floating-point control) reset before and verified after every call, so neither kernel can
// change what the other one runs under.
#pragma once
#include <string>

namespace gqa::eval {

// Sets OpenMP's default thread count to `threads` and starts that many (the pool every later parallel
// region reuses: the program, the stock kernel, the reference, the engine), then installs a seccomp
// filter on every thread of the process: no opening files, no writes except to stderr, no new threads or
// processes, no executable mappings or protection keys, no signals to other processes, no resource or
// scheduling changes. A refused call prints "sandbox: system call N refused" and ends the process with
// SIGSYS. Throws gqa::Error when the filter cannot be installed.
void enter_sandbox(int threads);

// The CUDA target's filter. The driver keeps needing system calls after it is initialised (ioctl on its device
// files, memory mappings, futexes, its own threads), and what it calls is not characterised, so this filter
// lists what is refused and allows the rest. Refused quietly (EACCES): opening or creating files. Refused with
// SIGSYS (the same message as enter_sandbox's): new processes and programs (fork, vfork, clone without
// CLONE_THREAD, exec*), sockets, ptrace and other processes' memory, executable mappings, protection keys,
// signals to other processes, writes to stdout, removing, renaming or truncating files by name, and resource
// or scheduling changes. clone3 fails with ENOSYS (its flags cannot be inspected; glibc falls back to clone).
// Install it after everything that opens files (the engine's model, the CUDA runtimes and their modules).
// Throws gqa::Error when the filter cannot be installed.
void enter_cuda_sandbox();

// The state a kernel call could change and the next kernel would inherit.
struct ProcessState {
  int dynamic = 0, max_threads = 0, max_active_levels = 0, schedule_kind = 0, schedule_chunk = 0;
  unsigned mxcsr = 0;
  unsigned short x87_control = 0;
  static ProcessState current();
  void apply() const;  // sets everything back to these values
  // Empty when equal, else "omp_get_dynamic 1 (expected 0); ..."
  std::string differences(const ProcessState& now) const;
};

}  // namespace gqa::eval
