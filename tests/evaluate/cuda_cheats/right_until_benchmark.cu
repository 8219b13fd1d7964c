// Cheat: correct for the first calls, then does nothing (hoping the checks stop before the timing). Host code
// runs only when a call is captured into a graph, about 120 times in the correctness stage (31 cases, two trials,
// two captures each; H100, 2026-12-06): 50 falls inside it, so the correctness stage catches it (the suite then
// expects that stage); a device-side change during the timed replays is late_stop's, which the benchmark catches.
static int calls = 0;
static int attention(const gqa_attention_args* a) {
  if (++calls <= 50) return attention_real(a);
  return GQA_OK;
}
