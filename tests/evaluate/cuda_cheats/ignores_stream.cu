// Bug: launches on the legacy default stream instead of a->stream; under global-mode graph capture that is
// an error, and outside capture the work would be unordered with the engine's.
static int attention(const gqa_attention_args* a) {
  gqa_attention_args b = *a;
  b.stream = nullptr;
  return attention_real(&b);
}
