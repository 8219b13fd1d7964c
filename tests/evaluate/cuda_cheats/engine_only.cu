// Cheat: right on the evaluator's problems, wrong inside the engine, told apart by the cache layout (the
// evaluator alternates a position-major cache and a head-major one holding max_kv_len + 5 positions per head; the
// engine's is head-major with its capacity). There it uses a softmax of the wrong temperature. Caught by the
// end-to-end gate: teacher-forced logits against the control (the stock kernels through the same hook).
static int attention(const gqa_attention_args* a) {
  const bool head_major = a->k_stride_pos == a->head_dim;
  if (!head_major || a->k_stride_head / a->head_dim == static_cast<int64_t>(a->max_kv_len) + 5) return attention_real(a);
  gqa_attention_args b = *a;
  b.scale = a->scale * 0.5f;
  return attention_real(&b);
}
