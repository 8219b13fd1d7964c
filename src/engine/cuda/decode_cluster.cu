// The clustered decode step (v11 of docs/engine-cuda.md): the persistent step (decode_persistent.cu) with its
// blocks grouped in thread-block clusters of 8, so that one KV head's attention block (its rows of qkv, the
// attention, its columns of o_proj) runs inside one cluster and passes its vectors between blocks through
// distributed shared memory, not through L2.
//
// Why: in the persistent step every phase hands its output to the next through L2 (tagged words, ~1.1-2 us
// each, five per layer) and attention merges its splits through L2 too; a cluster's all-gather costs
// ~0.55-0.7 us (probe: tests/engine_cuda/probes/cluster_latency.cu).
//
// Step, per layer l; the grid is K clusters of 8 blocks (as many as are resident at once), rank r in each:
//   A   clusters k < n_kv, KV head k: rmsnorm(XD(l-1)); the head's (G + 2) D rows of wqkv (tiles r, r + 8, ...),
//       every row stored into every rank of the cluster; each rank normalises and rotates the q heads (the
//       last rank also k, and writes k and v to the cache), attends the cache's key tiles r, r + 8, ... (the
//       last rank the new key too) and stores its (o, m, l) into every rank; each rank merges the eight in rank
//       order; OP[k] = wo[:, head k's columns] . att (the rows split over the ranks), tagged words.
//   GU  every block: rank r polls slice r of XD(l-1) and of OP[0..n_kv), sums them in that order (xo) and
//       stores the slice into every rank, so each block holds xo whole; h = silu(wg . x) * (wu . x) with
//       x = rmsnorm(xo), tiles over the grid.
//   DN  XD(l) = xo + wdown . h, tiles over the grid (xo from shared memory: no residual rows to fetch).
// then LM as in the persistent step. Hand-overs through L2 per layer: three (XD, OP, H), against five and the
// splits' merge.
//
// Inside a cluster a block stores into another's shared memory with st.async, each store completing 4 bytes
// of an mbarrier in the receiving block; the receiver expects, per layer, the bytes its buffer gets (every
// element is stored exactly once by one rank), so no block signals anything else. Each buffer is rewritten
// for layer l + 1 only after every rank has read it for layer l: the stores of l + 1 need XD(l), which needs
// every block's down rows, which come after each block's use of the buffer in layer l. Results are
// deterministic (every sum in a fixed order) but round differently from the persistent step (o_proj summed
// per head).
#include <string>

#include "engine/cuda/decode_step.cuh"

namespace gqa::cuda {

namespace {

constexpr int kCluster = 8;       // blocks per cluster (the largest portable size)
constexpr int kMaxKvHeads = 15;   // one cluster per KV head; the GU gather holds 1 + n_kv words per row
enum Exchange { kXQkv = 0, kXAtt, kXRes, kExchanges };

// ---- PTX: cluster rank, distributed shared memory.
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
// The address of this block's shared-memory location p in the block of the cluster with the given rank.
__device__ __forceinline__ uint32_t map_rank(uint32_t p, unsigned rank) {
  uint32_t out;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(out) : "r"(p), "r"(rank));
  return out;
}
__device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// A float into a block's shared memory (addr, bar: shared::cluster addresses), completing 4 bytes of its bar.
__device__ __forceinline__ void st_async(uint32_t addr, float v, uint32_t bar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];" ::"r"(addr),
               "r"(__float_as_uint(v)), "r"(bar)
               : "memory");
}

// This block's place in the cluster layout and its cluster buffers (shared memory).
struct Cluster {
  int head;         // the KV head of the cluster's attention block; -1: none (k >= n_kv)
  unsigned rank;
  float* qkv;       // [(G + 2) D] this step's qkv rows of the head: q heads, k, v
  float* att;       // [kCluster][G][D + 2] the ranks' attention partials: o[D], m, l
  float* res;       // [hidden] xo, the residual stream after attention
  uint64_t* bar;    // [kExchanges] completion of each buffer for the current layer (tx bytes)
};
// Every rank's copy of this block's buffer element p (a place in one of the buffers above) gets v.
__device__ __forceinline__ void store_all(const Cluster& cl, const float* p, float v, Exchange x) {
  const uint32_t a = smem_u32(p), b = smem_u32(cl.bar + x);
#pragma unroll
  for (unsigned r = 0; r < kCluster; ++r) st_async(map_rank(a, r), v, map_rank(b, r));
}
// The buffer's bytes for layer l: posted by thread 0 (before or after they start arriving), waited by all.
__device__ __forceinline__ void expect_exchange(const Cluster& cl, Exchange x, unsigned bytes) {
  if (threadIdx.x == 0) mbar_expect_tx(cl.bar + x, bytes);
}
__device__ __forceinline__ void wait_exchange(const Cluster& cl, Exchange x, int l) {
  mbar_wait<true>(cl.bar + x, static_cast<unsigned>(l) & 1);
}

// ---- The schedule. A head cluster's matrices: the head's rows of wqkv (row i of (G + 2) D: q heads, k, v)
// and the head's G D columns of wo; a rank's tiles of them: r, r + 8, ...
__device__ __forceinline__ Mat head_qkv_mat(const PersistentDecodeArgs& a, const Plan& p, int l) {
  return Mat{a.layer[l].wqkv, (a.n_heads / a.n_kv + 2) * a.head_dim, a.hidden, p.rows_qkv, false};
}
__device__ __forceinline__ Mat head_o_mat(const PersistentDecodeArgs& a, const Plan& p, int l, int head) {
  const int gd = a.n_heads / a.n_kv * a.head_dim;
  return Mat{a.layer[l].wo + static_cast<size_t>(head) * gd, a.hidden, gd, p.rows_o, false};
}
__device__ __forceinline__ Tiles rank_tiles(const Mat& m, unsigned rank) {
  return Tiles{static_cast<int>(rank), tiles_of(m), kCluster};
}
// Row i of the head's qkv rows in wqkv.
__device__ __forceinline__ size_t head_qkv_row(const PersistentDecodeArgs& a, int head, int i) {
  const int D = a.head_dim, gd = a.n_heads / a.n_kv * D, qd = a.n_heads * D, kvd = a.n_kv * D;
  return i < gd ? static_cast<size_t>(head) * gd + i
                : i < gd + D ? static_cast<size_t>(qd) + head * D + (i - gd)
                             : static_cast<size_t>(qd) + kvd + head * D + (i - gd - D);
}
// A tile of rows [row0, row0 + nr) of m whose row r starts at src(r) in memory (one copy per padded row).
template <class Src>
__device__ __forceinline__ void copy_rows_at(char* dst, const Mat& m, int nr, uint64_t* full, Src&& src) {
  const unsigned bytes = static_cast<unsigned>(m.k) * 2, pitch = static_cast<unsigned>(row_pitch(m.k)) * 2;
  mbar_expect_tx(full, bytes * nr);
  for (int r = 0; r < nr; ++r) bulk_load(dst + static_cast<size_t>(r) * pitch, src(r), bytes, full);
}

// The producer's walk of the block's tiles (the same order as the compute warps'): per layer, in a head
// cluster its qkv tiles, its KV tiles, its o tile(s); then everyone's gate/up and down tiles; then lm_head.
__device__ __forceinline__ void pump(const PersistentDecodeArgs& a, const Plan& p, const Ring& ring,
                                     const Cluster& cl, Loader& ld) {
  const int D = a.head_dim;
  while (ld.phase != kLoadDone) {
    const bool head_phase = ld.phase == kLoadQkv || ld.phase == kLoadAtt || ld.phase == kLoadO;
    if (ld.t1 < 0) {  // entering the phase
      if (head_phase && cl.head < 0) {
        ld.t = 0, ld.t1 = 0;
      } else if (ld.phase == kLoadAtt) {
        if (ld.pos < 0) return;  // not known yet
        ld.t = static_cast<int>(cl.rank), ld.t1 = (ld.pos + p.keys_per_tile - 1) / p.keys_per_tile, ld.dt = kCluster;
      } else {
        const Tiles r = ld.phase == kLoadQkv ? rank_tiles(head_qkv_mat(a, p, ld.l), cl.rank)
                        : ld.phase == kLoadO ? rank_tiles(head_o_mat(a, p, ld.l, cl.head), cl.rank)
                                             : block_tiles(load_mat(a, p, ld.phase, ld.l));
        ld.t = r.first, ld.t1 = r.end, ld.dt = r.step;
      }
    }
    if (ld.t >= ld.t1) {
      next_load_phase(ld, a.layers);
      continue;
    }
    int s;
    char* dst = free_stage(ring, ld, &s);
    if (ld.phase == kLoadAtt) {
      const int k = ld.t * p.keys_per_tile, n = min(p.keys_per_tile, ld.pos - k);
      const size_t row = ((static_cast<size_t>(ld.l) * a.n_kv + cl.head) * a.capacity + k) * D;
      copy_kv(dst, reinterpret_cast<const char*>(a.k_cache + row), reinterpret_cast<const char*>(a.v_cache + row),
              static_cast<unsigned>(n) * D * 2, &ring.full[s]);
    } else if (ld.phase == kLoadQkv) {
      const Mat m = head_qkv_mat(a, p, ld.l);
      const int row0 = ld.t * m.rows;
      copy_rows_at(dst, m, min(m.rows, m.n - row0), &ring.full[s],
                   [&](int r) { return m.w + head_qkv_row(a, cl.head, row0 + r) * m.k; });
    } else if (ld.phase == kLoadO) {
      const Mat m = head_o_mat(a, p, ld.l, cl.head);
      const int row0 = ld.t * m.rows, ld_o = a.n_heads * D;
      copy_rows_at(dst, m, min(m.rows, m.n - row0), &ring.full[s],
                   [&](int r) { return m.w + static_cast<size_t>(row0 + r) * ld_o; });
    } else {
      const Mat m = load_mat(a, p, ld.phase, ld.l);
      const int row0 = ld.t * m.rows;
      copy_rows(dst, m, row0, min(m.rows, m.n - row0), &ring.full[s]);
    }
    ld.t += ld.dt;
    issued_one(ld, ring);
  }
}

__device__ __forceinline__ void produce(const PersistentDecodeArgs& a, const Plan& p, const Ring& ring,
                                        const Cluster& cl) {
  Loader ld;
  pump(a, p, ring, cl, ld);
  griddep_wait();
  ld.pos = *const_cast<volatile int*>(a.pos);
  pump(a, p, ring, cl, ld);
}

// ---- Compute warps: phase A (head clusters).
template <int D, int G>
__device__ __forceinline__ void head_qkv(Ctx& c, const Cluster& cl, int l) {
  const PersistentDecodeArgs& a = c.a;
  const int H = a.hidden;
  BVec w;
  Vec x;
  load_vec(a.layer[l].attn_norm, H, w);
  if (l == 0) {
    BVec e;
    load_vec(a.embed + static_cast<size_t>(c.token) * H, H, e);
#pragma unroll
    for (int j = 0; j < kVec; ++j) x.v[j] = to_float4(e.v[j]);
  } else {
    ll_read(c.xd, H, tag_of(c, l - 1, kDn), c.p.poll_ns, x);
  }
  mark(c, kMarkReady);
  store_rmsnorm(c, H, x, w);
  mark(c, kMarkFilled);
  expect_exchange(cl, kXQkv, (G + 2) * D * 4);
  // What attention_inputs reads from global memory besides the qkv rows (the q/k norm weights), into L1 now
  // rather than on the chain after the exchange.
  if (threadIdx.x < 2 * D / 64) {
    const int t = static_cast<int>(threadIdx.x), line = t % (D / 64);
    const char* base = t < D / 64 ? reinterpret_cast<const char*>(a.layer[l].q_norm)
                                  : reinterpret_cast<const char*>(a.layer[l].k_norm);
    asm volatile("prefetch.global.L1 [%0];" ::"l"(base + 128 * line));
  }
  const Mat m = head_qkv_mat(a, c.p, l);
  gemv_tiles(c, m, rank_tiles(m, cl.rank), [&](int row, int, float s) { store_all(cl, cl.qkv + row, s, kXQkv); });
  mark(c, kMarkComputed);
  wait_exchange(cl, kXQkv, l);
}

template <int D, int G>
__device__ __forceinline__ void head_att(Ctx& c, const Cluster& cl, int l) {
  const bool new_key = cl.rank == kCluster - 1;
  attention_inputs<D, G>(c, l, cl.head, new_key, [&](int h, float (&v)[D / 32]) {
#pragma unroll
    for (int e = 0; e < D / 32; ++e) v[e] = cl.qkv[h * D + c.lane + 32 * e];
  });
  mark(c, kMarkReady);
  const int tiles = (c.pos + c.p.keys_per_tile - 1) / c.p.keys_per_tile;
  attend_split<D, G>(c, static_cast<int>(cl.rank), tiles, kCluster, new_key);
  // The block's (o, m, l) per (query head, dim), its warps merged in warp order, into every rank.
  constexpr int W = D + 2;
  const float* scr = c.xs;
  expect_exchange(cl, kXAtt, kCluster * G * W * 4);
  for (int i = threadIdx.x; i < G * D; i += kConsumers) {
    const int g = i / D, d = i % D;
    float M, L, O;
    warps_merged<D, G>(scr, g, d, M, L, O);
    const float* mine = cl.att + (cl.rank * G + g) * W;
    store_all(cl, mine + d, O, kXAtt);
    if (d == 0) store_all(cl, mine + D, M, kXAtt), store_all(cl, mine + D + 1, L, kXAtt);
  }
  wait_exchange(cl, kXAtt, l);
}

// The head's attention output (the ranks' partials merged in rank order), then its o_proj partial OP[head].
template <int D, int G>
__device__ __forceinline__ void head_o(Ctx& c, const Cluster& cl, int l) {
  constexpr int W = D + 2;
  // One element per thread into c.res (the queries there are no longer needed), then the GEMV's input.
  for (int i = threadIdx.x; i < G * D; i += kConsumers) {
    const int g = i / D, d = i % D;
    float m[kCluster], M = -INFINITY;
#pragma unroll
    for (int r = 0; r < kCluster; ++r) m[r] = cl.att[(r * G + g) * W + D], M = fmaxf(M, m[r]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int r = 0; r < kCluster; ++r) {
      const float* src = cl.att + (r * G + g) * W;
      const float wt = merge_weight(m[r], M);
      L += src[D + 1] * wt;
      O += src[d] * wt;
    }
    c.res[i] = O / L;
  }
  consumer_sync();
  Vec att;
#pragma unroll
  for (int j = 0; j < kVec; ++j)
    if (vec_index(j) < G * D) att.v[j] = *reinterpret_cast<const float4*>(c.res + vec_index(j));
  mark(c, kMarkReady);
  store_vec(c, G * D, att);
  mark(c, kMarkFilled);
  const Mat m = head_o_mat(c.a, c.p, l, cl.head);
  Word* op = c.part + static_cast<size_t>(cl.head) * c.a.hidden;
  const unsigned tag = tag_of(c, l, kO);
  gemv_tiles(c, m, rank_tiles(m, cl.rank), [&](int row, int, float s) { ll_store(op + row, s, tag); });
  mark(c, kMarkComputed);
}

// ---- Every block: the residual stream after attention, then the MLP.
// xo = XD(l-1) (layer 0: the embedding) + OP[0] + ... + OP[n_kv - 1], this rank's slice of it into every rank.
__device__ __forceinline__ void gather_residual(Ctx& c, const Cluster& cl, int l) {
  const PersistentDecodeArgs& a = c.a;
  const int H = a.hidden, slice = H / kCluster, nkv = a.n_kv;
  const unsigned tag_xd = l > 0 ? tag_of(c, l - 1, kDn) : 0, tag_op = tag_of(c, l, kO);
  const bf16* emb = a.embed + static_cast<size_t>(c.token) * H;
  expect_exchange(cl, kXRes, H * 4);
  for (int i = threadIdx.x; i < slice; i += kConsumers) {
    const int row = static_cast<int>(cl.rank) * slice + i;
    // Word 0: XD's row (none at layer 0), words 1..n_kv: the partials', all loaded at once, then polled.
    Word w[kMaxKvHeads + 1] = {};
    auto addr = [&](int k) -> const Word* {
      return k == 0 ? (l > 0 ? c.xd + row : nullptr) : c.part + static_cast<size_t>(k - 1) * H + row;
    };
    auto ready = [&](int k) { return k > nkv || tag_word(w[k]) == (k == 0 ? tag_xd : tag_op); };
#pragma unroll
    for (int k = 0; k <= kMaxKvHeads; ++k)
      w[k] = k <= nkv && addr(k) ? ll_load(addr(k)) : static_cast<Word>(tag_xd) << 32;
    for (;;) {
      bool ok = true;
#pragma unroll
      for (int k = 0; k <= kMaxKvHeads; ++k) ok = ok && ready(k);
      if (ok) break;
      poll_pause(c.p.poll_ns);
#pragma unroll
      for (int k = 0; k <= kMaxKvHeads; ++k)
        if (!ready(k)) w[k] = ll_load(addr(k));
    }
    float v = l > 0 ? value_word(w[0]) : __bfloat162float(emb[row]);
#pragma unroll
    for (int k = 1; k <= kMaxKvHeads; ++k)
      if (k <= nkv) v += value_word(w[k]);
    store_all(cl, cl.res + row, v, kXRes);
  }
  mark(c, kMarkReady);
  wait_exchange(cl, kXRes, l);
}

template <int D, int G>
__device__ __forceinline__ void consume(Ctx& c, const Cluster& cl) {
  const PersistentDecodeArgs& a = c.a;
  const int H = a.hidden, I = a.inter;
  for (int l = 0; l < a.layers; ++l) {
    if (cl.head >= 0) {
      begin_phase(c, l * kPhases + kQkv);
      head_qkv<D, G>(c, cl, l);
      mark(c, kMarkEnd);
      begin_phase(c, l * kPhases + kAtt);
      head_att<D, G>(c, cl, l);
      mark(c, kMarkEnd);
      begin_phase(c, l * kPhases + kO);
      head_o<D, G>(c, cl, l);
      mark(c, kMarkEnd);
    }
    begin_phase(c, l * kPhases + kGu);
    BVec w;
    load_vec(a.layer[l].mlp_norm, H, w);  // before the wait: it depends on nothing
    gather_residual(c, cl, l);
    const Mat gu = load_mat(a, c.p, kLoadGu, l);
    if (const Tiles r = block_tiles(gu); r.count() > 0) {
      Vec x;
#pragma unroll
      for (int j = 0; j < kVec; ++j)
        if (vec_index(j) < H) x.v[j] = *reinterpret_cast<const float4*>(cl.res + vec_index(j));
      store_rmsnorm(c, H, x, w);
      mark(c, kMarkFilled);
      const unsigned tag = tag_of(c, l, kGu);
      gemv_tiles(c, gu, r, [&](int row, int, float g, float u) { ll_store(c.h + row, g / (1.0f + expf(-g)) * u, tag); });
      mark(c, kMarkComputed);
    }
    mark(c, kMarkEnd);
    begin_phase(c, l * kPhases + kDn);
    const Mat dn = load_mat(a, c.p, kLoadDn, l);
    if (const Tiles r = block_tiles(dn); r.count() > 0) {
      Vec h;
      ll_read(c.h, I, tag_of(c, l, kGu), c.p.poll_ns, h);
      mark(c, kMarkReady);
      store_vec(c, I, h);
      mark(c, kMarkFilled);
      const unsigned tag = tag_of(c, l, kDn);
      gemv_tiles(c, dn, r, [&](int row, int, float s) { ll_store(c.xd + row, cl.res[row] + s, tag); });
      mark(c, kMarkComputed);
    }
    mark(c, kMarkEnd);
  }
  begin_phase(c, a.layers * kPhases);
  const Mat lm = load_mat(a, c.p, kLoadLm, 0);
  if (const Tiles r = block_tiles(lm); r.count() > 0) {
    BVec w;
    Vec x;
    load_vec(a.final_norm, H, w);
    ll_read(c.xd, H, tag_of(c, a.layers - 1, kDn), c.p.poll_ns, x);
    mark(c, kMarkReady);
    store_rmsnorm(c, H, x, w);
    mark(c, kMarkFilled);
    gemv_tiles(c, lm, r, [&](int row, int, float s) { a.logits[row] = s; });
    mark(c, kMarkComputed);
  }
  mark(c, kMarkEnd);
}

// Shared memory past the ring (floats): c.res (q heads and the new k/v), c.xs (GEMV input terms; attention's
// warp scratch, then the cluster's attention partials after it), the cluster's qkv rows and residual.
struct Layout {
  int res, xs, att, qkv, resid, total;  // offsets (floats) from the end of the ring; total floats
};
__host__ __device__ __forceinline__ Layout smem_layout(int hidden, int inter, int n_heads, int n_kv, int D) {
  const int G = n_heads / n_kv, W = D + 2, round = 32;  // 128-byte pieces
  auto up = [&](int n) { return (n + round - 1) / round * round; };
  Layout o{};
  o.res = 0;
  o.xs = up((G + 1) * D);
  const int longest = max(max(hidden, inter), n_heads * D);
  const int terms = (kTerms * (longest + kTermPad) + 1) / 2;  // bf16 terms, in floats
  const int scratch = up(kConsumerWarps * G * W);              // attend_split's warp results
  o.att = o.xs + scratch;
  o.qkv = o.xs + up(max(terms, scratch + kCluster * G * W));
  o.resid = o.qkv + up((G + 2) * D);
  o.total = o.resid + up(hidden);
  return o;
}

template <int D, int G>
__global__ void __launch_bounds__(kThreads, 1) cluster_decode_kernel(const __grid_constant__ PersistentDecodeArgs a,
                                                                     const __grid_constant__ Plan p) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t bars[2 * kMaxStages];
  __shared__ uint64_t xbars[kExchanges];
  __shared__ float gpart[2 * kPartFloats];
  __shared__ float red[kConsumerWarps];
  __shared__ float2 rope[kMaxRope];
  Ring ring{smem, bars, bars + kMaxStages, p.stages, p.stage_bytes};
  float* base = reinterpret_cast<float*>(smem + static_cast<size_t>(p.stages) * p.stage_bytes);
  const Layout sl = smem_layout(a.hidden, a.inter, a.n_heads, a.n_kv, D);
  const int k = static_cast<int>(cluster_index());
  Cluster cl{k < a.n_kv ? k : -1, cluster_rank(), base + sl.qkv, base + sl.att, base + sl.resid, xbars};
  if (threadIdx.x == 0) {
    for (int s = 0; s < p.stages; ++s) mbar_init(&ring.full[s], 1), mbar_init(&ring.empty[s], kConsumerWarps);
    for (int x = 0; x < kExchanges; ++x) mbar_init(&xbars[x], 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  cluster_sync_all();  // every block's barriers exist before any store into its shared memory
  if (threadIdx.x / 32 == kConsumerWarps) {  // the producer warp
    if (threadIdx.x % 32 == 0) produce(a, p, ring, cl);
    __syncwarp();
  } else {
    const LLLayout ll = ll_layout(a.hidden, a.inter, a.n_heads, a.n_kv, a.head_dim, p.max_splits);
    Ctx c{a, p, ring, 0, 0, 0, 0, base + sl.xs, base + sl.res, red, gpart, static_cast<int>(threadIdx.x / 32),
          static_cast<int>(threadIdx.x % 32), 0, 0, a.ll + ll.xo, a.ll + ll.xd, a.ll + ll.qkv, a.ll + ll.att,
          a.ll + ll.h, a.ll + ll.opart};
    griddep_wait();
    c.step = *const_cast<volatile unsigned*>(a.sync + kSyncStep) + 1;
    c.pos = *const_cast<volatile int*>(a.pos);
    c.token = *const_cast<volatile int*>(a.token);
    rope_table(c, rope);
    if (a.n_heads != G * a.n_kv) __trap();  // the launcher picks the instantiation
    consume<D, G>(c, cl);
  }
  __syncthreads();
  cluster_sync_all();  // no block leaves while a peer may still store into its shared memory
  if (threadIdx.x == 0) {  // the last block out closes the step
    __threadfence();
    if (atomicAdd(a.sync + kSyncExit, 1u) == gridDim.x - 1) {
      a.sync[kSyncExit] = 0;
      a.sync[kSyncStep] += 1;
      *a.pos += 1;
      __threadfence();
    }
  }
}

using KernelFn = void (*)(PersistentDecodeArgs, Plan);
template <int D>
KernelFn kernel_for(int group) {
  switch (group) {
    case 1: return cluster_decode_kernel<D, 1>;
    case 2: return cluster_decode_kernel<D, 2>;
    case 4: return cluster_decode_kernel<D, 4>;
    default: return cluster_decode_kernel<D, 8>;
  }
}

struct Config {
  size_t smem = 0;
  int clusters = 0;  // resident at once
};
Config g_config[2][4];

struct Prepared {
  Plan plan;
  size_t smem;
  KernelFn kernel;
  int clusters;
};

cudaLaunchConfig_t launch_config(const Exec& ex, int clusters, size_t smem, cudaLaunchAttribute (&attr)[2]) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(clusters * kCluster);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = ex.stream;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = kCluster, attr[0].val.clusterDim.y = 1, attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = ex.pdl ? 2 : 1;
  return cfg;
}

Prepared prepare(const Exec& ex, const PersistentDecodeArgs& a) {
  const int D = a.head_dim;
  if (!cluster_decode_supported(a.hidden, a.inter, a.n_heads, a.n_kv, D))
    fail_unsupported("cluster_decode: model shape outside what the clustered decode step supports");
  if (a.poll_ns < 0 || a.poll_ns > 10000) fail_unsupported("cluster_decode: poll_ns must be 0..10000");
  if (a.tile_kib < 32 || a.tile_kib > 192) fail_unsupported("cluster_decode: tile_kib must be 32..192");
  if (a.kv_tile_kib < 8 || a.kv_tile_kib > a.tile_kib || a.kv_tile_kib * 1024 % (4 * D) != 0)
    fail_unsupported("cluster_decode: kv_tile_kib must be 8..tile_kib and hold a whole number of keys");
  const int group = a.n_heads / a.n_kv, gd = group * D;
  const KernelFn kernel = D == 64 ? kernel_for<64>(group) : kernel_for<128>(group);
  Config& cfg = g_config[D == 64 ? 0 : 1][group == 1 ? 0 : group == 2 ? 1 : group == 4 ? 2 : 3];
  Plan p{};
  p.stage_bytes = a.tile_kib * 1024 + kStagePadBytes;
  p.poll_ns = static_cast<unsigned>(a.poll_ns);
  p.keys_per_tile = a.kv_tile_kib * 1024 / (4 * D);
  p.max_splits = persistent_decode_max_splits(ex.sms, a.n_kv);  // only for the ll layout shared with persistent
  const Layout sl = smem_layout(a.hidden, a.inter, a.n_heads, a.n_kv, D);
  p.res_floats = sl.xs;
  int device = 0, optin = 0;
  GQA_CUDA_CHECK(cudaGetDevice(&device));
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const size_t rest = static_cast<size_t>(sl.total) * 4;
  const size_t static_bytes =
      (2 * kMaxStages + kExchanges) * 8 + (2 * kPartFloats + kConsumerWarps) * 4 + kMaxRope * 8 + 1024;
  const size_t sb = static_cast<size_t>(p.stage_bytes);
  if (static_cast<size_t>(optin) < rest + static_bytes + 2 * sb)
    fail_unsupported("cluster_decode: not enough shared memory per block for two ring stages (tile_kib too large)");
  p.stages = static_cast<int>(std::min<size_t>(kMaxStages, (optin - rest - static_bytes) / sb));
  const size_t smem = static_cast<size_t>(p.stages) * sb + rest;
  if (cfg.smem != smem) {
    GQA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    cudaLaunchAttribute attr[2];
    const cudaLaunchConfig_t lc = launch_config(ex, std::max(1, ex.sms / kCluster), smem, attr);
    GQA_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&cfg.clusters, kernel, &lc));
    cfg.smem = smem;
  }
  // The waits between blocks need every block resident at once; one cluster per KV head at least.
  const int clusters = std::min(cfg.clusters, ex.sms / kCluster);
  if (clusters < a.n_kv)
    fail_unsupported(("cluster_decode: " + std::to_string(clusters) + " clusters of 8 fit at once, fewer than the " +
                      std::to_string(a.n_kv) + " KV heads").c_str());
  const int blocks = clusters * kCluster;
  p.rows_qkv = rows_per_tile((group + 2) * D, a.hidden, kCluster, p.stage_bytes);
  p.rows_o = rows_per_tile(a.hidden, gd, kCluster, p.stage_bytes);
  p.rows_gu = rows_per_tile(a.inter, a.hidden, blocks, p.stage_bytes, 2);
  p.rows_dn = rows_per_tile(a.hidden, a.inter, blocks, p.stage_bytes);
  p.rows_lm = rows_per_tile(a.vocab, a.hidden, blocks, p.stage_bytes);
  return Prepared{p, smem, kernel, clusters};
}

}  // namespace

bool cluster_decode_supported(int hidden, int inter, int n_heads, int n_kv, int head_dim) {
  if (!persistent_decode_supported(hidden, inter, n_heads, n_kv, head_dim)) return false;
  return n_kv <= kMaxKvHeads && hidden % (4 * kCluster) == 0;
}

void cluster_decode_configure(const Exec& ex, const PersistentDecodeArgs& a) { prepare(ex, a); }

void cluster_decode(const Exec& ex, const PersistentDecodeArgs& a) {
  const Prepared pr = prepare(ex, a);
  cudaLaunchAttribute attr[2];
  const cudaLaunchConfig_t cfg = launch_config(ex, pr.clusters, pr.smem, attr);
  GQA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, pr.kernel, a, pr.plan));
}

}  // namespace gqa::cuda
