// Upload of a checkpoint's tensors to one device allocation, converting to bf16 where needed.
#include "engine/cuda/device_weights.h"

#include <cstring>

#include "common/dtype.h"
#include "common/error.h"

namespace gqa::cuda {

namespace {

size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

// Copies one tensor into dst as bf16. bf16 sources go straight from the mapping; others are converted
// through a host staging buffer in slices.
void put(bf16* dst, const Tensor& t, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(t.numel());
  if (t.dtype == DType::BF16) {
    GQA_CUDA_CHECK(cudaMemcpyAsync(dst, t.data, n * 2, cudaMemcpyHostToDevice, stream));
    GQA_CUDA_CHECK(cudaStreamSynchronize(stream));  // the source is pageable; keep the copies ordered
    return;
  }
  constexpr size_t kSlice = 1 << 22;
  std::vector<float> f(std::min(n, kSlice));
  std::vector<uint16_t> h(f.size());
  const size_t esz = dtype_size(t.dtype);
  for (size_t off = 0; off < n; off += kSlice) {
    const size_t m = std::min(kSlice, n - off);
    convert_to_f32(t.dtype, static_cast<const uint8_t*>(t.data) + off * esz, f.data(), m);
    for (size_t i = 0; i < m; ++i) h[i] = f32_to_bf16(f[i]);
    GQA_CUDA_CHECK(cudaMemcpyAsync(dst + off, h.data(), m * 2, cudaMemcpyHostToDevice, stream));
    GQA_CUDA_CHECK(cudaStreamSynchronize(stream));  // h is reused for the next slice
  }
}

}  // namespace

DeviceWeights upload_weights(const Qwen3Weights& w, cudaStream_t stream) {
  const bool tied = w.lm_head.data == w.embed_tokens.data;
  // Layout pass: offsets of every tensor, then one allocation.
  size_t total = 0;
  auto reserve = [&](size_t elems) {
    size_t off = total;
    total += align_up(elems * 2);
    return off;
  };
  const size_t off_embed = reserve(static_cast<size_t>(w.embed_tokens.numel()));
  struct LayerOffsets { size_t attn_norm, wqkv, q_norm, k_norm, wo, mlp_norm, wgu, wdown; };
  std::vector<LayerOffsets> lo;
  for (const auto& l : w.layers) {
    LayerOffsets o{};
    o.attn_norm = reserve(l.input_layernorm.numel());
    o.wqkv = reserve(l.q_proj.numel() + l.k_proj.numel() + l.v_proj.numel());
    o.q_norm = reserve(l.q_norm.numel());
    o.k_norm = reserve(l.k_norm.numel());
    o.wo = reserve(l.o_proj.numel());
    o.mlp_norm = reserve(l.post_attention_layernorm.numel());
    o.wgu = reserve(l.gate_proj.numel() + l.up_proj.numel());
    o.wdown = reserve(l.down_proj.numel());
    lo.push_back(o);
  }
  const size_t off_norm = reserve(w.norm.numel());
  const size_t off_head = tied ? off_embed : reserve(w.lm_head.numel());

  DeviceWeights d;
  d.storage = DeviceBuffer(total);
  d.bytes = total;
  auto at = [&](size_t off) { return reinterpret_cast<bf16*>(static_cast<char*>(d.storage.get()) + off); };
  put(at(off_embed), w.embed_tokens, stream);
  d.embed = at(off_embed);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const auto& l = w.layers[i];
    const auto& o = lo[i];
    put(at(o.attn_norm), l.input_layernorm, stream);
    put(at(o.wqkv), l.q_proj, stream);
    put(at(o.wqkv) + l.q_proj.numel(), l.k_proj, stream);
    put(at(o.wqkv) + l.q_proj.numel() + l.k_proj.numel(), l.v_proj, stream);
    put(at(o.q_norm), l.q_norm, stream);
    put(at(o.k_norm), l.k_norm, stream);
    put(at(o.wo), l.o_proj, stream);
    put(at(o.mlp_norm), l.post_attention_layernorm, stream);
    put(at(o.wgu), l.gate_proj, stream);
    put(at(o.wgu) + l.gate_proj.numel(), l.up_proj, stream);
    put(at(o.wdown), l.down_proj, stream);
    d.layers.push_back({at(o.attn_norm), at(o.wqkv), at(o.q_norm), at(o.k_norm), at(o.wo), at(o.mlp_norm), at(o.wgu),
                        at(o.wdown)});
  }
  put(at(off_norm), w.norm, stream);
  d.final_norm = at(off_norm);
  if (!tied) put(at(off_head), w.lm_head, stream);
  d.lm_head = at(off_head);
  return d;
}

}  // namespace gqa::cuda
