// The fused decode step: launch l (0..L) finishes layer l-1 (o_proj, MLP) and starts layer l (qkv, norms,
// RoPE, cache) in one kernel of one block per SM (decode_layer.cu); attention of layer l runs between launches
// l and l+1 as a kernel of its own, the stock one or an attention program's. 2 L + 1 kernels, then lm_head.
#include <cmath>

#include "engine/cuda/decode_steps.h"

namespace gqa::cuda {

void decode_attention(const Exec& ex, const StepContext& c, int64_t layer, bool fused) {
  const ModelConfig& cfg = *c.m.cfg;
  if (c.program) {
    c.program->decode(ex, layer, fused, c.b.q, c.b.att);
    return;
  }
  const int64_t D = cfg.head_dim;
  const size_t layer_kv = static_cast<size_t>(layer) * c.b.capacity * cfg.kv_dim();
  attention_decode(ex, DecodeAttentionArgs{
                           .q = c.b.q,
                           .k_cache = c.b.k_cache + layer_kv,
                           .v_cache = c.b.v_cache + layer_kv,
                           .capacity = static_cast<int>(c.b.capacity),
                           .pos = c.b.pos,
                           .n_heads = static_cast<int>(cfg.num_attention_heads),
                           .n_kv = static_cast<int>(cfg.num_key_value_heads),
                           .head_dim = static_cast<int>(D),
                           .n_splits = c.b.n_splits,
                           .scale = 1.0f / std::sqrt(static_cast<float>(D)),
                           .part_o = c.b.part_o,
                           .part_ml = c.b.part_ml,
                           .counters = c.b.counters,
                           .out = c.b.att,
                       });
}

void enqueue_fused_step(const Exec& ex, const StepContext& c) {
  const ModelConfig& cfg = *c.m.cfg;
  const DeviceWeights& w = *c.m.w;
  const int64_t L = cfg.num_hidden_layers;
  const size_t kvd = static_cast<size_t>(cfg.kv_dim());
  for (int64_t l = 0; l <= L; ++l) {
    DecodeLayerArgs a{
        .hidden = static_cast<int>(cfg.hidden_size),
        .inter = static_cast<int>(cfg.intermediate_size),
        .n_heads = static_cast<int>(cfg.num_attention_heads),
        .n_kv = static_cast<int>(cfg.num_key_value_heads),
        .head_dim = static_cast<int>(cfg.head_dim),
        .eps = static_cast<float>(cfg.rms_norm_eps),
    };
    a.x = c.b.x, a.sync = c.b.layer_sync, a.pos = c.b.pos;
    if (l > 0) {  // finish the previous layer
      const DeviceLayer& pw = w.layers[static_cast<size_t>(l - 1)];
      a.wo = pw.wo, a.mlp_norm = pw.mlp_norm, a.wgu = pw.wgu, a.wdown = pw.wdown, a.gu = c.b.gu;
      if (c.program)
        a.att_bf16 = c.program->att_bf16();
      else
        a.att = c.b.att;
    } else {
      a.token = c.b.token, a.embed = w.embed;
    }
    if (l < L) {  // start this one
      const DeviceLayer& lw = w.layers[static_cast<size_t>(l)];
      a.attn_norm = lw.attn_norm, a.wqkv = lw.wqkv, a.q_norm = lw.q_norm, a.k_norm = lw.k_norm;
      a.inv_freq = c.m.inv_freq, a.qkv = c.b.qkv;
      if (c.program)
        a.q_out_bf16 = c.program->q_bf16();
      else
        a.q_out = c.b.q;
      a.k_cache = c.b.k_cache + static_cast<size_t>(l) * c.b.capacity * kvd;
      a.v_cache = c.b.v_cache + static_cast<size_t>(l) * c.b.capacity * kvd;
      a.capacity = static_cast<int>(c.b.capacity);
    }
    decode_layer(ex, a);
    if (l < L) decode_attention(ex, c, l, /*fused=*/true);
  }
  gemv(ex, GemvInput::RmsNorm,
       GemvArgs{.w = w.lm_head,
                .n = static_cast<int>(cfg.vocab_size),
                .k = static_cast<int>(cfg.hidden_size),
                .x = c.b.x,
                .norm_w = w.final_norm,
                .eps = static_cast<float>(cfg.rms_norm_eps),
                .y = c.b.logits,
                .advance_pos = c.b.pos});
}

}  // namespace gqa::cuda
