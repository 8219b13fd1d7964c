// Cheat (or bug): computes correctly but also scribbles just past the end of the output (and just before
// it), into memory that belongs to someone else.
__global__ void scribble_kernel(gqa_bf16* out, size_t n) {
  out[n + threadIdx.x] = 0;
  if (threadIdx.x == 0) out[-1] = 0;
}

static int attention(const gqa_attention_args* a) {
  const size_t n = static_cast<size_t>(a->total_q) * a->num_q_heads * a->head_dim;
  const int rc = attention_real(a);
  scribble_kernel<<<1, 32, 0, static_cast<cudaStream_t>(a->stream)>>>(a->out, n);
  return rc;
}
