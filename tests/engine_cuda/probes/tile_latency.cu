// Latency probe of the persistent decode step's GEMV tiles (docs/engine-cuda.md, v13): how long the engine's own
// gemv_tiles (decode_step.cuh) takes for one, two or three weight tiles that are already in shared memory, and
// per tile while the ring streams them from DRAM, with the tile shapes of Qwen3-0.6B's phases at 64 KiB tiles.
// scripts/gpu_check.sh builds and runs it with GQA_PROBES=1, once per compute-warp count:
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I src -I include -DGQA_DECODE_CONSUMER_WARPS=8 \
//     -o tile_latency tests/engine_cuda/probes/tile_latency.cu
// One block per SM, the decode step's warps (compute warps and one producer warp issuing the ring's bulk copies).
// "preloaded": the producer fills T <= stages stages, the compute warps wait until all T are full, then time
// gemv_tiles over them (thread 0's %globaltimer and clock64 from the barrier before to the barrier after), 6 reps in
// one launch (the first is not counted). "streamed": 24 tiles per block through the ring from a matrix of
// 24 x 132 tiles, every block at once (the DRAM at full load), time per tile. The results are checked against
// fp64 sums on the host. Every case runs twice: as the engine's ring (the producer copies the next reps' tiles as
// stages free up, i.e. during the timed rep), and quiet (no copy into shared memory while a preloaded rep is
// timed; v14: no difference). H200 (v13): ~1,850 cycles per preloaded 64 KiB tile, ~60% of it the k-loop.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace gqa::cuda {
namespace {
__device__ __forceinline__ void tile_mark(int i);
}
}  // namespace gqa::cuda
#define GQA_TILE_MARK(i) tile_mark(i)
#include "engine/cuda/decode_step.cuh"

#include "probe_check.h"

namespace gqa::cuda {
namespace {

constexpr int kReps = 6;

// Where a tile's cycles go: clock64 of lane 0 of every compute warp at the rep's start (after the barrier) and at
// gemv_tiles' marks (0: the stage acquired, 1: the warp's k-steps done, 2: after the block barrier, 3: the finish
// done), [block][warp][5], the last tile of the last rep.
// Kept in shared memory during the rep (a global store would wait for its address: the marks' own latency).
constexpr int kMarks = 5;
__shared__ long long s_marks[kConsumerWarps][kMarks];
__device__ __forceinline__ void tile_mark(int i) {
  if (threadIdx.x % 32 == 0) s_marks[threadIdx.x / 32][1 + i] = clock64();
}

// times[block][rep][2]: %globaltimer ns and clock64 cycles for the rep's tiles (thread 0, barrier to barrier).
// kPairs: the finish gets both halves, stored where the plain rows would be (gate at row, up at n + row).
template <bool kPairs>
__global__ void __launch_bounds__(kThreads, 1) tile_kernel(const __grid_constant__ PersistentDecodeArgs a,
                                                           const __grid_constant__ Plan p, Mat m, int tiles, int reps,
                                                           const float* x, float* y, unsigned long long* times,
                                                           long long* marks, int quiet) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t bars[2 * kMaxStages];
  __shared__ float gpart[2 * kPartFloats];
  __shared__ float red[kConsumerWarps];
  __shared__ volatile int reps_done;  // quiet: the producer copies rep r's tiles only after rep r - 1 is timed
  Ring ring{smem, bars, bars + kMaxStages, p.stages, p.stage_bytes};
  if (threadIdx.x == 0) {
    reps_done = 0;
    for (int s = 0; s < p.stages; ++s) mbar_init(&ring.full[s], 1), mbar_init(&ring.empty[s], kConsumerWarps);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  // The block's tiles: blockIdx.x, blockIdx.x + G, ... (as block_tiles), `tiles` of them, `reps` times over.
  const Tiles r{static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.x + tiles * gridDim.x),
                static_cast<int>(gridDim.x)};
  if (threadIdx.x / 32 == kConsumerWarps) {  // the producer
    if (threadIdx.x % 32 == 0) {
      Loader ld;
      for (int rep = 0; rep < reps; ++rep) {
        while (quiet && reps_done < rep) __nanosleep(100);
        for (int t = r.first; t < r.end; t += r.step) {
          int s;
          char* dst = free_stage(ring, ld, &s);
          const int row0 = t * m.rows;
          copy_rows(dst, m, row0, min(m.rows, m.n - row0), &ring.full[s]);
          issued_one(ld, ring);
        }
      }
    }
    __syncwarp();
    return;
  }
  float* xs = reinterpret_cast<float*>(smem + static_cast<size_t>(p.stages) * p.stage_bytes);
  Ctx c{a, p, ring, 0, 0, 0, 0, xs, xs, red, gpart, static_cast<int>(threadIdx.x / 32),
        static_cast<int>(threadIdx.x % 32), 0, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  Vec v;
#pragma unroll
  for (int j = 0; j < kVec; ++j)
    if (vec_index(j) < m.k) v.v[j] = *reinterpret_cast<const float4*>(x + vec_index(j));
  store_vec(c, m.k, v);
  const bool preloaded = tiles <= p.stages;
  for (int rep = 0; rep < reps; ++rep) {
    if (preloaded) {  // every tile of the rep in shared memory before the clock starts
      int s = c.slot;
      unsigned parity = c.parity;
      for (int t = 0; t < tiles; ++t) {
        mbar_wait(&ring.full[s], parity);
        if (++s == ring.n) s = 0, parity ^= 1u;
      }
    }
    consumer_sync();
    const unsigned long long t0 = globaltimer();
    const long long c0 = clock64();
    if (threadIdx.x % 32 == 0) s_marks[threadIdx.x / 32][0] = c0;
    if constexpr (kPairs)
      gemv_tiles(c, m, r, [&](int row, int, float g, float u) { y[row] = g, y[m.n + row] = u; });
    else
      gemv_tiles(c, m, r, [&](int row, int, float s) { y[row] = s; });
    consumer_sync();
    const long long c1 = clock64();
    const unsigned long long t1 = globaltimer();
    if (threadIdx.x == 0) {
      reps_done = rep + 1;
      times[(blockIdx.x * reps + rep) * 2] = t1 - t0;
      times[(blockIdx.x * reps + rep) * 2 + 1] = static_cast<unsigned long long>(c1 - c0);
    }
    if (threadIdx.x % 32 == 0)
      for (int i = 0; i < kMarks; ++i)
        marks[(blockIdx.x * kConsumerWarps + threadIdx.x / 32) * kMarks + i] = s_marks[threadIdx.x / 32][i];
  }
}

struct Case {
  const char* name;
  int k, rows;  // rows per tile (pairs: row pairs)
  bool pairs;
};

uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Median over blocks and counted reps of the ns and cycles per tile.
struct Timing {
  double ns, cycles;
  double marks[4][2];  // cycles from the start to mark i: median over blocks of the earliest and latest warp
};
Timing run_case(const Case& cs, int tiles, int sms, int optin, bool quiet) {
  const int halves = cs.pairs ? 2 : 1, n = cs.rows * tiles * sms;
  std::vector<uint16_t> w(static_cast<size_t>(n) * halves * cs.k);
  std::vector<float> x(cs.k);
  uint32_t seed = 12345u + static_cast<uint32_t>(cs.k * 7 + cs.rows);
  auto rnd = [&] { return ((seed = seed * 1664525u + 1013904223u) >> 8) * (1.0f / 16777216.0f) - 0.5f; };
  for (auto& e : w) e = to_bf16(rnd());
  for (auto& e : x) e = rnd();
  bf16* dw;
  float *dx, *dy;
  unsigned long long* dt;
  CHECK(cudaMalloc(&dw, w.size() * 2));
  CHECK(cudaMalloc(&dx, x.size() * 4));
  CHECK(cudaMalloc(&dy, static_cast<size_t>(n) * halves * 4));
  CHECK(cudaMalloc(&dt, static_cast<size_t>(sms) * kReps * 16));
  long long* dm;
  const size_t marks = static_cast<size_t>(sms) * kConsumerWarps * kMarks;
  CHECK(cudaMalloc(&dm, marks * 8));
  CHECK(cudaMemcpy(dw, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemset(dy, 0xff, static_cast<size_t>(n) * halves * 4));  // poisoned: NaN unless written
  Plan p{};
  p.stage_bytes = 64 * 1024 + kStagePadBytes;
  const size_t xs_bytes = (static_cast<size_t>(2) * kTerms * (kMaxInput + kTermPad) + 1023) / 1024 * 1024;
  p.stages = static_cast<int>(std::min<size_t>(3, (optin - xs_bytes - 4096) / p.stage_bytes));
  const size_t smem = static_cast<size_t>(p.stages) * p.stage_bytes + xs_bytes;
  PersistentDecodeArgs a{};
  const Mat m{dw, n, cs.k, cs.rows, cs.pairs};
  const int reps = tiles <= p.stages ? kReps : 2;
  auto kernel = cs.pairs ? tile_kernel<true> : tile_kernel<false>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<sms, kThreads, smem>>>(a, p, m, tiles, reps, dx, dy, dt, dm, quiet && tiles <= p.stages ? 1 : 0);
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  std::vector<float> y(static_cast<size_t>(n) * halves);
  std::vector<unsigned long long> t(static_cast<size_t>(sms) * kReps * 2);
  CHECK(cudaMemcpy(y.data(), dy, y.size() * 4, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(t.data(), dt, static_cast<size_t>(sms) * reps * 16, cudaMemcpyDeviceToHost));
  double worst = 0;
  for (int row = 0; row < n * halves; row += 97) {
    double ref = 0, mag = 0;
    for (int i = 0; i < cs.k; ++i) {
      const double v = static_cast<double>(from_bf16(w[static_cast<size_t>(row) * cs.k + i])) * x[i];
      ref += v, mag += std::fabs(v);
    }
    worst = std::max(worst, std::fabs(y[row] - ref) / (mag + 1e-30));
  }
  if (!(worst < 1e-5)) {
    std::printf("%s: wrong results (worst relative error %.3g)\n", cs.name, worst);
    std::exit(1);
  }
  std::vector<double> ns, cycles;
  for (int b = 0; b < sms; ++b)
    for (int rep = 1; rep < reps; ++rep) {
      ns.push_back(static_cast<double>(t[(b * reps + rep) * 2]) / tiles);
      cycles.push_back(static_cast<double>(t[(b * reps + rep) * 2 + 1]) / tiles);
    }
  std::sort(ns.begin(), ns.end());
  std::sort(cycles.begin(), cycles.end());
  std::vector<long long> mk(marks);
  CHECK(cudaMemcpy(mk.data(), dm, marks * 8, cudaMemcpyDeviceToHost));
  Timing tm{ns[ns.size() / 2], cycles[cycles.size() / 2], {}};
  for (int i = 0; i < 4; ++i)
    for (int hi = 0; hi < 2; ++hi) {
      std::vector<double> per_block;
      for (int b = 0; b < sms; ++b) {
        long long start = LLONG_MAX, lo = LLONG_MAX, high = 0;
        for (int w = 0; w < kConsumerWarps; ++w) {
          const long long* e = &mk[(static_cast<size_t>(b) * kConsumerWarps + w) * kMarks];
          start = std::min(start, e[0]), lo = std::min(lo, e[1 + i]), high = std::max(high, e[1 + i]);
        }
        per_block.push_back(static_cast<double>((hi ? high : lo) - start));
      }
      std::sort(per_block.begin(), per_block.end());
      tm.marks[i][hi] = per_block[per_block.size() / 2];
    }
  CHECK(cudaFree(dm));
  CHECK(cudaFree(dw));
  CHECK(cudaFree(dx));
  CHECK(cudaFree(dy));
  CHECK(cudaFree(dt));
  return tm;
}

}  // namespace
}  // namespace gqa::cuda

int main() {
  using namespace gqa::cuda;
  int device = 0, sms = 0, optin = 0;
  CHECK(cudaGetDevice(&device));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  std::printf("tile latency, %d compute warps, %d SMs (ns per 64 KiB tile: median over blocks and repetitions)\n",
              kConsumerWarps, sms);
  const Case cases[] = {{"qkv  k=1024 32 rows", 1024, 32, false}, {"o    k=2048  8 rows", 2048, 8, false},
                        {"o    k=2048 16 rows", 2048, 16, false}, {"gu   k=1024 16 pairs", 1024, 16, true},
                        {"dn   k=3072  8 rows", 3072, 8, false},  {"dn   k=3072 10 rows", 3072, 10, false}};
  for (const bool quiet : {false, true}) {
    std::printf("%s\n", quiet ? "-- quiet: no bulk copies into shared memory while a preloaded rep is timed"
                               : "-- the producer copies the next reps' tiles as stages free up (as the engine's ring)");
    std::printf("%-22s %16s %16s %16s %16s\n", "tile (ns / cycles)", "1 tile", "2 tiles", "3 tiles", "streamed 24");
    for (const Case& cs : cases) {
      std::printf("%-22s", cs.name);
      for (int tiles : {1, 2, 3, 24}) {
        const Timing tm = run_case(cs, tiles, sms, optin, quiet);
        std::printf(" %7.0f / %6.0f", tm.ns, tm.cycles);
      }
      std::printf("\n");
    }
    std::printf("one tile, cycles from the start to: stage acquired / k-steps done / block barrier / finish done "
                "(earliest-latest warp)\n");
    for (const Case& cs : cases) {
      const Timing tm = run_case(cs, 1, sms, optin, quiet);
      std::printf("%-22s", cs.name);
      for (int i = 0; i < 4; ++i) std::printf("  %5.0f-%5.0f", tm.marks[i][0], tm.marks[i][1]);
      std::printf("\n");
    }
  }
  return 0;
}
