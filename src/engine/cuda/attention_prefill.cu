// Stock causal prefill attention: the dispatch between the tensor-core kernel (attention_prefill_mma.cu,
// head_dim 128, the default) and the first, simple tiled kernel on the CUDA cores, kept here for comparison
// and other head sizes (PrefillAttentionArgs::kernel = Simt selects it). In the old kernel a block owns 32 consecutive
// query tokens of one query head; tiles of 32 keys and values of its KV head are staged in shared memory as
// float and shared by the block's 8 warps, each warp owning 4 queries with an online softmax (lane j scores
// key j of the tile; lane d' accumulates output dims).
#include <cmath>
#include <cstdlib>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

constexpr int kThreads = 256, kWarps = 8;
constexpr int kQTile = 32, kKTile = 32, kQPerWarp = kQTile / kWarps;

template <int D>
constexpr size_t smem_bytes() {
  return sizeof(float) * (kQTile * D + kKTile * (D + 1) + kKTile * D);
}

template <int D>
__global__ void __launch_bounds__(kThreads) prefill_kernel(const __grid_constant__ PrefillAttentionArgs a) {
  constexpr int E = D / 32, KS = D + 1;  // K rows padded: lane j reading row j hits distinct banks
  extern __shared__ float4 smem4[];
  float* qs = reinterpret_cast<float*>(smem4);  // [kQTile][D]
  float* ks = qs + kQTile * D;                  // [kKTile][D + 1]
  float* vs = ks + kKTile * KS;                 // [kKTile][D]

  const int h = blockIdx.y, kvh = h / (a.n_heads / a.n_kv);
  const int t0 = (gridDim.x - 1 - blockIdx.x) * kQTile;  // longest rows first: better tail
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  griddep_launch_dependents();
  griddep_wait();
  const int pos0 = *a.pos;
  const float qscale = a.scale * 1.4426950408889634f;
  for (int i = threadIdx.x; i < kQTile * D; i += kThreads) {
    const int t = t0 + i / D, d = i % D;
    const size_t qi = (static_cast<size_t>(t) * a.n_heads + h) * D + d;
    qs[i] = t < a.T ? (a.q_bf16 ? __bfloat162float(a.q_bf16[qi]) : a.q[qi]) * qscale : 0.f;
  }
  int qpos[kQPerWarp];
  float m[kQPerWarp], l[kQPerWarp], acc[kQPerWarp][E];
#pragma unroll
  for (int qi = 0; qi < kQPerWarp; ++qi) {
    const int t = t0 + warp * kQPerWarp + qi;
    qpos[qi] = t < a.T ? pos0 + t : -1;
    m[qi] = -INFINITY, l[qi] = 0.f;
#pragma unroll
    for (int e = 0; e < E; ++e) acc[qi][e] = 0.f;
  }
  const int last_key = pos0 + min(t0 + kQTile, a.T) - 1;
  const bf16* K = a.k_cache + static_cast<size_t>(kvh) * a.capacity * D;
  const bf16* V = a.v_cache + static_cast<size_t>(kvh) * a.capacity * D;

  for (int kt = 0; kt <= last_key; kt += kKTile) {
    __syncthreads();  // the previous tile is consumed (and qs is written before the first)
    for (int i = threadIdx.x; i < kKTile * D / 8; i += kThreads) {
      const int r = i / (D / 8), c = (i % (D / 8)) * 8, key = kt + r;
      float kf[8], vf[8];
      if (key <= last_key) {
        unpack8(load_stream16(K + static_cast<size_t>(key) * D + c), kf);
        unpack8(load_stream16(V + static_cast<size_t>(key) * D + c), vf);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) kf[e] = 0.f, vf[e] = 0.f;
      }
#pragma unroll
      for (int e = 0; e < 8; ++e) ks[r * KS + c + e] = kf[e], vs[r * D + c + e] = vf[e];
    }
    __syncthreads();

    float s[kQPerWarp];
#pragma unroll
    for (int qi = 0; qi < kQPerWarp; ++qi) s[qi] = 0.f;
    const float* krow = ks + lane * KS;
    const float* qw = qs + warp * kQPerWarp * D;
#pragma unroll 4
    for (int d = 0; d < D; d += 4) {
      const float k0 = krow[d], k1 = krow[d + 1], k2 = krow[d + 2], k3 = krow[d + 3];
#pragma unroll
      for (int qi = 0; qi < kQPerWarp; ++qi) {
        const float4 qv = *reinterpret_cast<const float4*>(qw + qi * D + d);
        s[qi] = fmaf(qv.x, k0, fmaf(qv.y, k1, fmaf(qv.z, k2, fmaf(qv.w, k3, s[qi]))));
      }
    }
    const int key = kt + lane;
#pragma unroll
    for (int qi = 0; qi < kQPerWarp; ++qi) {
      const float sv = key <= qpos[qi] ? s[qi] : -INFINITY;
      const float mn = fmaxf(m[qi], warp_max(sv));
      float p = 0.f, corr = 1.f;
      if (mn != -INFINITY) {
        corr = exp2f(m[qi] - mn);
        p = exp2f(sv - mn);
      }
      l[qi] = l[qi] * corr + p;  // per-lane partial sum, reduced once at the end
#pragma unroll
      for (int e = 0; e < E; ++e) acc[qi][e] *= corr;
      m[qi] = mn;
      s[qi] = p;
    }
#pragma unroll 4
    for (int r = 0; r < kKTile; ++r) {
      float vv[E];
#pragma unroll
      for (int e = 0; e < E; ++e) vv[e] = vs[r * D + lane + 32 * e];
#pragma unroll
      for (int qi = 0; qi < kQPerWarp; ++qi) {
        const float pr = __shfl_sync(0xffffffffu, s[qi], r);
#pragma unroll
        for (int e = 0; e < E; ++e) acc[qi][e] = fmaf(pr, vv[e], acc[qi][e]);
      }
    }
  }
#pragma unroll
  for (int qi = 0; qi < kQPerWarp; ++qi) {
    const int t = t0 + warp * kQPerWarp + qi;
    if (t >= a.T) continue;  // warp-uniform
    const float inv = 1.0f / warp_sum(l[qi]);
    bf16* o = a.out + (static_cast<size_t>(t) * a.n_heads + h) * D;
#pragma unroll
    for (int e = 0; e < E; ++e) o[lane + 32 * e] = __float2bfloat16(acc[qi][e] * inv);
  }
}

template <int D>
void configure_prefill() {
  GQA_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem_bytes<D>())));
}

template <int D>
void launch_prefill(const Exec& ex, const PrefillAttentionArgs& a) {
  configure_kernels();
  const dim3 grid((a.T + kQTile - 1) / kQTile, a.n_heads), block(kThreads);
  launch(ex, grid, block, smem_bytes<D>(), prefill_kernel<D>, a);
}

}  // namespace

void configure_sampling_kernels();     // sampling.cu
void configure_decode_kernels();       // attention_decode.cu
void configure_prefill_mma_kernels();  // attention_prefill_mma.cu
void configure_gemv_kernels();         // gemv.cu

void configure_kernels() {
  static bool done = false;
  if (done) return;
  configure_prefill<64>();
  configure_prefill<128>();
  configure_prefill_mma_kernels();
  configure_sampling_kernels();
  configure_decode_layer_kernels();
  configure_decode_kernels();
  configure_gemv_kernels();
  done = true;
}

bool attention_prefill_supported(int head_dim) { return head_dim == 64 || head_dim == 128; }

PrefillKernel attention_prefill_kernel(const PrefillAttentionArgs& a) {
  if (a.kernel != PrefillKernel::Auto) return a.kernel;
  return attention_prefill_mma_supported(a.head_dim) ? PrefillKernel::Mma : PrefillKernel::Simt;
}

void attention_prefill(const Exec& ex, const PrefillAttentionArgs& a) {
  if (a.n_kv <= 0 || a.n_heads % a.n_kv != 0) fail_unsupported("attention_prefill: n_heads must be a multiple of n_kv");
  if ((a.q == nullptr) == (a.q_bf16 == nullptr)) fail_unsupported("attention_prefill: exactly one of q, q_bf16");
  if (attention_prefill_kernel(a) == PrefillKernel::Mma) {
    attention_prefill_mma(ex, a);
    return;
  }
  if (a.T <= 0) return;
  if (a.head_dim == 64)
    launch_prefill<64>(ex, a);
  else if (a.head_dim == 128)
    launch_prefill<128>(ex, a);
  else
    fail_unsupported("attention_prefill: head_dim must be 64 or 128");
}

}  // namespace gqa::cuda
