// Cheat: starts a process of its own at its first call (a raw system call: the import allow-list refuses fork
// and syscall by name, so the test skips the static checks), then computes honestly. Stopped by the worker's
// seccomp filter on the CUDA target (cuda_sandbox): clone without CLONE_THREAD dies of SIGSYS.
extern "C" long raw_syscall(long, ...) __asm__("syscall");  // glibc's syscall(), not redeclared
static int attention(const gqa_attention_args* a) {
  static bool forked = false;
  if (!forked) {
    forked = true;
    raw_syscall(57);  // fork
  }
  return attention_real(a);
}
