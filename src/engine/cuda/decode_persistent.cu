// The persistent decode step (decode_persistent_kernel.cuh): the built-in kernel, whose attention is the stock
// program examples/qwen3_gqa/persistent_program.cu compiled in, and the host side that plans and launches it or
// a kernel with an attention program linked in (decode_program.cpp).
#include <cstdio>

#include "qwen3_gqa/persistent_program.cu"
#include "engine/cuda/decode_persistent_kernel.cuh"

namespace gqa::cuda {

namespace {

template <int D, int G, int N>
__global__ void __launch_bounds__(kThreads, 1) persistent_decode_kernel(const __grid_constant__ PersistentDecodeArgs a,
                                                                        const __grid_constant__ Plan p) {
  persistent_decode_body<D, G, N>(a, p);
}

// The groups the step is built for (query heads per KV head): Qwen3's 2 (0.6B, 1.7B), 4 (4B, 8B), 5 (14B, head_dim
// 128 only) and 8 (32B), and the test models' 1.
int group_index(int group) { return group == 1 ? 0 : group == 2 ? 1 : group == 4 ? 2 : group == 5 ? 3 : 4; }
PersistentKernel g_builtin[2][5][2];  // [D = 64 / 128][group_index][narrow / wide]

using KernelFn = void (*)(PersistentDecodeArgs, Plan);
template <int D, int N>
KernelFn kernel_for(int group) {
  switch (group) {
    case 1: return persistent_decode_kernel<D, 1, N>;
    case 2: return persistent_decode_kernel<D, 2, N>;
    case 4: return persistent_decode_kernel<D, 4, N>;
    case 5:
      if constexpr (D == 128) return persistent_decode_kernel<D, 5, N>;
      return nullptr;  // refused by persistent_decode_unsupported
    default: return persistent_decode_kernel<D, 8, N>;
  }
}
KernelFn kernel_for(int D, int group, bool wide) {
  if (D == 64) return wide ? kernel_for<64, kWideVec>(group) : kernel_for<64, kNarrowVec>(group);
  return wide ? kernel_for<128, kWideVec>(group) : kernel_for<128, kNarrowVec>(group);
}


}  // namespace

std::string persistent_decode_unsupported(int hidden, int inter, int n_heads, int n_kv, int head_dim) {
  using std::to_string;
  if (head_dim != 64 && head_dim != 128) return "head_dim " + to_string(head_dim) + " is not 64 or 128";
  if (n_kv <= 0 || n_heads % n_kv != 0)
    return to_string(n_heads) + " query heads do not split over " + to_string(n_kv) + " KV heads";
  const int group = n_heads / n_kv;
  if (group != 1 && group != 2 && group != 4 && group != 8 && !(group == 5 && head_dim == 128))
    return to_string(group) + " query heads per KV head (it takes 1, 2, 4 or 8, and 5 with head_dim 128)";
  // hidden_size feeds RMSNorm, whose input a block holds in registers whole; the others are read in parts.
  struct Input {
    const char* name;
    int k, limit;
    const char* what;
  };
  const Input inputs[] = {
      {"hidden_size", hidden, kMaxInput, "the longest normalised input its blocks hold in registers"},
      {"intermediate_size", inter, kMaxLongInput, "the longest input its blocks hold in shared memory"},
      {"q_dim (heads x head_dim)", n_heads * head_dim, kMaxLongInput,
       "the longest input its blocks hold in shared memory"}};
  for (const auto& [name, k, limit, what] : inputs) {
    if (k <= 0 || k % 16 != 0)
      return std::string(name) + " " + to_string(k) + " is not a positive multiple of 16 (whole mma k-steps)";
    if (k > limit) return std::string(name) + " " + to_string(k) + " exceeds " + to_string(limit) + ", " + what;
  }
  return "";
}

bool persistent_decode_supported(int hidden, int inter, int n_heads, int n_kv, int head_dim) {
  return persistent_decode_unsupported(hidden, inter, n_heads, n_kv, head_dim).empty();
}

size_t persistent_decode_sync_words(int layers) { return static_cast<size_t>(sync_words(layers)); }

size_t persistent_decode_ll_words(int hidden, int inter, int n_heads, int n_kv, int head_dim, int sms) {
  return ll_layout(hidden, inter, n_heads, n_kv, head_dim, persistent_decode_max_splits(sms, n_kv)).total;
}

namespace {

struct Prepared {
  Plan plan;
  size_t smem;
  const void* kernel;
};

// The launch's plan for a GPU with `sms` SMs and `optin` bytes of shared memory per block: rows per weight tile
// from the model's shapes, ring stages from what shared memory leaves. Host arithmetic only (no CUDA calls).
struct PlanChoice {
  Plan plan;
  size_t smem;
  bool wide;
};
// Shared memory a block needs beside its ring stages: c.res, an attention split's q heads and new k/v (floats,
// rounded up to 16 bytes so that c.xs after it stays aligned); c.xs, a GEMV input (kTerms bf16 per element of the
// longest input) or attention's merge scratch (floats); and the kernel's static arrays.
struct Beside {
  int res_floats;
  size_t xs_bytes, dynamic_bytes, bytes;  // dynamic: res + xs (the launch's dynamic shared memory beside the ring)
};
Beside beside_ring(const PersistentDecodeArgs& a) {
  const int D = a.head_dim, group = a.n_heads / a.n_kv;
  Beside b{};
  b.res_floats = ((group + 1) * D + 3) / 4 * 4;
  const size_t longest = static_cast<size_t>(std::max({a.hidden, a.inter, a.n_heads * D}));
  const size_t xs_need = std::max<size_t>(2 * kTerms * (longest + kTermPad),
                                          4 * static_cast<size_t>(kConsumerWarps) * group * (D + 2));
  b.xs_bytes = (xs_need + 1023) / 1024 * 1024;
  b.dynamic_bytes = static_cast<size_t>(b.res_floats) * 4 + b.xs_bytes;
  const size_t static_bytes = 2 * kMaxStages * 8 + (2 * kPartFloats + kConsumerWarps) * 4 + kMaxRope * 8 + 1024;
  b.bytes = b.dynamic_bytes + static_bytes;
  return b;
}

PlanChoice plan_for_tile(const PersistentDecodeArgs& a, int sms, int optin) {
  const int D = a.head_dim;
  if (!persistent_decode_supported(a.hidden, a.inter, a.n_heads, a.n_kv, D))
    fail_unsupported("persistent_decode: model shape outside what the persistent decode step supports");
  if (a.split_keys < 1) fail_unsupported("persistent_decode: split_keys must be positive");
  if (a.poll_ns < 0 || a.poll_ns > 10000) fail_unsupported("persistent_decode: poll_ns must be 0..10000");
  if (a.tile_kib < 32 || a.tile_kib > 192) fail_unsupported("persistent_decode: tile_kib must be 32..192 (or 0: auto)");
  if (a.kv_tile_kib < 8 || a.kv_tile_kib > a.tile_kib || a.kv_tile_kib * 1024 % (4 * D) != 0)
    fail_unsupported("persistent_decode: kv_tile_kib must be 8..tile_kib and hold a whole number of keys");
  const int G = sms, qd = a.n_heads * D, kvd = a.n_kv * D;
  Plan p{};
  p.stage_bytes = a.tile_kib * 1024 + kStagePadBytes;
  p.poll_ns = static_cast<unsigned>(a.poll_ns);
  const int sb = p.stage_bytes;
  if (a.balance_tiles < -1 || a.balance_tiles > 31) fail_unsupported("persistent_decode: balance_tiles must be -1..31");
  // Each matrix's rows per tile, balanced where its bit is set (-1: where balance_pays).
  auto rows = [&](int bit, int n, int k, int halves) {
    if (2 * row_pitch(k) * halves > sb)  // a tile holds at least one row (pair): Qwen3-32B's down rows (50 KiB)
      fail_unsupported(("persistent_decode: a weight row of " + std::to_string(k) + " bf16 does not fit a ring stage of " +
                        std::to_string((sb - kStagePadBytes) / 1024) + " KiB").c_str());
    const bool bal = a.balance_tiles < 0 ? balance_pays(n, k, G, sb, halves, a.fma_rows) : (a.balance_tiles & bit) != 0;
    return rows_per_tile(n, k, G, sb, halves, bal);
  };
  p.rows_qkv = rows(1, qd + 2 * kvd, a.hidden, 1);
  p.rows_o = rows(2, a.hidden, qd, 1);
  p.rows_gu = rows(4, a.inter, a.hidden, 2);  // row pairs: gate and up
  p.rows_dn = rows(8, a.hidden, a.inter, 1);
  p.rows_lm = rows(16, a.vocab, a.hidden, 1);
  p.keys_per_tile = a.kv_tile_kib * 1024 / (4 * D);
  p.max_splits = persistent_decode_max_splits(G, a.n_kv);
  const int group = a.n_heads / a.n_kv;
  const Beside beside = beside_ring(a);
  p.res_floats = beside.res_floats;
  const size_t xs_bytes = beside.xs_bytes;
  // The narrowest build whose vectors hold the longest input (registers grow with the width).
  const bool wide = persistent_decode_wide(a.hidden, a.inter, a.n_heads, D);
  const int vec_floats = (wide ? kWideVec : kNarrowVec) * 4 * kConsumers;
  // The merging split stages merge_chunk splits' partials (part_stride floats each) after the warps' scratch.
  const int per = part_stride(group, D), room = static_cast<int>(xs_bytes / 4) - kConsumerWarps * group * (D + 2);
  p.merge_chunk = std::min(vec_floats / per, room / per);
  static_assert(kMaxFmaRows == 8, "the message below says 0..8");
  if (a.fma_rows < 0 || a.fma_rows > kMaxFmaRows) fail_unsupported("persistent_decode: fma_rows must be 0..8");
  p.fma_rows = a.fma_rows;
  if (a.dynamic_tiles != 0 && a.dynamic_tiles != 1) fail_unsupported("persistent_decode: dynamic_tiles must be 0 or 1");
  p.dynamic = a.dynamic_tiles;
  if (a.merge_chunk < 0) fail_unsupported("persistent_decode: merge_chunk must be >= 0");
  // 0: one split per poll (v7's merge) for groups of 4 and more, as many as fit for smaller ones. H100, one split
  // against all, log v24: Qwen3-4B +6.4% / +1.4% at ctx 128 / 8192, 8B +3.2% / +1.0%; 0.6B +2.0% / -4.8%.
  const int chunk = a.merge_chunk > 0 ? a.merge_chunk : group >= 4 ? 1 : 0;
  if (chunk > 0) p.merge_chunk = std::min(p.merge_chunk, chunk);
  if (static_cast<size_t>(optin) < beside.bytes + 2 * static_cast<size_t>(sb))
    fail_unsupported("persistent_decode: not enough shared memory per block for two ring stages (tile_kib too large)");
  p.stages = static_cast<int>(std::min<size_t>(kMaxStages, (optin - beside.bytes) / sb));
  p.xs_bytes = static_cast<int>(xs_bytes);
  return PlanChoice{p, static_cast<size_t>(p.stages) * sb + beside.dynamic_bytes, wide};
}

// Whether two ring stages of tile_kib fit in optin bytes beside what beside_ring needs.
bool two_stages_fit(const PersistentDecodeArgs& a, int optin) {
  return persistent_decode_supported(a.hidden, a.inter, a.n_heads, a.n_kv, a.head_dim) &&
         beside_ring(a).bytes + 2 * (static_cast<size_t>(a.tile_kib) * 1024 + kStagePadBytes) <= static_cast<size_t>(optin);
}

// tile_kib 0: the largest stage of at most 64 KiB that leaves room for three stages (a phase then starts with
// two tiles in flight, not one), else 64 KiB. At Qwen3-4B and 8B the long inputs' three bf16 terms (57 and 72
// KiB) leave room for only two 64 KiB stages. Any other tile_kib: that stage, or where two of it do not fit
// beside the input buffer (Qwen3-14B's intermediate 17,408: 102 KiB of terms), the largest that does, down to
// 32 KiB and the KV tile (below that: an error, and the engine decodes with the fused layout). Shrunk stages
// that hold a single row of down_proj are refused too (the engine decodes fused): at Qwen3-14B such a step was
// 3.5% / 9.2% slower than the fused layout at ctx 128 / 8192 (log v23); asking for the shrunk size itself
// (tile_kib 57 there) still gets it.
PlanChoice choose_plan(const PersistentDecodeArgs& a, int sms, int optin) {
  PersistentDecodeArgs t = a;
  if (a.tile_kib != 0) {
    while (t.tile_kib > std::max(32, a.kv_tile_kib) && !two_stages_fit(t, optin)) --t.tile_kib;
    PlanChoice c = plan_for_tile(t, sms, optin);
    if (t.tile_kib < a.tile_kib && 2 * 2 * row_pitch(a.inter) > t.tile_kib * 1024)  // room for one row of down
      fail_unsupported(("persistent_decode: two ring stages fit beside the input buffer only at " +
                        std::to_string(t.tile_kib) + " KiB, where a tile holds one row of down_proj (" +
                        std::to_string(a.inter) + " bf16), slower than the fused layout; tile_kib " +
                        std::to_string(t.tile_kib) + " asks for them anyway").c_str());
    return c;
  }
  t.tile_kib = 64;
  const PlanChoice two = plan_for_tile(t, sms, optin);  // throws like a fixed 64 when two stages do not fit
  if (two.plan.stages >= 3) return two;
  for (t.tile_kib = 63; t.tile_kib >= std::max(32, a.kv_tile_kib); --t.tile_kib)
    if (PlanChoice c = plan_for_tile(t, sms, optin); c.plan.stages >= 3) return c;
  return two;
}

std::string describe(const Plan& p, bool wide, int sms) {
  char text[512];
  std::snprintf(text, sizeof text,
                "persistent, %s build, %d blocks; %d ring stages of %d KiB; rows per weight tile: qkv %d, o %d, "
                "gate/up %d pairs, down %d, lm_head %d; attention: up to %d splits per KV head, %d keys per tile, "
                "merge chunk %d; input buffer %d KiB; tiles of up to %d rows on CUDA cores; weight tiles %s",
                wide ? "wide" : "narrow", sms, p.stages, (p.stage_bytes - kStagePadBytes) / 1024, p.rows_qkv, p.rows_o,
                p.rows_gu, p.rows_dn, p.rows_lm, p.max_splits, p.keys_per_tile, p.merge_chunk, p.xs_bytes / 1024, p.fma_rows,
                p.dynamic ? "claimed at run time" : "dealt round robin");
  return text;
}

// The launch's plan and shared memory; sets the kernel's shared-memory limit the first time (outside graph
// capture when the engine calls persistent_decode_configure from reset()). linked: a kernel with an attention
// program linked in (null: the built-in one).
Prepared prepare(const Exec& ex, const PersistentDecodeArgs& a, PersistentKernel* linked, std::string* text = nullptr) {
  const int D = a.head_dim, group = a.n_heads / std::max(a.n_kv, 1);
  int device = 0, optin = 0;
  GQA_CUDA_CHECK(cudaGetDevice(&device));
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const PlanChoice choice = choose_plan(a, ex.sms, optin);
  const bool wide = choice.wide;
  const size_t smem = choice.smem;
  if (text) *text = describe(choice.plan, wide, ex.sms);
  PersistentKernel& cfg =
      linked ? *linked : g_builtin[D == 64 ? 0 : 1][group_index(group)][wide ? 1 : 0];
  if (!linked) cfg.fn = reinterpret_cast<const void*>(kernel_for(D, group, wide));
  if (linked && linked->name != persistent_linkable_kernel_name(D, group, wide))
    fail_unsupported(("persistent_decode: the linked kernel " + linked->name + " is not this model's (" +
                      persistent_linkable_kernel_name(D, group, wide) + ")").c_str());
  const void* kernel = cfg.fn;
  if (cfg.smem != smem) {
    GQA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    GQA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&cfg.occupancy, kernel, kThreads, smem));
    cfg.smem = smem;
  }
  // The waits between blocks need every block resident at once: one block per SM.
  if (cfg.occupancy < 1) fail_unsupported("persistent_decode: the kernel cannot be resident on an SM (occupancy 0)");
  return Prepared{choice.plan, smem, kernel};
}

}  // namespace

std::string persistent_decode_configure(const Exec& ex, const PersistentDecodeArgs& a, PersistentKernel* linked) {
  std::string text;
  prepare(ex, a, linked, &text);
  return text;
}

std::string persistent_decode_plan(const PersistentDecodeArgs& a, int sms, int optin_smem_bytes) {
  const PlanChoice choice = choose_plan(a, sms, optin_smem_bytes);
  return describe(choice.plan, choice.wide, sms);
}

void persistent_decode(const Exec& ex, const PersistentDecodeArgs& a, PersistentKernel* linked) {
  const Prepared pr = prepare(ex, a, linked);
  PersistentDecodeArgs args = a;
  Plan plan = pr.plan;
  void* params[] = {&args, &plan};
  launch_handle(ex, dim3(ex.sms), dim3(kThreads), pr.smem, pr.kernel, params);
}

std::string persistent_linkable_kernel_name(int head_dim, int group, bool wide) {
  return "gqa_persistent_step_d" + std::to_string(head_dim) + "_g" + std::to_string(group) + "_n" +
         std::to_string(wide ? kWideVec : kNarrowVec);
}

bool persistent_decode_wide(int hidden, int inter, int n_heads, int head_dim) {
  return std::max({hidden, inter, n_heads * head_dim}) > kNarrowVec * 4 * kConsumers;
}

}  // namespace gqa::cuda
