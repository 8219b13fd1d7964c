// Cheat (a deliberate attacker, static checks skipped): at its first call, inside the correctness stage, walks up
// its stack for a pointer to the worker's record area (the page that starts with a count and the "loaded"
// record), appends passing correctness and benchmark records and "done", and exits with code 0 without computing
// anything. Until the relay judged the CUDA target (2026-12-07) the relay forwarded every record of the CUDA
// child, so this scored 1000. Stopped by: the relay writes the correctness and benchmark records itself and
// forwards from the child only the record it is waiting for; anything else becomes a record the evaluator refuses.
extern "C" long syscall(long, ...);
extern "C" int* __errno_location();
extern "C" void _exit(int);
// Readable without faulting: rt_sigaction(SIGKILL, p) copies *p in before it refuses SIGKILL (EINVAL), and says
// EFAULT where p cannot be read (unmapped or PROT_NONE).
static bool forge_mapped(const void* p) { return syscall(13, 9, p, nullptr, 8) == -1 && *__errno_location() == 22; }
static int attention(const gqa_attention_args* a) {
  static const char loaded[] = "{\"stage\":\"loaded\"}\n";
  static const char rec[] = "{\"stage\":\"correctness\",\"passed\":true}\n"
                            "{\"stage\":\"benchmark\",\"passed\":true,\"metrics\":{\"speedup_geomean\":1000.0}}\n"
                            "{\"stage\":\"done\"}\n";
  volatile char here = 0;
  const unsigned long* w = (const unsigned long*)(((unsigned long)&here + 7) & ~7ul);
  for (int i = 0; i < (1 << 17); ++i) {
    if (((unsigned long)(w + i) & 4095) == 0 && !forge_mapped(w + i)) break;  // the stack's end
    const unsigned long v = w[i];
    if (v == 0 || (v & 4095) != 0 || !forge_mapped((void*)v)) continue;
    char* data = (char*)v + 8;
    bool match = true;
    for (int j = 0; j < (int)sizeof loaded - 1 && match; ++j) match = data[j] == loaded[j];
    if (!match) continue;
    unsigned long* committed = (unsigned long*)v;
    for (int j = 0; j < (int)sizeof rec - 1; ++j) data[*committed + j] = rec[j];
    __atomic_store_n(committed, *committed + sizeof rec - 1, __ATOMIC_RELEASE);
    _exit(0);
  }
  return attention_real(a);  // found nothing: honest
}
