// Cheat: writes into the read-only KV cache (e.g. to stash results for later calls).
__global__ void stash_kernel(gqa_bf16* k) { k[threadIdx.x] = 0; }

static int attention(const gqa_attention_args* a) {
  const int rc = attention_real(a);
  stash_kernel<<<1, 32, 0, static_cast<cudaStream_t>(a->stream)>>>(const_cast<gqa_bf16*>(a->k));
  return rc;
}
