// Bug: a kernel stores through a wild pointer; the illegal address is a sticky CUDA error that must fail
// this candidate only.
__global__ void wild_kernel(gqa_bf16* out) { out[(1ull << 40) / sizeof(gqa_bf16)] = 1; }

static int attention(const gqa_attention_args* a) {
  const int rc = attention_real(a);
  wild_kernel<<<1, 1, 0, static_cast<cudaStream_t>(a->stream)>>>(a->out);
  return rc;
}
