// Latency probe for a clustered decode step (docs/engine-cuda-log.md, v11): what thread-block clusters offer as
// hand-overs between the blocks of a layer, beside the tagged all-block round of the persistent step.
//   nvcc -O2 -gencode=arch=compute_90a,code=sm_90a -o cluster_latency dev/cuda/cluster_latency.cu
// One block per SM (288 threads, ~200 KiB of dynamic shared memory, like the decode step), clusters of S blocks,
// as many clusters as can be resident at once (cudaOccupancyMaxActiveClusters). Cases, each R rounds:
//   barrier  barrier.cluster arrive.release / wait.acquire alone;
//   bcast    each block stores its n / S floats into every block of its cluster (st.shared::cluster), then the
//            cluster barrier: an all-gather of an n-vector inside a cluster;
//   sliced   the hand-over of a clustered step: P partial n-vectors in global memory as tagged words (partial p
//            written by the blocks of cluster p % K, block b its slice b); every block polls its slice of all P
//            partials, sums them, broadcasts the sum into its cluster (bcast), cluster barrier;
//   tagged   the persistent step's round (every block polls all n words, 128 writers), for the same-run baseline.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "probe_check.h"

using Word = unsigned long long;
constexpr int kThreads = 256;  // threads taking part (the 9th warp idles, as the producer does between tiles)

__device__ __forceinline__ unsigned long long now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void st_word(Word* p, Word w) {
  asm volatile("st.relaxed.gpu.global.b64 [%0], %1;" ::"l"(p), "l"(w) : "memory");
}
__device__ __forceinline__ void ld_word2(const Word* p, Word& a, Word& b) {
  asm volatile("ld.relaxed.gpu.global.v2.b64 {%0, %1}, [%2];" : "=l"(a), "=l"(b) : "l"(p) : "memory");
}
__device__ __forceinline__ unsigned rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ unsigned cluster_id() {
  unsigned r;
  asm volatile("mov.u32 %0, %%clusterid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ unsigned n_clusters() {
  unsigned r;
  asm volatile("mov.u32 %0, %%nclusterid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ unsigned map_to(const void* p, unsigned r) {
  unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p)), out;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(out) : "r"(a), "r"(r));
  return out;
}
__device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ void st_cluster(unsigned addr, float v) {
  asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(addr), "f"(v) : "memory");
}

enum Mode { kBarrier = 0, kBcast, kSliced, kTagged };

// One kernel for every case (the same prologue and code shape). x: [2][n] floats in shared memory (rounds
// alternate halves, so a round's stores never overwrite what a slow block still reads of the previous one).
__global__ void __launch_bounds__(288, 1) probe(Word* buf, int mode, int n, int partials, int R,
                                                unsigned long long* out, unsigned pause) {
  extern __shared__ float x[];
  const int tid = threadIdx.x;
  unsigned cs;
  asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(cs));
  const int me = static_cast<int>(rank()), K = static_cast<int>(n_clusters()), k = static_cast<int>(cluster_id());
  const int slice = n / static_cast<int>(cs);
  float sink = 0.f;
  cluster_sync_all();
  unsigned long long t0 = 0;
  for (int r = 1; r <= R; ++r) {
    if (r == 2) t0 = now();
    if (tid < kThreads) {
      float* xr = x + (r & 1) * n;
      if (mode == kBcast) {
        for (int i = tid; i < slice; i += kThreads) {
          const float v = static_cast<float>(r + i);
          for (unsigned b = 0; b < cs; ++b) st_cluster(map_to(xr + me * slice + i, b), v);
        }
      } else if (mode == kSliced) {
        // Write this block's slice of partial k (and of k + K, ... when partials > K).
        for (int p = k; p < partials; p += K)
          for (int i = tid; i < slice; i += kThreads)
            st_word(buf + static_cast<size_t>(p) * n + me * slice + i,
                    (static_cast<Word>(r) << 32) | __float_as_uint(static_cast<float>(i)));
        // Poll this block's slice of every partial: two words per load, all loads of a thread at once.
        for (int i0 = 2 * tid; i0 < slice * partials; i0 += 2 * kThreads) {
          const int p = i0 / slice, i = i0 % slice;
          const Word* src = buf + static_cast<size_t>(p) * n + me * slice + i;
          Word a, b;
          ld_word2(src, a, b);
          while (static_cast<int>(a >> 32) < r || static_cast<int>(b >> 32) < r) {
            if (pause) __nanosleep(pause);
            ld_word2(src, a, b);
          }
          sink += __uint_as_float(static_cast<unsigned>(a)) + __uint_as_float(static_cast<unsigned>(b));
        }
        // The slice's sum (here: each thread's) into every block of the cluster.
        for (int i = tid; i < slice; i += kThreads)
          for (unsigned b = 0; b < cs; ++b) st_cluster(map_to(xr + me * slice + i, b), sink);
      } else if (mode == kTagged) {
        const int writers = 128, per = n / writers;
        const int gb = k * static_cast<int>(cs) + me;
        if (gb < writers && tid < per)
          st_word(buf + gb * per + tid, (static_cast<Word>(r) << 32) | __float_as_uint(static_cast<float>(tid)));
        for (int i0 = 2 * tid; i0 < n; i0 += 2 * kThreads) {
          Word a, b;
          ld_word2(buf + i0, a, b);
          while (static_cast<int>(a >> 32) < r || static_cast<int>(b >> 32) < r) {
            if (pause) __nanosleep(pause);
            ld_word2(buf + i0, a, b);
          }
          sink += __uint_as_float(static_cast<unsigned>(a)) + __uint_as_float(static_cast<unsigned>(b));
        }
        asm volatile("bar.sync 1, 256;" ::: "memory");
      }
    }
    if (mode != kTagged) cluster_sync_all();
  }
  if (tid == 0 && blockIdx.x == 0) out[0] = now() - t0 + (sink > 1e30f ? 1 : 0) + (x[1] > 1e30f ? 1 : 0);
  cluster_sync_all();  // nobody leaves while a peer may still store into its shared memory
}

int main() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  Word* buf;
  unsigned long long* out;
  const size_t buf_bytes = size_t(64) << 20;
  CHECK(cudaMalloc(&buf, buf_bytes));
  CHECK(cudaMalloc(&out, 8));
  const int smem = 200 * 1024;
  CHECK(cudaFuncSetAttribute(probe, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  CHECK(cudaFuncSetAttribute(probe, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  const int R = 2000;
  auto config = [&](int S, int clusters, cudaLaunchConfig_t& lc, cudaLaunchAttribute& attr) {
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = S, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
    lc = cudaLaunchConfig_t{};
    lc.gridDim = dim3(S * clusters), lc.blockDim = dim3(288), lc.dynamicSmemBytes = smem;
    lc.attrs = &attr, lc.numAttrs = 1;
  };
  int resident[17] = {};
  for (int S : {1, 2, 4, 8, 16}) {
    cudaLaunchConfig_t lc;
    cudaLaunchAttribute attr;
    config(S, sms / S, lc, attr);
    CHECK(cudaOccupancyMaxActiveClusters(&resident[S], probe, &lc));
    std::printf("clusters of %2d: %3d resident at once (%3d of %d SMs)\n", S, resident[S], resident[S] * S, sms);
  }
  auto run = [&](int S, int clusters, int mode, int n, int partials, const char* what) {
    cudaLaunchConfig_t lc;
    cudaLaunchAttribute attr;
    config(S, clusters, lc, attr);
    std::printf("S=%2d K=%3d %-58s", S, clusters, what);
    for (int rep = 0; rep < 3; ++rep) {
      CHECK(cudaMemset(buf, 0, buf_bytes));
      CHECK(cudaLaunchKernelEx(&lc, probe, buf, mode, n, partials, R, out, 32u));
      CHECK(cudaGetLastError());
      CHECK(cudaDeviceSynchronize());
      unsigned long long t;
      CHECK(cudaMemcpy(&t, out, 8, cudaMemcpyDeviceToHost));
      std::printf(" %.3f", t / 1e3 / (R - 1));
    }
    std::printf(" us per round\n");
  };
  for (int S : {2, 4, 8, 16}) {
    const int K = resident[S];
    if (K < 1) continue;
    char what[128];
    run(S, K, kBarrier, 1024, 0, "cluster barrier alone");
    std::snprintf(what, sizeof what, "all-gather of 1,024 floats in the cluster + barrier");
    run(S, K, kBcast, 1024, 0, what);
    std::snprintf(what, sizeof what, "all-gather of 3,072 floats in the cluster + barrier");
    run(S, K, kBcast, 3072, 0, what);
    for (int P : {8, K}) {
      std::snprintf(what, sizeof what, "sliced hand-over: %d partials of 1,024 words", P);
      run(S, K, kSliced, 1024, P, what);
    }
  }
  // Same-run baseline: the persistent step's tagged round on all SMs (clusters of 1).
  run(1, sms, kTagged, 1024, 0, "tagged round, 1,024 words, 128 writers, all poll all");
  run(1, sms, kTagged, 2048, 0, "tagged round, 2,048 words, 128 writers, all poll all");
  return 0;
}
