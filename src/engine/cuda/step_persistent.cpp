// The default decode step: every layer, the stock attention and lm_head as one launch (decode_persistent.cu).
#include "engine/cuda/decode_steps.h"

namespace gqa::cuda {

PersistentDecodeArgs persistent_step_args(const StepContext& c) {
  const ModelConfig& cfg = *c.m.cfg;
  PersistentDecodeArgs a{
      .layers = static_cast<int>(cfg.num_hidden_layers),
      .hidden = static_cast<int>(cfg.hidden_size),
      .inter = static_cast<int>(cfg.intermediate_size),
      .n_heads = static_cast<int>(cfg.num_attention_heads),
      .n_kv = static_cast<int>(cfg.num_key_value_heads),
      .head_dim = static_cast<int>(cfg.head_dim),
      .vocab = static_cast<int>(cfg.vocab_size),
      .eps = static_cast<float>(cfg.rms_norm_eps),
      .layer = c.m.layer_table,
      .embed = c.m.w->embed,
      .final_norm = c.m.w->final_norm,
      .lm_head = c.m.w->lm_head,
      .inv_freq = c.m.inv_freq,
      .token = c.b.token,
      .pos = c.b.pos,
      .k_cache = c.b.k_cache,
      .v_cache = c.b.v_cache,
      .capacity = static_cast<int>(c.b.capacity),
      .ll = c.b.pers_ll,
      .logits = c.b.logits,
      .sync = c.b.pers_sync,
      .split_keys = c.opts.persistent_split_keys,
      .tile_kib = c.opts.persistent_tile_kib,
      .poll_ns = c.opts.persistent_poll_ns,
      .trace = c.b.trace,
      .kv_tile_kib = c.opts.persistent_kv_tile_kib,
      .merge_chunk = c.opts.persistent_merge_chunk,
      .fma_rows = c.opts.persistent_fma_rows,
      .balance_tiles = c.opts.persistent_balance_tiles,
      .dynamic_tiles = c.opts.persistent_dynamic_tiles,
  };
  if (c.decode_program && c.decode_program->plan().has) {  // the program's plan replaces the options
    const gqa_decode_plan_v2& p = c.decode_program->plan().plan;
    a.split_keys = p.split_keys, a.kv_tile_kib = p.kv_tile_kib, a.merge_chunk = p.merge_chunk;
  }
  return a;
}

void enqueue_persistent_step(const Exec& ex, const StepContext& c) {
  persistent_decode(ex, persistent_step_args(c), c.decode_program ? &c.decode_program->kernel() : nullptr);
}

}  // namespace gqa::cuda
