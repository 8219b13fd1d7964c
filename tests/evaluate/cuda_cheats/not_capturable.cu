// Bug: queries its stream (a host-synchronising call that is not on the static deny list); inside CUDA
// graph capture that invalidates the capture, so the program is not usable in the engine's decode graph.
static int attention(const gqa_attention_args* a) {
  cudaStreamQuery(static_cast<cudaStream_t>(a->stream));
  return attention_real(a);
}
