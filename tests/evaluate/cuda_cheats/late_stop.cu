// Cheat: right for the first 200 executions (counted on the device, since a graph replay runs no host
// code), then its output is overwritten with zeros: right for the correctness stage and the first timed
// replays only. Caught by comparing every timed output with the stock kernel's.
__device__ unsigned int g_late_calls = 0;
__global__ void late_count_and_spoil(gqa_bf16* out, long n) {
  __shared__ unsigned int seen;
  if (threadIdx.x == 0) seen = atomicAdd(&g_late_calls, 1u);
  __syncthreads();
  if (seen < 200) return;
  for (long i = threadIdx.x; i < n; i += blockDim.x) out[i] = 0;
}
static int attention(const gqa_attention_args* a) {
  const int rc = attention_real(a);
  if (rc != GQA_OK) return rc;
  const long n = static_cast<long>(a->total_q) * a->num_q_heads * a->head_dim;
  late_count_and_spoil<<<1, 256, 0, static_cast<cudaStream_t>(a->stream)>>>(a->out, n);
  return GQA_OK;
}
