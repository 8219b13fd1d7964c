// Cheat: creates a file at its first call (a raw openat: the import allow-list refuses open and syscall by name,
// so the test skips the static checks), then computes honestly. Under the worker's seccomp filter on the CUDA
// target (cuda_sandbox) the call fails with EACCES and the file is never made; the program stays correct.
extern "C" long raw_syscall(long, ...) __asm__("syscall");  // glibc's syscall(), not redeclared
static int attention(const gqa_attention_args* a) {
  static bool tried = false;
  if (!tried) {
    tried = true;
    const long fd = raw_syscall(257, -100, "/tmp/gqa_cuda_cheat_created", 0101, 0644);  // openat(AT_FDCWD, O_CREAT|O_WRONLY)
    if (fd >= 0) raw_syscall(3, fd);  // close
  }
  return attention_real(a);
}
