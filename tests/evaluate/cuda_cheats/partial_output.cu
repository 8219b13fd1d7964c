// Cheat: computes everything, then leaves the last half of the output as if it had never been written.
static int attention(const gqa_attention_args* a) {
  const size_t n = static_cast<size_t>(a->total_q) * a->num_q_heads * a->head_dim;
  const int rc = attention_real(a);
  cudaMemsetAsync(a->out + n / 2 + 1, 0xFF, (n - n / 2 - 1) * sizeof(gqa_bf16), static_cast<cudaStream_t>(a->stream));
  return rc;
}
