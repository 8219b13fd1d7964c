// Latency probe behind the persistent decode step's phases (docs/engine-cuda-log.md, v8 and v9): how long one
// hand-over of a vector between all blocks through tagged {value, tag} words costs, the floor of a phase in
// that design, alone and beside the weight streaming. `scripts/gpu.sh probes sync_latency` builds and runs it:
//   nvcc -O2 -gencode=arch=compute_90a,code=sm_90a -o sync_latency dev/cuda/sync_latency.cu
// Each round r: the writer blocks store their share of an n-word vector with tag r (st.relaxed.gpu), then
// every block polls all n words (ld.relaxed.gpu.v2, 4 words per thread per pass) until each carries a tag
// >= r, then a block barrier. One block per SM, 256 threads, like the decode step. Variants: several copies
// of the vector (block b polls copy b % copies), two polls in flight per thread; a ping-pong between two
// blocks (one word each way): the round trip through L2 alone. v9: a producer warp per block streaming bulk
// copies from a 1 GiB buffer meanwhile (continuously, paced, in bursts per round, with the evict-first hint,
// in other blocks only); the plain rounds launched in clusters; pairs of blocks (clusters of two) in which
// one block streams for the other or both exchange halves of the vector through distributed shared memory.
// H200 (2026-12-02): ping-pong 0.49 us; 1,024 words from 128 writers 1.18-1.64 us per round depending on
// the machine, +0.4 us per TB/s of background streaming up to ~2.4 TB/s, 8.9 us at 4 TB/s; 66 blocks
// (every other SM, one per pair) 0.72 us; both blocks of 66 pairs (132 pollers) 1.03 us; the same rounds in
// plain_both (no clusters) 1.0-1.09 us, and 1.04 us with every feature of rounds() added: rounds() itself pays
// ~0.6 us more for the same hand-over: its polled values are unused, so ptxas loads the 4-byte tags only
// (ll_like: the decode step's ll_read poll, 2.33 us with the values unused, 1.25 us used; docs/engine-cuda-log.md, v9).
// v10 (reduce_rounds): the same hand-over as a sum, each writer adding to every word with red.add.u64 (count
// and fixed-point value in one word): 4.3 us per round with 132 or 66 writers, 2.1 us with 8, 5.8 us with every
// block streaming; ~3 us more than the tagged round (docs/engine-cuda-log.md, v10).
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "probe_check.h"

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

// ---- Background weight streaming, as the decode step's producer warp does it: bulk copies (TMA) of 2 KiB
// rows into a ring of three shared-memory stages, from a buffer larger than L2.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  unsigned done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
constexpr int kStages = 3, kRowBytes = 2048;
struct Stream {
  const char* src;       // the buffer streamed
  size_t bytes;          // its size (a multiple of the chunk)
  int mode;              // kNoStream, kStreamAll, kStreamOthers, kStreamChain, kBurstAtStart, kBurstAfterPoll
  int chain_blocks;      // blocks taking part in the rounds (kStreamOthers: only the others stream;
                         // kStreamChain: only these)
  int chunk_bytes;       // bytes per stage (and per burst)
  int pace_cpk;          // > 0: at most 1 KiB per pace_cpk SM cycles (token bucket of 16 KiB), each row paced
  bool evict_first;      // the copies carry L2's evict-first hint
  const int* done;       // set by block 0 after its last round
  unsigned long long* streamed;  // bytes streamed, all blocks
};
enum { kNoStream = 0, kStreamAll, kStreamOthers, kStreamChain, kBurstAtStart, kBurstAfterPoll };
// The producer (lane 0 of warp 8): continuous (a stage re-issued as soon as its copy completed) or one chunk
// per trigger of the round's thread 0 (bursts, the decode step's pattern: a tile issued when one is consumed).
__device__ void stream_loop(const Stream& st, char* stages, uint64_t* full, volatile int* trig) {
  unsigned issued = 0;
  int bursts = 0;
  long long next = 0;
  uint64_t policy = 0;
  if (st.evict_first) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  size_t chunk = blockIdx.x;
  const size_t chunks = st.bytes / st.chunk_bytes;
  for (;;) {
    if (*const_cast<volatile const int*>(st.done)) break;
    if (st.mode == kBurstAtStart || st.mode == kBurstAfterPoll) {
      if (*trig <= bursts) {
        __nanosleep(32);
        continue;
      }
      ++bursts;
    }
    const int s = static_cast<int>(issued % kStages);
    if (issued >= kStages) mbar_wait(&full[s], ((issued / kStages) - 1) & 1);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(&full[s])),
                 "r"(st.chunk_bytes)
                 : "memory");
    const char* src = st.src + (chunk % chunks) * st.chunk_bytes;
    for (int r = 0; r < st.chunk_bytes / kRowBytes; ++r) {
      if (st.pace_cpk > 0) {
        const long long burst = 16LL * st.pace_cpk;
        long long t = clock64();
        while (next - burst > t) {
          __nanosleep(32);
          t = clock64();
        }
        next = (next > t ? next : t) + static_cast<long long>(kRowBytes) * st.pace_cpk / 1024;
      }
      const unsigned dst = smem_addr(stages + static_cast<size_t>(s) * st.chunk_bytes + r * kRowBytes);
      if (policy)
        asm volatile(
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], "
            "%4;" ::"r"(dst),
            "l"(src + r * kRowBytes), "r"(kRowBytes), "r"(smem_addr(&full[s])), "l"(policy)
            : "memory");
      else
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                         dst),
                     "l"(src + r * kRowBytes), "r"(kRowBytes), "r"(smem_addr(&full[s]))
                     : "memory");
    }
    chunk += gridDim.x, ++issued;
  }
  for (unsigned u = issued > kStages ? issued - kStages : 0; u < issued; ++u)  // drain the copies in flight
    mbar_wait(&full[u % kStages], (u / kStages) & 1);
  atomicAdd(st.streamed, static_cast<unsigned long long>(issued) * st.chunk_bytes);
}

// Thread 0 readies a block's streaming ring: the burst trigger cleared, the stages' barriers initialised.
__device__ __forceinline__ void init_stream_ring(uint64_t* full, int* trig) {
  if (threadIdx.x != 0) return;
  *trig = 0;
  for (int s = 0; s < kStages; ++s)
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(&full[s])) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// n words (multiple of 4), written by the first `writers` blocks, n / writers words each, into `copies`
// copies of the vector (n words apart); block b reads copy b % copies (fewer readers per L2 line). staggered:
// each thread keeps two polls in flight, issued `pause` ns apart, instead of one poll per round trip.
// Blocks have 288 threads: 256 take part in the rounds, warp 8 streams (Stream::mode) or idles.
__global__ void rounds(Word* buf, int n, int writers, int copies, bool staggered, int R, unsigned pause,
                       unsigned long long* out, Stream st) {
  extern __shared__ __align__(1024) char stages[];
  __shared__ uint64_t full[kStages];
  __shared__ int trig;
  const int tid = threadIdx.x;
  init_stream_ring(full, &trig);
  __syncthreads();
  if (tid >= 256) {
    const bool chain = static_cast<int>(blockIdx.x) < st.chain_blocks;
    const bool streams = st.mode == kStreamOthers ? !chain : st.mode == kStreamChain ? chain : st.mode != kNoStream;
    if (tid == 256 && streams) stream_loop(st, stages, full, &trig);
    return;
  }
  if (static_cast<int>(blockIdx.x) >= st.chain_blocks) return;
  unsigned long long t0 = 0;
  for (int r = 1; r <= R; ++r) {
    if (r == 2) t0 = now();  // the first round includes the launch skew
    if (st.mode == kBurstAtStart && tid == 0) atomicAdd(&trig, 1);
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
    asm volatile("bar.sync 1, 256;" ::: "memory");
    if (st.mode == kBurstAfterPoll && tid == 0) atomicAdd(&trig, 1);
  }
  if (tid == 0 && blockIdx.x == 0) {
    out[0] = now() - t0;
    *const_cast<volatile int*>(st.done) = 1;
  }
}


// ---- Which side of an SM's own loads slows its polls: the requests it issues, or the data it receives?
// Clusters of two blocks: block 1 of each cluster takes part in the rounds, block 0 does not. Modes: no
// streaming; block 0 streams into its own shared memory (other SMs load); block 1 streams into its own (the
// polling SM issues and receives); block 0 streams into block 1's shared memory (bulk copies to a
// shared::cluster address, completing block 1's mbarrier; block 1's producer lane hands each stage back
// through an mbarrier in block 0): the polling SM receives the data but issues no load.
// kPairBoth: both blocks of every pair take part (132 pollers, like the plain rounds); kPairExchange: both take
// part, each polls half of the vector in L2 and copies it, tagged, into the other's shared memory, where the
// other polls it (half the L2 polls per line).
enum { kPairNone = 0, kPairLocalOther, kPairLocalSelf, kPairRemote, kPairBoth, kPairExchange };
__device__ __forceinline__ unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ unsigned cluster_index() {
  unsigned r;
  asm volatile("mov.u32 %0, %%clusterid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ unsigned clusters() {
  unsigned r;
  asm volatile("mov.u32 %0, %%nclusterid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ unsigned map_to(unsigned addr, unsigned rank) {
  unsigned r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(addr), "r"(rank));
  return r;
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// Block 0's producer lane: the stream of stream_loop, into block 1's stages.
__device__ void remote_loader(const Stream& st, char* stages, uint64_t* full, uint64_t* empty, int* limit) {
  const unsigned peer_full = map_to(smem_addr(full), 1), peer_stages = map_to(smem_addr(stages), 1);
  const size_t chunks = st.bytes / st.chunk_bytes;
  size_t chunk = cluster_index();
  unsigned issued = 0;
  while (!*const_cast<volatile const int*>(st.done)) {
    const int s = static_cast<int>(issued % kStages);
    if (issued >= kStages) mbar_wait(&empty[s], ((issued / kStages) - 1) & 1);
    asm volatile("mbarrier.arrive.expect_tx.release.cluster.shared::cluster.b64 _, [%0], %1;" ::"r"(peer_full + 8 * s),
                 "r"(st.chunk_bytes)
                 : "memory");
    const char* src = st.src + (chunk % chunks) * st.chunk_bytes;
    for (int r = 0; r < st.chunk_bytes / kRowBytes; ++r)
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                       peer_stages + s * st.chunk_bytes + r * kRowBytes),
                   "l"(src + r * kRowBytes), "r"(kRowBytes), "r"(peer_full + 8 * s)
                   : "memory");
    chunk += clusters(), ++issued;
  }
  asm volatile("st.release.cluster.shared::cluster.u32 [%0], %1;" ::"r"(map_to(smem_addr(limit), 1)), "r"(issued)
               : "memory");
  atomicAdd(st.streamed, static_cast<unsigned long long>(issued) * st.chunk_bytes);
}
// Block 1's producer lane in kPairRemote: waits for each stage block 0 filled and hands it back.
__device__ void remote_waiter(uint64_t* full, uint64_t* empty, volatile int* limit) {
  const unsigned peer_empty = map_to(smem_addr(empty), 0);
  for (unsigned seen = 0; static_cast<int>(seen) < *limit;) {
    const int s = static_cast<int>(seen % kStages);
    unsigned done = 0;
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
        : "=r"(done)
        : "r"(smem_addr(&full[s])), "r"((seen / kStages) & 1)
        : "memory");
    if (!done) continue;
    asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];" ::"r"(peer_empty + 8 * s) : "memory");
    ++seen;
  }
}
__global__ void __cluster_dims__(2, 1, 1) paired_rounds(Word* buf, int R, unsigned long long* out, Stream st, int mode) {
  extern __shared__ __align__(1024) char stages[];
  __shared__ uint64_t full[kStages], empty[kStages];
  __shared__ int trig, limit;
  const int tid = threadIdx.x;
  const bool polls = cluster_rank() == 1;
  for (int i = tid; i < 1024; i += blockDim.x) reinterpret_cast<Word*>(stages)[i] = 0;  // kPairExchange's mirror
  if (tid == 0) {
    trig = 0, limit = 0x7fffffff;
    for (int s = 0; s < kStages; ++s) {
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(&full[s])) : "memory");
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(&empty[s])) : "memory");
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  cluster_sync();  // the peer's barriers are initialised before anyone uses them
  if (tid >= 256) {
    if (tid == 256) {
      if (mode == kPairRemote)
        polls ? remote_waiter(full, empty, &limit) : remote_loader(st, stages, full, empty, &limit);
      else if ((mode == kPairLocalOther && !polls) || (mode == kPairLocalSelf && polls))
        stream_loop(st, stages, full, &trig);
    }
    __syncwarp();
  } else if (mode == kPairBoth || mode == kPairExchange) {
    const int n = 1024, writers = 128, per = n / writers;
    const int me = static_cast<int>(cluster_index() * 2 + cluster_rank()), half = n / 2;
    const int rank = static_cast<int>(cluster_rank());
    Word* mirror = reinterpret_cast<Word*>(stages);  // the other block's half, as it copies it here
    const unsigned peer_mirror = map_to(smem_addr(mirror), rank ^ 1);
    unsigned long long t0 = 0;
    for (int r = 1; r <= R; ++r) {
      if (r == 2) t0 = now();
      if (me < writers && tid < per) st_word(buf + me * per + tid, (static_cast<Word>(r) << 32) | static_cast<unsigned>(tid));
      auto ok4 = [&](const Word (&w)[4]) {
        bool ok = true;
        for (int i = 0; i < 4; ++i) ok = ok && static_cast<int>(w[i] >> 32) >= r;
        return ok;
      };
      if (mode == kPairBoth) {
        for (int base = tid * 4; base < n; base += 256 * 4) {
          Word w[4];
          for (;;) {
            ld_word2(buf + base, w[0], w[1]);
            ld_word2(buf + base + 2, w[2], w[3]);
            if (ok4(w)) break;
            __nanosleep(32);
          }
        }
      } else {
        const int mine = rank * half + tid * 2, theirs = (rank ^ 1) * half + tid * 2;  // 2 words per thread each
        Word w[4];
        for (;;) {
          ld_word2(buf + mine, w[0], w[1]);
          w[2] = w[0], w[3] = w[1];
          if (ok4(w)) break;
          __nanosleep(32);
        }
        asm volatile("st.shared::cluster.v2.b64 [%0], {%1, %2};" ::"r"(peer_mirror + 8 * mine), "l"(w[0]), "l"(w[1])
                     : "memory");
        for (;;) {
          asm volatile("ld.volatile.shared.v2.b64 {%0, %1}, [%2];" : "=l"(w[0]), "=l"(w[1]) : "r"(smem_addr(mirror + theirs))
                       : "memory");
          w[2] = w[0], w[3] = w[1];
          if (ok4(w)) break;
        }
      }
      asm volatile("bar.sync 1, 256;" ::: "memory");
    }
    if (tid == 0 && me == 0) {
      out[0] = now() - t0;
      *const_cast<volatile int*>(st.done) = 1;
    }
  } else if (polls) {
    const int n = 1024, writers = clusters() >= 64 ? 64 : 32, per = n / writers, me = static_cast<int>(cluster_index());
    unsigned long long t0 = 0;
    for (int r = 1; r <= R; ++r) {
      if (r == 2) t0 = now();
      if (me < writers && tid < per) st_word(buf + me * per + tid, (static_cast<Word>(r) << 32) | static_cast<unsigned>(tid));
      for (int base = tid * 4; base < n; base += 256 * 4) {
        Word w[4];
        for (;;) {
          ld_word2(buf + base, w[0], w[1]);
          ld_word2(buf + base + 2, w[2], w[3]);
          bool ok = true;
          for (int i = 0; i < 4; ++i) ok = ok && static_cast<int>(w[i] >> 32) >= r;
          if (ok) break;
          __nanosleep(32);
        }
      }
      asm volatile("bar.sync 1, 256;" ::: "memory");
    }
    if (tid == 0 && me == 0) {
      out[0] = now() - t0;
      *const_cast<volatile int*>(st.done) = 1;
    }
  }
  cluster_sync();  // no block leaves while copies into it, or arrivals on it, may be in flight
}

// paired_rounds' kPairBoth rounds without clusters, and what the plain rounds kernel does differently:
// LoadFirst: the first poll issued before the loop (check, pause, reload), as rounds() and the decode step's
// ll_read do; RuntimeN: the vector's length and writers as arguments; Prologue: rounds()' mbarrier
// initialisation and block barrier first; Extras: rounds()' per-round checks of the stream mode (and its
// shared counter); Copies: rounds()' copies of the vector (one here: the loop over them and the offset);
// Stagger: its branch for two polls in flight (not taken). (Is the gap between the plain and the paired
// rounds the launch or the code?)
// RegPause: the 32 ns pause taken from an argument (a register operand of nanosleep), as rounds() does.
template <bool LoadFirst, bool RuntimeN, bool Prologue = false, bool Extras = false, bool Copies = false,
          bool Stagger = false, bool RegPause = false>
__global__ void plain_both(Word* buf, int R, unsigned long long* out, int* done, int n_arg, int writers_arg,
                           Stream st, int copies, bool staggered, unsigned pause) {
  extern __shared__ __align__(1024) char stages[];
  __shared__ uint64_t full[kStages];
  __shared__ int trig;
  const int n = RuntimeN ? n_arg : 1024, writers = RuntimeN ? writers_arg : 128;
  const int tid = threadIdx.x, per = n / writers, me = static_cast<int>(blockIdx.x);
  if (Prologue) {
    init_stream_ring(full, &trig);
    __syncthreads();
  }
  if (tid >= 256) {
    if (Extras && tid == 256 && st.mode != kNoStream) stream_loop(st, stages, full, &trig);
    return;
  }
  unsigned long long t0 = 0;
  for (int r = 1; r <= R; ++r) {
    if (r == 2) t0 = now();
    if (Extras && st.mode == kBurstAtStart && tid == 0) atomicAdd(&trig, 1);
    if (me < writers && tid < per) {
      if (Copies)
        for (int c = 0; c < copies; ++c)
          st_word(buf + c * n + me * per + tid, (static_cast<Word>(r) << 32) | static_cast<unsigned>(r * 7 + tid));
      else
        st_word(buf + me * per + tid, (static_cast<Word>(r) << 32) | static_cast<unsigned>(tid));
    }
    const Word* src = Copies ? buf + (me % copies) * n : buf;
    auto ok4 = [&](const Word (&w)[4]) {
      bool ok = true;
      for (int i = 0; i < 4; ++i) ok = ok && static_cast<int>(w[i] >> 32) >= r;
      return ok;
    };
    for (int base = tid * 4; base < n; base += 256 * 4) {
      Word w[4], v[4];
      if (Stagger && staggered) {  // never taken here (staggered is false): only its code is present
        ld_word2(src + base, w[0], w[1]);
        ld_word2(src + base + 2, w[2], w[3]);
        __nanosleep(100);
        ld_word2(src + base, v[0], v[1]);
        ld_word2(src + base + 2, v[2], v[3]);
        for (;;) {
          if (ok4(w)) break;
          ld_word2(src + base, w[0], w[1]);
          ld_word2(src + base + 2, w[2], w[3]);
          if (ok4(v)) break;
          ld_word2(src + base, v[0], v[1]);
          ld_word2(src + base + 2, v[2], v[3]);
        }
        continue;
      }
      if (LoadFirst) {
        ld_word2(src + base, w[0], w[1]);
        ld_word2(src + base + 2, w[2], w[3]);
        for (;;) {
          if (ok4(w)) break;
          if (RegPause)
            __nanosleep(pause);
          else
            __nanosleep(32);
          ld_word2(src + base, w[0], w[1]);
          ld_word2(src + base + 2, w[2], w[3]);
        }
      } else {
        for (;;) {
          ld_word2(src + base, w[0], w[1]);
          ld_word2(src + base + 2, w[2], w[3]);
          if (ok4(w)) break;
          if (RegPause)
            __nanosleep(pause);
          else
            __nanosleep(32);
        }
      }
    }
    asm volatile("bar.sync 1, 256;" ::: "memory");
    if (Extras && st.mode == kBurstAfterPoll && tid == 0) atomicAdd(&trig, 1);
  }
  if (tid == 0 && me == 0) {
    out[0] = now() - t0;
    *const_cast<volatile int*>(done) = 1;
  }
}

// The decode step's own poll (ll_read in decode_persistent.cu) in the same 1,024-word round: 4 words per
// float4 group, kVec = 3 groups per thread (those past n unused), all loaded at once, then re-polled group by
// group after a pause taken from an argument; UseValues: the values are used afterwards (as in the engine;
// otherwise ptxas may load the tags only). Tags are compared with >= r: a writer may start round r + 1 before a
// slow reader has seen all of round r.
template <bool UseValues>
__global__ void ll_like(Word* buf, int R, unsigned long long* out, int* done, int n, int writers, unsigned pause) {
  constexpr int kVec = 3;
  __shared__ float sink[256];
  const int tid = threadIdx.x, per = n / writers, me = static_cast<int>(blockIdx.x);
  if (tid >= 256) return;
  unsigned long long t0 = 0;
  for (int r = 1; r <= R; ++r) {
    if (r == 2) t0 = now();
    if (me < writers && tid < per)
      st_word(buf + me * per + tid, (static_cast<Word>(r) << 32) | __float_as_uint(static_cast<float>(tid)));
    Word w[kVec][4];
    auto index = [&](int j) { return (tid + j * 256) * 4; };
    auto load = [&](int j) {
      ld_word2(buf + index(j), w[j][0], w[j][1]);
      ld_word2(buf + index(j) + 2, w[j][2], w[j][3]);
    };
    auto ready = [&](int j) {
      if (index(j) >= n) return true;
      bool ok = true;
      for (int i = 0; i < 4; ++i) ok = ok && static_cast<int>(w[j][i] >> 32) >= r;
      return ok;
    };
#pragma unroll
    for (int j = 0; j < kVec; ++j)
      if (index(j) < n) load(j);
    for (;;) {
      bool ok = true;
#pragma unroll
      for (int j = 0; j < kVec; ++j) ok = ok && ready(j);
      if (ok) break;
      if (pause) __nanosleep(pause);
#pragma unroll
      for (int j = 0; j < kVec; ++j)
        if (!ready(j)) load(j);
    }
    if (UseValues) {
      float v = 0.f;
#pragma unroll
      for (int j = 0; j < kVec; ++j)
        if (index(j) < n)
          for (int i = 0; i < 4; ++i) v += __uint_as_float(static_cast<unsigned>(w[j][i]));
      sink[tid] = v;
    }
    asm volatile("bar.sync 1, 256;" ::: "memory");
  }
  if (tid == 0 && me == 0) {
    out[0] = now() - t0 + (UseValues ? static_cast<unsigned long long>(sink[1] > 1e30f) : 0);
    *const_cast<volatile int*>(done) = 1;
  }
}

// v10: a hand-over by reduction instead of tagged stores. Each round the `writers` blocks each add a
// contribution to every one of n words (red.add.u64: a count of 1 in the top 8 bits, a fixed-point value
// in the rest), and every block polls all n words until each counts `writers` contributions. This is what a
// split-K GEMV (gate/up fused with down) would need: one partial vector per block, summed in L2. A ring of
// four buffers: block b clears its share of the buffer two rounds ahead (every block has finished polling it).
// spread: word i lives at i * spread (1: packed; 4: one word per 32-byte sector, fewer adds per L2 line).
__global__ void reduce_rounds(Word* buf, int n, int writers, int R, unsigned pause, int spread, unsigned long long* out,
                              Stream st) {
  extern __shared__ __align__(1024) char stages[];
  __shared__ uint64_t full[kStages];
  __shared__ int trig;
  __shared__ float sink[256];
  const int tid = threadIdx.x, me = static_cast<int>(blockIdx.x);
  init_stream_ring(full, &trig);
  __syncthreads();
  if (tid >= 256) {
    if (tid == 256 && st.mode == kStreamAll) stream_loop(st, stages, full, &trig);
    return;
  }
  const size_t stride = static_cast<size_t>(n) * spread;
  const Word expect = static_cast<Word>(writers) << 56;
  unsigned long long t0 = 0;
  float acc = 0.f;
  for (int r = 1; r <= R; ++r) {
    if (r == 2) t0 = now();
    Word* cur = buf + (r % 4) * stride;
    Word* ahead = buf + ((r + 2) % 4) * stride;
    for (int i = me * 256 + tid; i < n; i += gridDim.x * 256) ahead[static_cast<size_t>(i) * spread] = 0;
    if (me < writers)
      for (int i = tid; i < n; i += 256) {
        const long long v = static_cast<long long>((me + i) % 7 - 3) << 20;
        asm volatile("red.relaxed.gpu.global.add.u64 [%0], %1;" ::"l"(cur + static_cast<size_t>(i) * spread),
                     "l"((Word(1) << 56) + static_cast<Word>(v))
                     : "memory");
      }
    for (int base = tid * 4; base < n; base += 256 * 4) {
      Word w[4];
      auto load = [&] {
        if (spread == 1) {
          ld_word2(cur + base, w[0], w[1]);
          ld_word2(cur + base + 2, w[2], w[3]);
        } else {
          for (int k = 0; k < 4; ++k) {
            Word x;
            ld_word2(cur + static_cast<size_t>(base + k) * spread, w[k], x);
          }
        }
      };
      auto ready = [&] {
        bool ok = true;
        for (int k = 0; k < 4; ++k) {
          const long long d = static_cast<long long>(w[k] - expect);
          ok = ok && d > -(1LL << 55) && d < (1LL << 55);
        }
        return ok;
      };
      load();
      while (!ready()) {
        if (pause) __nanosleep(pause);
        load();
      }
      for (int k = 0; k < 4; ++k) acc += static_cast<float>(static_cast<long long>(w[k] - expect));
    }
    sink[tid] = acc;
    asm volatile("bar.sync 1, 256;" ::: "memory");
  }
  if (tid == 0 && me == 0) {
    out[0] = now() - t0 + static_cast<unsigned long long>(sink[1] > 1e30f);
    *const_cast<volatile int*>(st.done) = 1;
  }
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
  // 3 stages of 64 KiB (the streaming ring): one block per SM.
  const int smem = kStages * 64 * 1024;
  CHECK(cudaFuncSetAttribute(rounds, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  Stream st{};
  const size_t stream_bytes = size_t(1) << 30;  // 1 GiB, far larger than L2
  char* big;
  int* done;
  unsigned long long* streamed;
  CHECK(cudaMalloc(&big, stream_bytes));
  CHECK(cudaMemset(big, 1, stream_bytes));
  CHECK(cudaMalloc(&done, 4));
  CHECK(cudaMalloc(&streamed, 8));
  st.src = big, st.bytes = stream_bytes, st.done = done, st.streamed = streamed, st.chunk_bytes = 64 * 1024;
  st.chain_blocks = sms;
  // Three launches of one case: memory cleared, `launch()`, the time per round (`timed` rounds) and, with
  // `rate`, the background stream's rate.
  auto measure = [&](auto&& launch, int timed, bool rate, const char* unit) {
    for (int rep = 0; rep < 3; ++rep) {
      CHECK(cudaMemset(buf, 0, 1 << 20));
      CHECK(cudaMemset(done, 0, 4));
      CHECK(cudaMemset(streamed, 0, 8));
      launch();
      CHECK(cudaGetLastError());
      unsigned long long t, b;
      CHECK(cudaMemcpy(&t, out, 8, cudaMemcpyDeviceToHost));
      CHECK(cudaMemcpy(&b, streamed, 8, cudaMemcpyDeviceToHost));
      if (rate)
        std::printf("%.3f us (%.0f GB/s streamed) ", t / 1e3 / timed, b / (t * 1.0));
      else
        std::printf("%.3f us ", t / 1e3 / timed);
    }
    std::printf("per %s\n", unit);
  };
  std::printf("ping-pong between two blocks: ");
  measure([&] { pingpong<<<sms, 32>>>(buf, R, out); }, R, false, "round trip");
  struct Case { int n, writers, copies; bool staggered; unsigned pause; };
  for (Case c : {Case{1024, 128, 1, false, 0}, Case{1024, 128, 1, false, 32}, Case{2048, 128, 1, false, 0},
                 Case{3072, 128, 1, false, 0}, Case{1024, 8, 1, false, 0}, Case{256, 32, 1, false, 0},
                 Case{1024, 128, 2, false, 32}, Case{1024, 128, 4, false, 32}, Case{1024, 128, 8, false, 32},
                 Case{3072, 128, 4, false, 32}, Case{1024, 128, 1, true, 100}, Case{1024, 128, 1, true, 200},
                 Case{1024, 128, 4, true, 100}, Case{3072, 128, 4, true, 100}}) {
    std::printf("all %d blocks read a %d-word vector from %d writer blocks, %d copies%s, pause %u ns: ", sms, c.n,
                c.writers, c.copies, c.staggered ? ", staggered polls" : "", c.pause);
    measure([&] { rounds<<<sms, 288, smem>>>(buf, c.n, c.writers, c.copies, c.staggered, R, c.pause, out, st); },
            R - 1, false, "round");
  }
  // The same 1,024-word round (128 writers, pause 32 ns) while weights stream in the background (v9 of
  // docs/engine-cuda.md: do the decode step's tile loads slow its hand-overs?).
  int clock_khz = 0;
  CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  auto cpk = [&](double gbs) { return static_cast<int>(clock_khz * 1e3 * 1024 / (gbs * 1e9)); };
  struct StreamCase { int mode, chain_blocks, chunk_kib; const char* what; int pace_cpk = 0; bool evict_first = false; };
  for (StreamCase c : {StreamCase{kNoStream, sms, 64, "no streaming"},
                       StreamCase{kStreamAll, sms, 64, "every block streams continuously"},
                       StreamCase{kNoStream, sms / 2, 64, "no streaming"},
                       StreamCase{kStreamOthers, sms / 2, 64, "the other blocks stream"},
                       StreamCase{kStreamOthers, sms / 2, 64, "the other blocks stream, paced at 12 GB/s each", cpk(12)},
                       StreamCase{kStreamChain, sms / 2, 64, "these blocks stream, paced at 12 GB/s each", cpk(12)},
                       StreamCase{kStreamAll, sms, 64, "every block streams, paced at 6 GB/s", cpk(6)},
                       StreamCase{kBurstAtStart, sms, 32, "each block issues 32 KiB at the start of each round"},
                       StreamCase{kBurstAfterPoll, sms, 32, "each block issues 32 KiB after its poll of each round"},
                       StreamCase{kBurstAtStart, sms, 64, "each block issues 64 KiB at the start of each round"},
                       StreamCase{kBurstAfterPoll, sms, 64, "each block issues 64 KiB after its poll of each round"},
                       StreamCase{kStreamAll, sms, 64, "every block streams, evict-first hint", 0, true},
                       StreamCase{kStreamAll, sms, 64, "every block streams, paced at 8 GB/s per block", cpk(8)},
                       StreamCase{kStreamAll, sms, 64, "every block streams, paced at 13 GB/s per block", cpk(13)},
                       StreamCase{kStreamAll, sms, 64, "every block streams, paced at 20 GB/s per block", cpk(20)},
                       StreamCase{kStreamAll, sms, 64, "every block streams, paced at 27 GB/s per block", cpk(27)}}) {
    st.mode = c.mode, st.chain_blocks = c.chain_blocks, st.chunk_bytes = c.chunk_kib * 1024;
    st.pace_cpk = c.pace_cpk, st.evict_first = c.evict_first;
    const int writers = c.chain_blocks >= 128 ? 128 : 64;
    std::printf("1,024-word rounds on %d blocks (%d writers), %s: ", c.chain_blocks, writers, c.what);
    measure([&] { rounds<<<sms, 288, smem>>>(buf, 1024, writers, 1, false, R, 32, out, st); }, R - 1, true, "round");
  }
  // The plain rounds (132 blocks, no streaming) launched in clusters of 2 and 4: is it where the blocks land?
  st.mode = kNoStream, st.chain_blocks = sms;
  for (int cl : {1, 2, 4}) {
    cudaLaunchConfig_t lc{};
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = cl, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
    lc.gridDim = dim3(sms), lc.blockDim = dim3(288), lc.dynamicSmemBytes = smem, lc.attrs = &attr, lc.numAttrs = 1;
    int resident = 0;
    CHECK(cudaOccupancyMaxActiveClusters(&resident, rounds, &lc));
    if (resident * cl < sms) {
      std::printf("clusters of %d: only %d resident, skipped\n", cl, resident);
      continue;
    }
    std::printf("1,024-word rounds on 132 blocks (128 writers) launched in clusters of %d, no streaming: ", cl);
    measure([&] { CHECK(cudaLaunchKernelEx(&lc, rounds, buf, 1024, 128, 1, false, R, 32u, out, st)); },
            R - 1, false, "round");
  }
  struct Bisect {
    void (*kernel)(Word*, int, unsigned long long*, int*, int, int, Stream, int, bool, unsigned);
    const char* what;
  };
  st.mode = kNoStream;
  for (Bisect b : {Bisect{plain_both<false, false>, "paired_rounds' code without clusters"},
                   Bisect{plain_both<true, false>, "the same, first poll before the loop"},
                   Bisect{plain_both<false, true>, "the same, length and writers as arguments"},
                   Bisect{plain_both<true, true>, "the same, both"},
                   Bisect{plain_both<true, true, true>, "the same, rounds' prologue"},
                   Bisect{plain_both<true, true, false, true>, "the same, rounds' stream-mode checks"},
                   Bisect{plain_both<true, true, true, true>, "the same, prologue and checks"},
                   Bisect{plain_both<true, true, false, false, true>, "the same, rounds' copies (one)"},
                   Bisect{plain_both<true, true, false, false, false, true>, "the same, rounds' staggered branch"},
                   Bisect{plain_both<true, true, true, true, true, true>, "the same, all of rounds' code"},
                   Bisect{plain_both<true, true, false, false, false, false, true>,
                          "the same, the pause from an argument (nanosleep with a register)"}}) {
    std::printf("1,024-word rounds on 132 blocks (128 writers), %s: ", b.what);
    CHECK(cudaFuncSetAttribute(b.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    measure([&] { b.kernel<<<sms, 288, smem>>>(buf, R, out, done, 1024, 128, st, 1, false, 32u); },
            R - 1, false, "round");
  }
  // v10: the reduction hand-over (reduce_rounds), beside the tagged one above.
  CHECK(cudaFuncSetAttribute(reduce_rounds, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  Word* rbuf;
  CHECK(cudaMalloc(&rbuf, 4 * 4 * 3072 * sizeof(Word)));
  struct RedCase { int n, writers, spread, mode; const char* what; };
  for (RedCase c : {RedCase{1024, 132, 1, kNoStream, "no streaming"}, RedCase{1024, 132, 4, kNoStream, "no streaming"},
                    RedCase{1024, 66, 1, kNoStream, "no streaming"}, RedCase{1024, 8, 1, kNoStream, "no streaming"},
                    RedCase{2048, 132, 1, kNoStream, "no streaming"},
                    RedCase{1024, 132, 1, kStreamAll, "every block streams continuously"},
                    RedCase{1024, 132, 4, kStreamAll, "every block streams continuously"}}) {
    st.mode = c.mode, st.chain_blocks = sms, st.chunk_bytes = 64 * 1024, st.pace_cpk = 0, st.evict_first = false;
    std::printf("reduction rounds: %d words, each the sum of %d blocks' adds, spread %d, %s: ", c.n, c.writers,
                c.spread, c.what);
    measure([&] {
      CHECK(cudaMemset(rbuf, 0, 4 * 4 * 3072 * sizeof(Word)));
      reduce_rounds<<<sms, 288, smem>>>(rbuf, c.n, c.writers, R, 32u, c.spread, out, st);
    }, R - 1, c.mode != kNoStream, "round");
  }
  for (int use : {0, 1}) {
    std::printf("1,024-word rounds on 132 blocks (128 writers), the decode step's ll_read poll%s: ",
                use ? ", values used" : " (values unused)");
    auto kernel = use ? ll_like<true> : ll_like<false>;
    CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    measure([&] { kernel<<<sms, 288, smem>>>(buf, R, out, done, 1024, 128, 32u); }, R - 1, false, "round");
  }
  // Clusters of two (paired_rounds): as many as can be resident at once.
  CHECK(cudaFuncSetAttribute(paired_rounds, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(sms), cfg.blockDim = dim3(288), cfg.dynamicSmemBytes = smem;
  int max_clusters = 0;
  CHECK(cudaOccupancyMaxActiveClusters(&max_clusters, paired_rounds, &cfg));
  const int pairs = max_clusters < sms / 2 ? max_clusters : sms / 2;
  st.mode = kStreamAll, st.chunk_bytes = 64 * 1024, st.pace_cpk = 0, st.evict_first = false, st.chain_blocks = 0;
  for (int mode : {kPairNone, kPairLocalOther, kPairLocalSelf, kPairRemote, kPairBoth, kPairExchange}) {
    static const char* what[] = {"no streaming", "the other block of each pair streams into its own shared memory",
                                 "the polling blocks stream into their own shared memory",
                                 "the other block streams into the polling block's shared memory",
                                 "both blocks poll the whole vector (no streaming)",
                                 "each block polls half and copies it into the other's shared memory (no streaming)"};
    const bool both = mode == kPairBoth || mode == kPairExchange;
    std::printf("1,024-word rounds on %s %d pairs, %s: ", both ? "both blocks of" : "the second blocks of", pairs,
                what[mode]);
    measure([&] { paired_rounds<<<2 * pairs, 288, smem>>>(buf, R, out, st, mode); }, R - 1, true, "round");
  }
  return 0;
}
