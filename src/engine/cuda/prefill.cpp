// Prefill of one chunk of prompt tokens (prefill.h).
#include "engine/cuda/prefill.h"

#include <algorithm>
#include <cmath>

#include "engine/cuda/cuda_check.h"

namespace gqa::cuda {

namespace {

// C[rows][n] (+)= A[rows][k] · W[n][k]^T in cuBLAS's column-major terms: C^T = W^T' · A^T.
void gemm(cublasHandle_t h, const bf16* a, int64_t rows, const bf16* w, int64_t n, int64_t k, float* c,
          bool accumulate) {
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  GQA_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(rows),
                                static_cast<int>(k), &alpha, w, CUDA_R_16BF, static_cast<int>(k), a, CUDA_R_16BF,
                                static_cast<int>(k), &beta, c, CUDA_R_32F, static_cast<int>(n), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void prefill_chunk(const PrefillContext& c, int64_t pos, int64_t T, bool last_chunk, bool all_logits, float* host_rows) {
  const ModelConfig& cfg = *c.m.cfg;
  const DeviceWeights& w = *c.m.w;
  const Buffers& b = c.b;
  const Exec& ex = c.ex;
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, D = cfg.head_dim;
  const int64_t qd = cfg.q_dim(), kvd = cfg.kv_dim(), V = cfg.vocab_size;
  const int nh = static_cast<int>(cfg.num_attention_heads), nkv = static_cast<int>(cfg.num_key_value_heads);
  const float eps = static_cast<float>(cfg.rms_norm_eps);
  const int t = static_cast<int>(T);
  embed(ex, b.tokens, t, w.embed, static_cast<int>(H), b.x);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const DeviceLayer& lw = w.layers[static_cast<size_t>(l)];
    const size_t layer_kv = static_cast<size_t>(l) * b.capacity * kvd;
    rmsnorm_rows(ex, b.x, lw.attn_norm, t, static_cast<int>(H), eps, b.hb);
    gemm(c.cublas, b.hb, T, lw.wqkv, qd + 2 * kvd, H, b.qkv, false);
    qk_norm_rope(ex, QkNormRopeArgs{
                         .qkv = b.qkv,
                         .T = t,
                         .n_heads = nh,
                         .n_kv = nkv,
                         .head_dim = static_cast<int>(D),
                         .q_norm = lw.q_norm,
                         .k_norm = lw.k_norm,
                         .eps = eps,
                         .inv_freq = c.m.inv_freq,
                         .pos = b.pos,
                         .q_out = b.q,
                         .k_cache = b.k_cache + layer_kv,
                         .v_cache = b.v_cache + layer_kv,
                         .capacity = static_cast<int>(b.capacity),
                     });
    if (c.program) {  // bf16 q in, bf16 out straight into attb
      c.program->prefill(ex, l, t, pos + T, b.q, b.attb);
    } else {
      attention_prefill(ex, PrefillAttentionArgs{
                                .q = b.q,
                                .T = t,
                                .k_cache = b.k_cache + layer_kv,
                                .v_cache = b.v_cache + layer_kv,
                                .capacity = static_cast<int>(b.capacity),
                                .pos = b.pos,
                                .n_heads = nh,
                                .n_kv = nkv,
                                .head_dim = static_cast<int>(D),
                                .scale = 1.0f / std::sqrt(static_cast<float>(D)),
                                .out = b.attb,
                            });
    }
    gemm(c.cublas, b.attb, T, lw.wo, H, qd, b.x, true);
    rmsnorm_rows(ex, b.x, lw.mlp_norm, t, static_cast<int>(H), eps, b.hb);
    gemm(c.cublas, b.hb, T, lw.wgu, 2 * I, H, b.gu, false);
    silu_mul_rows(ex, b.gu, t, static_cast<int>(I), b.actb);
    gemm(c.cublas, b.actb, T, lw.wdown, H, I, b.x, true);
  }
  if (all_logits) {
    for (int64_t r0 = 0; r0 < T; r0 += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, T - r0);
      rmsnorm_rows(ex, b.x + r0 * H, w.final_norm, static_cast<int>(rows), static_cast<int>(H), eps, b.hb);
      gemm(c.cublas, b.hb, rows, w.lm_head, V, H, b.logits, false);
      GQA_CUDA_CHECK(cudaMemcpyAsync(host_rows + r0 * V, b.logits, rows * V * sizeof(float), cudaMemcpyDeviceToHost,
                                     ex.stream));
      GQA_CUDA_CHECK(cudaStreamSynchronize(ex.stream));  // b.logits is reused by the next rows
    }
  } else if (last_chunk) {
    gemv(ex, GemvInput::RmsNorm,
         GemvArgs{.w = w.lm_head,
                  .n = static_cast<int>(V),
                  .k = static_cast<int>(H),
                  .x = b.x + (T - 1) * H,
                  .norm_w = w.final_norm,
                  .eps = eps,
                  .y = b.logits});
    GQA_CUDA_CHECK(
        cudaMemcpyAsync(host_rows, b.logits, V * sizeof(float), cudaMemcpyDeviceToHost, ex.stream));
  }
}

}  // namespace gqa::cuda
