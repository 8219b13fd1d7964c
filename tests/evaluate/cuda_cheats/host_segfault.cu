// Cheat (or bug): dereferences a null pointer on the host; the worker process dies with SIGSEGV.
static int attention(const gqa_attention_args* a) {
  volatile int* p = nullptr;
  *p = 1;
  return attention_real(a);
}
