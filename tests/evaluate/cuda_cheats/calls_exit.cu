// Cheat: ends the process (hoping that a missing result reads as success). Refused statically; at run
// time (static checks skipped) the worker's missing results fail it.
static int attention(const gqa_attention_args* a) {
  exit(0);
  return GQA_OK;
}
