// Sampling on the GPU with the host Sampler's rules (engine/sampler.cpp): greedy argmax (lowest index
// wins ties); temperature over the whole vocabulary by inverse CDF in index order; top-k (k <= 64) by a
// bitonic sort of each 4096-entry slice then of the slices' candidates, with top-p applied to them. The
// uniform draw is the same splitmix64 sequence, so a seed gives the host's tokens on the same logits.
#include <climits>
#include <cmath>

#include "engine/cuda/launch.cuh"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {

constexpr int kSlice = 1024, kSliceThreads = 256;       // argmax and temperature passes
constexpr int kSortSlice = 4096, kSortThreads = 1024;    // top-k passes
constexpr int kMaxSortCandidates = 8192;

struct Scratch {
  float* part_val;
  int* part_idx;
  double* part_sum;
  float* cand_val;
  int* cand_idx;
};

int slices(int vocab) { return (vocab + kSlice - 1) / kSlice; }
int sort_slices(int vocab) { return (vocab + kSortSlice - 1) / kSortSlice; }

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

Scratch carve(void* base, int vocab) {
  char* p = static_cast<char*>(base);
  Scratch s{};
  const size_t b = static_cast<size_t>(slices(vocab)), c = static_cast<size_t>(sort_slices(vocab)) * kMaxDeviceTopK;
  s.part_val = reinterpret_cast<float*>(p), p += align256(b * sizeof(float));
  s.part_idx = reinterpret_cast<int*>(p), p += align256(b * sizeof(int));
  s.part_sum = reinterpret_cast<double*>(p), p += align256(b * sizeof(double));
  s.cand_val = reinterpret_cast<float*>(p), p += align256(c * sizeof(float));
  s.cand_idx = reinterpret_cast<int*>(p);
  return s;
}

__device__ double next_uniform(unsigned long long* state) {
  unsigned long long z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

// Block-wide argmax of (v, i); thread 0 gets the result.
__device__ void block_argmax(float& v, int& i) {
  __shared__ float sv[32];
  __shared__ int si[32];
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) v = ov, i = oi;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sv[warp] = v, si[warp] = i;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
      if (better(sv[w], si[w], v, i)) v = sv[w], i = si[w];
  }
}

__global__ void argmax_partial_kernel(const float* logits, int vocab, Scratch s) {
  griddep_launch_dependents();
  griddep_wait();
  const int beg = blockIdx.x * kSlice, end = min(vocab, beg + kSlice);
  float v = -INFINITY;
  int i = INT_MAX;
  for (int j = beg + threadIdx.x; j < end; j += blockDim.x)
    if (better(logits[j], j, v, i)) v = logits[j], i = j;
  block_argmax(v, i);
  if (threadIdx.x == 0) s.part_val[blockIdx.x] = v, s.part_idx[blockIdx.x] = i;
}

__global__ void argmax_final_kernel(int nb, Scratch s, int32_t* token) {
  griddep_launch_dependents();
  griddep_wait();
  float v = -INFINITY;
  int i = INT_MAX;
  for (int b = threadIdx.x; b < nb; b += blockDim.x)
    if (better(s.part_val[b], s.part_idx[b], v, i)) v = s.part_val[b], i = s.part_idx[b];
  block_argmax(v, i);
  if (threadIdx.x == 0) *token = i == INT_MAX ? 0 : i;  // all-NaN logits: token 0, as the host does
}

__device__ float block_max(float v) {
  __shared__ float red[32];
  v = warp_max(v);
  __syncthreads();
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  v = lane < static_cast<int>(blockDim.x / 32) ? red[lane] : -INFINITY;  // every warp reduces the partials
  return warp_max(v);
}

__device__ double block_sum_double(double v) {
  __shared__ double red[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  v = lane < static_cast<int>(blockDim.x / 32) ? red[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The host computes exp in double of the float difference and keeps the result as float.
__device__ __forceinline__ float weight_of(float scaled, float mx) {
  return static_cast<float>(exp(static_cast<double>(scaled - mx)));
}

__global__ void temp_max_kernel(const float* logits, int vocab, float temperature, Scratch s) {
  griddep_launch_dependents();
  griddep_wait();
  const int beg = blockIdx.x * kSlice, end = min(vocab, beg + kSlice);
  float v = -INFINITY;
  for (int j = beg + threadIdx.x; j < end; j += blockDim.x) v = fmaxf(v, logits[j] / temperature);
  v = block_max(v);
  if (threadIdx.x == 0) s.part_val[blockIdx.x] = v;
}

__global__ void temp_sum_kernel(const float* logits, int vocab, float temperature, int nb, Scratch s) {
  griddep_launch_dependents();
  griddep_wait();
  float mx = -INFINITY;
  for (int b = threadIdx.x; b < nb; b += blockDim.x) mx = fmaxf(mx, s.part_val[b]);
  mx = block_max(mx);
  const int beg = blockIdx.x * kSlice, end = min(vocab, beg + kSlice);
  double sum = 0;
  for (int j = beg + threadIdx.x; j < end; j += blockDim.x) sum += weight_of(logits[j] / temperature, mx);
  sum = block_sum_double(sum);
  if (threadIdx.x == 0) s.part_sum[blockIdx.x] = sum;
}

// One block of kSliceThreads: finds the slice where the draw falls, then the token inside it.
__global__ void temp_pick_kernel(const float* logits, int vocab, float temperature, int nb, Scratch s,
                                 unsigned long long* rng, int32_t* token) {
  __shared__ int sh_block;
  __shared__ double sh_r;
  __shared__ double scan[kSliceThreads];
  griddep_launch_dependents();
  griddep_wait();
  float mx = -INFINITY;
  for (int b = threadIdx.x; b < nb; b += blockDim.x) mx = fmaxf(mx, s.part_val[b]);
  mx = block_max(mx);
  if (threadIdx.x == 0) {
    double total = 0;
    for (int b = 0; b < nb; ++b) total += s.part_sum[b];
    double r = next_uniform(rng) * total;
    int b = 0;
    while (b < nb - 1 && r - s.part_sum[b] >= 0.0) r -= s.part_sum[b++];
    sh_block = b;
    sh_r = r;
  }
  __syncthreads();
  const int beg = sh_block * kSlice, end = min(vocab, beg + kSlice);
  constexpr int per = kSlice / kSliceThreads;
  const int my = beg + threadIdx.x * per;
  float w[per];
  double mine = 0;
#pragma unroll
  for (int e = 0; e < per; ++e) {
    w[e] = my + e < end ? weight_of(logits[my + e] / temperature, mx) : 0.f;
    mine += w[e];
  }
  scan[threadIdx.x] = mine;  // inclusive Hillis-Steele scan
  __syncthreads();
  for (int o = 1; o < kSliceThreads; o <<= 1) {
    const double add = threadIdx.x >= o ? scan[threadIdx.x - o] : 0.0;
    __syncthreads();
    scan[threadIdx.x] += add;
    __syncthreads();
  }
  const double before = threadIdx.x > 0 ? scan[threadIdx.x - 1] : 0.0;
  double r = sh_r - before;
  if (r >= 0.0 && r < mine) {
#pragma unroll
    for (int e = 0; e < per; ++e) {
      r -= w[e];
      if (r < 0.0) {
        *token = my + e;
        return;
      }
    }
    *token = min(my + per, end) - 1;  // the range held the draw but rounding ran past it
    return;
  }
  if (threadIdx.x == 0 && sh_r >= scan[kSliceThreads - 1]) *token = end - 1;  // rounding past the end
}

__device__ __forceinline__ bool before(float av, int ai, float bv, int bi) { return av > bv || (av == bv && ai < bi); }

// Sorts n (a power of two) pairs in shared memory into descending value, ascending index order.
__device__ void bitonic_sort(float* v, int* idx, int n) {
  for (int k = 2; k <= n; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int p = i ^ j;
        if (p > i) {
          const bool up = (i & k) == 0;
          const bool swap = up ? before(v[p], idx[p], v[i], idx[i]) : before(v[i], idx[i], v[p], idx[p]);
          if (swap) {
            const float tv = v[i];
            v[i] = v[p], v[p] = tv;
            const int ti = idx[i];
            idx[i] = idx[p], idx[p] = ti;
          }
        }
      }
      __syncthreads();
    }
  }
}

__global__ void __launch_bounds__(kSortThreads) topk_partial_kernel(const float* logits, int vocab, float temperature,
                                                                    int k, Scratch s) {
  __shared__ float v[kSortSlice];
  __shared__ int idx[kSortSlice];
  griddep_launch_dependents();
  griddep_wait();
  const int beg = blockIdx.x * kSortSlice;
  for (int i = threadIdx.x; i < kSortSlice; i += blockDim.x) {
    const int j = beg + i;
    v[i] = j < vocab ? logits[j] / temperature : -INFINITY;
    idx[i] = j < vocab ? j : INT_MAX;
  }
  __syncthreads();
  bitonic_sort(v, idx, kSortSlice);
  for (int i = threadIdx.x; i < kMaxDeviceTopK; i += blockDim.x) {
    s.cand_val[blockIdx.x * kMaxDeviceTopK + i] = i < k ? v[i] : -INFINITY;
    s.cand_idx[blockIdx.x * kMaxDeviceTopK + i] = i < k ? idx[i] : INT_MAX;
  }
}

__global__ void __launch_bounds__(kSortThreads) topk_final_kernel(int n_cand, int n_pow2, int k, float top_p, Scratch s,
                                                                  unsigned long long* rng, int32_t* token) {
  extern __shared__ float4 smem4[];
  float* v = reinterpret_cast<float*>(smem4);
  int* idx = reinterpret_cast<int*>(v + n_pow2);
  griddep_launch_dependents();
  griddep_wait();
  for (int i = threadIdx.x; i < n_pow2; i += blockDim.x) {
    v[i] = i < n_cand ? s.cand_val[i] : -INFINITY;
    idx[i] = i < n_cand ? s.cand_idx[i] : INT_MAX;
  }
  __syncthreads();
  bitonic_sort(v, idx, n_pow2);
  if (threadIdx.x != 0) return;
  // From here the host's arithmetic, on at most 64 candidates.
  const float mx = v[0];
  double total = 0;
  for (int i = 0; i < k; ++i) {
    v[i] = weight_of(v[i], mx);
    total += v[i];
  }
  int n = k;
  if (top_p < 1.0f) {
    double acc = 0;
    int keep = 0;
    while (keep < n) {
      acc += v[keep++] / total;
      if (acc >= top_p) break;
    }
    n = keep;
    total = 0;
    for (int i = 0; i < n; ++i) total += v[i];
  }
  double r = next_uniform(rng) * total;
  for (int i = 0; i < n; ++i) {
    r -= v[i];
    if (r < 0.0) {
      *token = idx[i];
      return;
    }
  }
  *token = idx[n - 1];
}

int next_pow2(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

void configure_sampling_kernels() {
  GQA_CUDA_CHECK(cudaFuncSetAttribute(topk_final_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(kMaxSortCandidates * (sizeof(float) + sizeof(int)))));
}

size_t sample_scratch_bytes(int vocab) {
  const size_t b = static_cast<size_t>(slices(vocab)), c = static_cast<size_t>(sort_slices(vocab)) * kMaxDeviceTopK;
  return align256(b * sizeof(float)) + align256(b * sizeof(int)) + align256(b * sizeof(double)) +
         align256(c * sizeof(float)) + align256(c * sizeof(int));
}

bool device_sampling_supported(float temperature, int top_k, float top_p) {
  if (temperature == 0.0f) return true;
  if (top_k == 0) return top_p >= 1.0f;
  return top_k >= 1 && top_k <= kMaxDeviceTopK;
}

void sample(const Exec& ex, const SampleArgs& a) {
  if (!device_sampling_supported(a.temperature, a.top_k, a.top_p))
    fail_unsupported("sample: these sampling parameters are not implemented on the device");
  const Scratch s = carve(a.scratch, a.vocab);
  const int nb = slices(a.vocab);
  if (a.temperature == 0.0f) {
    launch(ex, dim3(nb), dim3(kSliceThreads), 0, argmax_partial_kernel, a.logits, a.vocab, s);
    launch(ex, dim3(1), dim3(kSliceThreads), 0, argmax_final_kernel, nb, s, a.token);
  } else if (a.top_k == 0) {
    launch(ex, dim3(nb), dim3(kSliceThreads), 0, temp_max_kernel, a.logits, a.vocab, a.temperature, s);
    launch(ex, dim3(nb), dim3(kSliceThreads), 0, temp_sum_kernel, a.logits, a.vocab, a.temperature, nb, s);
    launch(ex, dim3(1), dim3(kSliceThreads), 0, temp_pick_kernel, a.logits, a.vocab, a.temperature, nb, s,
           a.rng_state, a.token);
  } else {
    const int ns = sort_slices(a.vocab), n_cand = ns * kMaxDeviceTopK, n_pow2 = next_pow2(n_cand);
    if (n_pow2 > kMaxSortCandidates) fail_unsupported("sample: vocabulary too large for device top-k");
    const int k = a.top_k < a.vocab ? a.top_k : a.vocab;
    launch(ex, dim3(ns), dim3(kSortThreads), 0, topk_partial_kernel, a.logits, a.vocab, a.temperature, k, s);
    const size_t smem = static_cast<size_t>(n_pow2) * (sizeof(float) + sizeof(int));
    configure_kernels();
    launch(ex, dim3(1), dim3(kSortThreads), smem, topk_final_kernel, n_cand, n_pow2, k, a.top_p, s, a.rng_state,
           a.token);
  }
}

}  // namespace gqa::cuda
