// Latency probe behind the persistent decode step's phases (docs/engine-cuda.md, v8): how long one hand-over
// of a vector between all blocks through tagged {value, tag} words costs when nothing else runs, the floor
// of a phase in that design. scripts/gpu_check.sh builds and runs it with GQA_PROBES=1:
//   nvcc -O2 -gencode=arch=compute_90a,code=sm_90a -o sync_latency tests/engine_cuda/probes/sync_latency.cu
// Each round r: the writer blocks store their share of an n-word vector with tag r (st.relaxed.gpu), then
// every block polls all n words (ld.relaxed.gpu.v2, 4 words per thread per pass) until each carries a tag
// >= r, then a block barrier. One block per SM, 256 threads, like the decode step. Variants: several copies
// of the vector (block b polls copy b % copies), two polls in flight per thread. Also a ping-pong between
// two blocks (one word each way): the round trip through L2 alone.
// H200 (2026-12-02, two machines): ping-pong 0.49 us; 1,024 words from 128 writers 1.18-1.25 / 1.56 us per
// round, 3,072 words 1.97 / 4.48; 8 copies 1.15 (second machine); two polls in flight 2.9 (worse).
#include <cstdio>
#include <cstdlib>

#define CHECK(x)                                                                             \
  do {                                                                                       \
    cudaError_t e_ = (x);                                                                    \
    if (e_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)

using Word = unsigned long long;
__device__ __forceinline__ void st_word(Word* p, Word w) {
  asm volatile("st.relaxed.gpu.global.b64 [%0], %1;" ::"l"(p), "l"(w) : "memory");
}
__device__ __forceinline__ void ld_word2(const Word* p, Word& a, Word& b) {
  asm volatile("ld.relaxed.gpu.global.v2.b64 {%0, %1}, [%2];" : "=l"(a), "=l"(b) : "l"(p) : "memory");
}
__device__ __forceinline__ unsigned long long now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// n words (multiple of 4), written by the first `writers` blocks, n / writers words each, into `copies`
// copies of the vector (n words apart); block b reads copy b % copies (fewer readers per L2 line). staggered:
// each thread keeps two polls in flight, issued `pause` ns apart, instead of one poll per round trip.
__global__ void rounds(Word* buf, int n, int writers, int copies, bool staggered, int R, unsigned pause,
                       unsigned long long* out) {
  const int tid = threadIdx.x;
  unsigned long long t0 = 0;
  for (int r = 1; r <= R; ++r) {
    if (r == 2) t0 = now();  // the first round includes the launch skew
    const int per = n / writers;
    if (static_cast<int>(blockIdx.x) < writers && tid < per)
      for (int c = 0; c < copies; ++c)
        st_word(buf + c * n + blockIdx.x * per + tid, (static_cast<Word>(r) << 32) | static_cast<unsigned>(r * 7 + tid));
    const Word* src = buf + (blockIdx.x % copies) * n;
    auto ready = [&](const Word (&w)[4]) {
      bool ok = true;
      for (int i = 0; i < 4; ++i) ok = ok && static_cast<int>(w[i] >> 32) >= r;
      return ok;
    };
    for (int base = tid * 4; base < n; base += 256 * 4) {
      Word w[4], v[4];
      ld_word2(src + base, w[0], w[1]);
      ld_word2(src + base + 2, w[2], w[3]);
      if (staggered) {  // a second poll leaves `pause` ns after the first; each is re-issued once checked
        if (pause) __nanosleep(pause);
        ld_word2(src + base, v[0], v[1]);
        ld_word2(src + base + 2, v[2], v[3]);
        for (;;) {
          if (ready(w)) break;
          ld_word2(src + base, w[0], w[1]);
          ld_word2(src + base + 2, w[2], w[3]);
          if (ready(v)) break;
          ld_word2(src + base, v[0], v[1]);
          ld_word2(src + base + 2, v[2], v[3]);
        }
        continue;
      }
      for (;;) {
        if (ready(w)) break;
        if (pause) __nanosleep(pause);
        ld_word2(src + base, w[0], w[1]);
        ld_word2(src + base + 2, w[2], w[3]);
      }
    }
    __syncthreads();
  }
  if (tid == 0 && blockIdx.x == 0) out[0] = now() - t0;
}

__global__ void pingpong(Word* buf, int R, unsigned long long* out) {
  if (threadIdx.x != 0 || blockIdx.x > 1) return;
  const int me = blockIdx.x;
  const unsigned long long t0 = now();
  for (int r = 1; r <= R; ++r) {
    if (me == 0) {
      st_word(buf, static_cast<Word>(r) << 32);
      Word a, b;
      do ld_word2(buf + 2, a, b); while (static_cast<int>(a >> 32) < r);
    } else {
      Word a, b;
      do ld_word2(buf, a, b); while (static_cast<int>(a >> 32) < r);
      st_word(buf + 2, static_cast<Word>(r) << 32);
    }
  }
  if (me == 0) out[0] = now() - t0;
}

int main() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  Word* buf;
  unsigned long long* out;
  CHECK(cudaMalloc(&buf, 1 << 20));
  CHECK(cudaMalloc(&out, 8));
  const int R = 2000;
  // 100 KiB of dynamic shared memory: one block per SM.
  CHECK(cudaFuncSetAttribute(rounds, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024));
  std::printf("ping-pong between two blocks: ");
  for (int rep = 0; rep < 3; ++rep) {
    CHECK(cudaMemset(buf, 0, 1 << 20));
    pingpong<<<sms, 32>>>(buf, R, out);
    CHECK(cudaGetLastError());
    unsigned long long t;
    CHECK(cudaMemcpy(&t, out, 8, cudaMemcpyDeviceToHost));
    std::printf("%.3f us ", t / 1e3 / R);
  }
  std::printf("per round trip\n");
  struct Case { int n, writers, copies; bool staggered; unsigned pause; };
  for (Case c : {Case{1024, 128, 1, false, 0}, Case{1024, 128, 1, false, 32}, Case{2048, 128, 1, false, 0},
                 Case{3072, 128, 1, false, 0}, Case{1024, 8, 1, false, 0}, Case{256, 32, 1, false, 0},
                 Case{1024, 128, 2, false, 32}, Case{1024, 128, 4, false, 32}, Case{1024, 128, 8, false, 32},
                 Case{3072, 128, 4, false, 32}, Case{1024, 128, 1, true, 100}, Case{1024, 128, 1, true, 200},
                 Case{1024, 128, 4, true, 100}, Case{3072, 128, 4, true, 100}}) {
    std::printf("all %d blocks read a %d-word vector from %d writer blocks, %d copies%s, pause %u ns: ", sms, c.n,
                c.writers, c.copies, c.staggered ? ", staggered polls" : "", c.pause);
    for (int rep = 0; rep < 3; ++rep) {
      CHECK(cudaMemset(buf, 0, 1 << 20));
      rounds<<<sms, 256, 100 * 1024>>>(buf, c.n, c.writers, c.copies, c.staggered, R, c.pause, out);
      CHECK(cudaGetLastError());
      unsigned long long t;
      CHECK(cudaMemcpy(&t, out, 8, cudaMemcpyDeviceToHost));
      std::printf("%.3f us ", t / 1e3 / (R - 1));
    }
    std::printf("per round\n");
  }
  return 0;
}
