// The unfused decode step: one kernel per operation (GEMVs with the norms folded into their input, q/k norm +
// RoPE + cache write, attention), ~6 per layer. The simplest layout; the tests hold the others to it.
#include "engine/cuda/decode_steps.h"

namespace gqa::cuda {

void enqueue_unfused_step(const Exec& ex, const StepContext& c) {
  const ModelConfig& cfg = *c.m.cfg;
  const DeviceWeights& w = *c.m.w;
  const int H = static_cast<int>(cfg.hidden_size), I = static_cast<int>(cfg.intermediate_size);
  const int qd = static_cast<int>(cfg.q_dim()), kvd = static_cast<int>(cfg.kv_dim());
  const float eps = static_cast<float>(cfg.rms_norm_eps);
  embed(ex, c.b.token, 1, w.embed, H, c.b.x);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const DeviceLayer& lw = w.layers[static_cast<size_t>(l)];
    const size_t layer_kv = static_cast<size_t>(l) * c.b.capacity * kvd;
    gemv(ex, GemvInput::RmsNorm,
         GemvArgs{.w = lw.wqkv, .n = qd + 2 * kvd, .k = H, .x = c.b.x, .norm_w = lw.attn_norm, .eps = eps, .y = c.b.qkv});
    qk_norm_rope(ex, QkNormRopeArgs{
                         .qkv = c.b.qkv,
                         .T = 1,
                         .n_heads = static_cast<int>(cfg.num_attention_heads),
                         .n_kv = static_cast<int>(cfg.num_key_value_heads),
                         .head_dim = static_cast<int>(cfg.head_dim),
                         .q_norm = lw.q_norm,
                         .k_norm = lw.k_norm,
                         .eps = eps,
                         .inv_freq = c.m.inv_freq,
                         .pos = c.b.pos,
                         .q_out = c.b.q,
                         .k_cache = c.b.k_cache + layer_kv,
                         .v_cache = c.b.v_cache + layer_kv,
                         .capacity = static_cast<int>(c.b.capacity),
                     });
    decode_attention(ex, c, l, /*fused=*/false);
    gemv(ex, GemvInput::Plain, GemvArgs{.w = lw.wo, .n = H, .k = qd, .x = c.b.att, .y = c.b.x, .accumulate = true});
    gemv(ex, GemvInput::RmsNorm,
         GemvArgs{.w = lw.wgu, .n = 2 * I, .k = H, .x = c.b.x, .norm_w = lw.mlp_norm, .eps = eps, .y = c.b.gu});
    gemv(ex, GemvInput::SiluMul,
         GemvArgs{.w = lw.wdown, .n = H, .k = I, .x = c.b.gu, .y = c.b.x, .accumulate = true});
  }
  gemv(ex, GemvInput::RmsNorm,
       GemvArgs{.w = w.lm_head,
                .n = static_cast<int>(cfg.vocab_size),
                .k = H,
                .x = c.b.x,
                .norm_w = w.final_norm,
                .eps = eps,
                .y = c.b.logits,
                .advance_pos = c.b.pos});
}

}  // namespace gqa::cuda
