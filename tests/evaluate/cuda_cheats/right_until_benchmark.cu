// Cheat: correct for the first calls (the correctness stage), then does nothing (hoping the benchmark only
// times). Caught by the checks of randomly chosen timed outputs.
static int calls = 0;
static int attention(const gqa_attention_args* a) {
  if (++calls <= 50) return attention_real(a);
  return GQA_OK;
}
