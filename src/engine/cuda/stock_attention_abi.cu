// The engine's stock attention kernels behind the attention ABI: bf16 q converted to the engine's float q,
// per-sequence start positions computed on the device (lengths never reach the host, so a captured graph
// serves any lengths), the engine's own decode / prefill launchers, the decode output converted to bf16.
#include <algorithm>
#include <cstdint>
#include <exception>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"
#include "engine/cuda/stock_attention_abi.h"

namespace gqa::cuda {

namespace {

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// Where the wrapper keeps its float32 copies and split scratch in the caller's workspace.
struct Layout {
  size_t q = 0, pos = 0, counters = 0, part_o = 0, part_ml = 0, out = 0, end = 0;
};

int sm_count() {
  static int sms = [] {
    int dev = 0, n = 1;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      n = 1;
    return n;
  }();
  return sms;
}

bool is_decode(const gqa_attention_args* a) { return a->max_q_len == 1; }

Layout layout_of(const gqa_attention_args* a) {
  const size_t rows = static_cast<size_t>(a->total_q) * a->num_q_heads * a->head_dim;
  const size_t splits = static_cast<size_t>(stock_attention_decode_splits(a));
  Layout l;
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t o = off;
    off += align256(bytes);
    return o;
  };
  l.q = take(rows * 4);
  l.pos = take(static_cast<size_t>(a->num_seqs) * 4);
  l.counters = take(static_cast<size_t>(a->num_kv_heads) * 4);
  if (is_decode(a)) {
    l.part_o = take(splits * a->num_q_heads * a->head_dim * 4);
    l.part_ml = take(splits * a->num_q_heads * 2 * 4);
    l.out = take(rows * 4);
  }
  l.end = off;
  return l;
}

// What the engine's kernels accept (see the header); GQA_OK or GQA_ERR_UNSUPPORTED / GQA_ERR_WORKSPACE.
int check(const gqa_attention_args* a) {
  if (a->abi_version != GQA_ABI_VERSION) return GQA_ERR_INVALID;
  if (a->num_seqs < 1 || a->num_kv_heads < 1 || a->num_q_heads % a->num_kv_heads != 0) return GQA_ERR_INVALID;
  const int group = a->num_q_heads / a->num_kv_heads, D = a->head_dim;
  if (!attention_decode_supported(D, group) || !attention_prefill_supported(D)) return GQA_ERR_UNSUPPORTED;
  if (a->k_stride_pos != D || a->v_stride_pos != D || a->k_stride_head != a->v_stride_head ||
      a->k_stride_head % D != 0 || a->k_stride_head / D < a->max_kv_len || a->k_stride_head / D > INT32_MAX)
    return GQA_ERR_UNSUPPORTED;  // the engine's kernels address [kv_head][capacity][head_dim]
  if (is_decode(a) ? a->total_q != a->num_seqs : (a->num_seqs != 1 || a->total_q != a->max_q_len))
    return GQA_ERR_UNSUPPORTED;
  if (uintptr_t(a->workspace) % 256 != 0 || a->workspace_bytes < layout_of(a).end) return GQA_ERR_WORKSPACE;
  return GQA_OK;
}

template <class T>
T* at(const gqa_attention_args* a, size_t off) {
  return reinterpret_cast<T*>(static_cast<char*>(a->workspace) + off);
}

// q bf16 -> float, pos[s] = kv_len - q_len (the first new query's position), split counters zeroed.
__global__ void prepare_kernel(const gqa_bf16* q, size_t n, const int32_t* cu_q, const int32_t* kv_lens, int seqs,
                               int n_counters, float* qf, int* pos, unsigned* counters) {
  griddep_launch_dependents();
  griddep_wait();
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    qf[i] = __uint_as_float(static_cast<unsigned>(q[i]) << 16);
  if (blockIdx.x == 0) {
    for (int s = threadIdx.x; s < seqs; s += blockDim.x) pos[s] = kv_lens[s] - (cu_q[s + 1] - cu_q[s]);
    for (int c = threadIdx.x; c < n_counters; c += blockDim.x) counters[c] = 0;
  }
}

__global__ void finish_kernel(const float* of, size_t n, gqa_bf16* out) {
  griddep_launch_dependents();
  griddep_wait();
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = __bfloat16_as_ushort(__float2bfloat16(of[i]));
}

unsigned blocks_for(size_t n) { return static_cast<unsigned>(std::clamp<size_t>((n + 1023) / 1024, 1, 4096)); }

// The engine launches with programmatic dependent launch on Hopper; so does the wrapper.
Exec exec_of(const gqa_attention_args* a) { return Exec{static_cast<cudaStream_t>(a->stream), true, sm_count()}; }

template <class F>
int guarded(const gqa_attention_args* a, F&& f) {
  if (const int rc = check(a); rc != GQA_OK) return rc;
  try {
    f(layout_of(a), exec_of(a));
  } catch (const std::exception&) {  // gqa::Error from a launcher (.cu files stay clear of fmt)
    return GQA_ERR_LAUNCH;
  }
  return cudaPeekAtLastError() == cudaSuccess ? GQA_OK : GQA_ERR_LAUNCH;
}

}  // namespace

int stock_attention_decode_splits(const gqa_attention_args* a) {
  if (a->max_q_len != 1 || a->num_kv_heads < 1) return 1;
  // The engine's rule (cuda_engine.cpp, reset): about 32 keys per split, at most ~4 blocks per SM.
  const int max_splits = std::clamp(4 * sm_count() / a->num_kv_heads, 1, kMaxDecodeSplits);
  return static_cast<int>(std::clamp<int64_t>((static_cast<int64_t>(a->max_kv_len) + 31) / 32, 1, max_splits));
}

size_t stock_attention_workspace_bytes(const gqa_attention_args* a) { return layout_of(a).end; }

int stock_attention_prepare(const gqa_attention_args* a) {
  return guarded(a, [&](const Layout& l, const Exec& ex) {
    const size_t n = static_cast<size_t>(a->total_q) * a->num_q_heads * a->head_dim;
    launch(ex, dim3(blocks_for(n)), dim3(256), 0, prepare_kernel, a->q, n, a->cu_q_lens, a->kv_lens, a->num_seqs,
           a->num_kv_heads, at<float>(a, l.q), at<int>(a, l.pos), at<unsigned>(a, l.counters));
  });
}

int stock_attention_engine_kernels(const gqa_attention_args* a) {
  return guarded(a, [&](const Layout& l, const Exec& ex) {
    const int D = a->head_dim, H = a->num_q_heads;
    const int capacity = static_cast<int>(a->k_stride_head / D);
    if (is_decode(a)) {
      DecodeAttentionArgs d;
      d.capacity = capacity, d.n_heads = H, d.n_kv = a->num_kv_heads, d.head_dim = D;
      d.n_splits = stock_attention_decode_splits(a), d.scale = a->scale;
      d.part_o = at<float>(a, l.part_o), d.part_ml = at<float>(a, l.part_ml), d.counters = at<unsigned>(a, l.counters);
      // One launch per sequence, as a batch-1 engine would: they share the split scratch, which stream
      // order (and each kernel's griddepcontrol.wait) keeps apart.
      for (int s = 0; s < a->num_seqs; ++s) {
        const size_t row = static_cast<size_t>(s) * H * D;
        d.q = at<float>(a, l.q) + row, d.out = at<float>(a, l.out) + row;
        d.k_cache = reinterpret_cast<const bf16*>(a->k) + s * a->k_stride_seq;
        d.v_cache = reinterpret_cast<const bf16*>(a->v) + s * a->v_stride_seq;
        d.pos = at<int>(a, l.pos) + s;
        attention_decode(ex, d);
      }
    } else {
      PrefillAttentionArgs p;
      p.q = at<float>(a, l.q), p.T = a->total_q;
      p.k_cache = reinterpret_cast<const bf16*>(a->k), p.v_cache = reinterpret_cast<const bf16*>(a->v);
      p.capacity = capacity, p.pos = at<int>(a, l.pos);
      p.n_heads = H, p.n_kv = a->num_kv_heads, p.head_dim = D, p.scale = a->scale;
      p.out = reinterpret_cast<bf16*>(a->out);
      attention_prefill(ex, p);
    }
  });
}

int stock_attention_finish(const gqa_attention_args* a) {
  return guarded(a, [&](const Layout& l, const Exec& ex) {
    if (!is_decode(a)) return;
    const size_t n = static_cast<size_t>(a->total_q) * a->num_q_heads * a->head_dim;
    launch(ex, dim3(blocks_for(n)), dim3(256), 0, finish_kernel, static_cast<const float*>(at<float>(a, l.out)), n,
           a->out);
  });
}

int stock_attention_abi(const gqa_attention_args* a) {
  int rc = stock_attention_prepare(a);
  if (rc == GQA_OK) rc = stock_attention_engine_kernels(a);
  if (rc == GQA_OK) rc = stock_attention_finish(a);
  return rc;
}

}  // namespace gqa::cuda
