// The engine's stock attention kernels behind the attention ABI. Decode: the split-KV kernel for the whole
// batch in one launch, bf16 q in and bf16 out, lengths read on the device (a captured graph serves any
// lengths); `prepare` only zeroes the split counters. Prefill: `prepare` computes the start position on the
// device, then the engine's prefill kernel reads the bf16 q itself (bf16 out).
#include <algorithm>
#include <cstdint>
#include <exception>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"
#include "engine/cuda/stock_attention_abi.h"

namespace gqa::cuda {

namespace {

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// Where the wrapper keeps its split scratch (decode) or start positions (prefill) in the caller's workspace.
struct Layout {
  size_t pos = 0, counters = 0, part_o = 0, part_ml = 0, end = 0;
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
  const size_t splits = static_cast<size_t>(stock_attention_decode_splits(a));
  Layout l;
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t o = off;
    off += align256(bytes);
    return o;
  };
  const size_t seqs = static_cast<size_t>(a->num_seqs);
  if (is_decode(a)) {
    l.counters = take(seqs * a->num_kv_heads * 4);
    l.part_o = take(seqs * splits * a->num_q_heads * a->head_dim * 4);
    l.part_ml = take(seqs * splits * a->num_q_heads * 2 * 4);
  } else {
    l.pos = take(seqs * 4);
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
  if (is_decode(a) && a->num_seqs > 65535) return GQA_ERR_UNSUPPORTED;  // grid.z
  if (uintptr_t(a->workspace) % 256 != 0 || a->workspace_bytes < layout_of(a).end) return GQA_ERR_WORKSPACE;
  return GQA_OK;
}

template <class T>
T* at(const gqa_attention_args* a, size_t off) {
  return reinterpret_cast<T*>(static_cast<char*>(a->workspace) + off);
}

// Prefill: pos[s] = kv_len - q_len (the first new query's position).
__global__ void prepare_prefill_kernel(const int32_t* cu_q, const int32_t* kv_lens, int seqs, int* pos) {
  griddep_launch_dependents();
  griddep_wait();
  for (int s = threadIdx.x; s < seqs; s += blockDim.x) pos[s] = kv_lens[s] - (cu_q[s + 1] - cu_q[s]);
}

// Decode: the split counters zeroed (the workspace arrives with unspecified contents). The attention kernel
// after it loads q and K/V before its own griddepcontrol.wait (inputs_ready), and the kernel before this one
// may have written them (the engine's layer kernel writes q and the new K/V row): so this kernel lets its
// dependent launch only once its wait has returned, i.e. once that kernel has completed.
__global__ void zero_counters_kernel(unsigned* counters, int n) {
  griddep_wait();
  griddep_launch_dependents();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) counters[i] = 0;
}

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
  if (a->max_q_len != 1 || a->num_kv_heads < 1 || a->num_seqs < 1 || a->max_kv_len < 1 ||
      a->num_q_heads % a->num_kv_heads != 0 ||
      !attention_decode_supported(a->head_dim, a->num_q_heads / a->num_kv_heads))
    return 1;
  // One wave of blocks over the whole batch, within the ABI's workspace guarantee (GQA_MAX_KV_SPLITS).
  return attention_decode_splits(sm_count(), a->head_dim, a->num_q_heads / a->num_kv_heads, a->num_kv_heads,
                                 a->num_seqs, a->max_kv_len, GQA_MAX_KV_SPLITS);
}

size_t stock_attention_workspace_bytes(const gqa_attention_args* a) { return layout_of(a).end; }

int stock_attention_prepare(const gqa_attention_args* a) {
  return guarded(a, [&](const Layout& l, const Exec& ex) {
    if (is_decode(a)) {
      const int n = a->num_seqs * a->num_kv_heads;
      launch(ex, dim3((n + 255) / 256), dim3(256), 0, zero_counters_kernel, at<unsigned>(a, l.counters), n);
      return;
    }
    launch(ex, dim3(1), dim3(256), 0, prepare_prefill_kernel, a->cu_q_lens, a->kv_lens, a->num_seqs,
           at<int>(a, l.pos));
  });
}

int stock_attention_engine_kernels(const gqa_attention_args* a) {
  return guarded(a, [&](const Layout& l, const Exec& ex) {
    const int D = a->head_dim, H = a->num_q_heads;
    const int capacity = static_cast<int>(a->k_stride_head / D);
    if (is_decode(a)) {
      DecodeAttentionArgs d;
      d.q_bf16 = reinterpret_cast<const bf16*>(a->q), d.out_bf16 = reinterpret_cast<bf16*>(a->out);
      d.k_cache = reinterpret_cast<const bf16*>(a->k), d.v_cache = reinterpret_cast<const bf16*>(a->v);
      d.capacity = capacity, d.k_stride_seq = a->k_stride_seq, d.v_stride_seq = a->v_stride_seq;
      d.kv_lens = a->kv_lens, d.num_seqs = a->num_seqs;
      d.n_heads = H, d.n_kv = a->num_kv_heads, d.head_dim = D;
      d.n_splits = stock_attention_decode_splits(a), d.scale = a->scale;
      d.part_o = at<float>(a, l.part_o), d.part_ml = at<float>(a, l.part_ml), d.counters = at<unsigned>(a, l.counters);
      d.inputs_ready = true;  // launched only after everything before `prepare` completed (zero_counters_kernel)
      attention_decode(ex, d);
    } else {
      PrefillAttentionArgs p;
      p.q_bf16 = reinterpret_cast<const bf16*>(a->q), p.T = a->total_q;
      p.k_cache = reinterpret_cast<const bf16*>(a->k), p.v_cache = reinterpret_cast<const bf16*>(a->v);
      p.capacity = capacity, p.pos = at<int>(a, l.pos);
      p.n_heads = H, p.n_kv = a->num_kv_heads, p.head_dim = D, p.scale = a->scale;
      p.out = reinterpret_cast<bf16*>(a->out);
      attention_prefill(ex, p);
    }
  });
}

int stock_attention_abi(const gqa_attention_args* a) {
  int rc = stock_attention_prepare(a);
  if (rc == GQA_OK) rc = stock_attention_engine_kernels(a);
  return rc;
}

}  // namespace gqa::cuda
