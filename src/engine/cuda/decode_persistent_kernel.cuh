// The persistent decode step's kernel body, shared by the built-in kernel and the linkable one.
//
// The persistent decode step (v6/v7 of docs/engine-cuda-log.md): one launch per token, one block per SM.
//
// Why: the per-layer kernels spend most of a layer on fixed costs (chained launches ~2.7 us, grid barriers
// 1.3-2 us, weight loads stalled behind them), not on bytes. Weights depend on no activation, so here each
// block streams every weight tile (and every KV tile of its attention split) it will use during the whole
// step into a ring of shared-memory stages with bulk copies (TMA, mbarrier completion), issued by a producer
// warp as fast as the ring frees up. The compute warps (kConsumerWarps) walk the same sequence of tiles; at the
// start of each phase they read the phase's input vector as other blocks produce it and consume tiles that are
// usually already there.
//
// Step, per layer l (a block only takes part in the phases where it owns tiles or an attention split):
//   QKV  qkv = wqkv . rmsnorm(x)             reads XD(l-1) (layer 0: x = embed[token])
//   ATT  split-KV attention of one KV head's query group over the cache: the block normalises and rotates
//        its q heads itself (and, in the split holding the new key, k, writing k and v to the cache); the
//        last split merges the others' partials (polling up to Plan::merge_chunk splits' words at once, v11)
//   O    xo = x + wo . att
//   GU   h = silu(wg . rmsnorm(xo)) * (wu . rmsnorm(xo))   (a tile holds matching gate and up rows)
//   DN   xd = xo + wdown . h
// then LM: logits = lm_head . rmsnorm(xd), reading XD(L-1). The last block to leave advances the position
// and the step number.
//
// Blocks hand activations to each other without counters or fences (v7): every element is written as one
// 8-byte word {float value, tag}, the tag naming (step, layer, phase); a reader polls the words it needs
// until all carry the tag it expects. An 8-byte store is single-copy atomic, so a matching tag means the
// value beside it is the new one. (v6 counted finished tiles per phase: a barrier and a release after the
// writes, an atomic, a polling thread and a barrier on the reading side, ~3 us per phase on the H200.)
// Tags are unique per step (the step number is kept in memory across launches and the buffers are zeroed
// with it), so no buffer needs clearing between steps; a buffer is rewritten for layer l+1 only after every
// reader of layer l has read it, since each phase of l+1 depends, through the chain, on all of layer l.
// Matrix tiles are consumed on tensor cores (mma.m16n8k16; the input vector as three bf16 terms, which keeps
// fp32 precision). Every block is resident at once (one block per SM, checked with the occupancy API), which
// the polling requires. Results are deterministic: every output element is summed in a fixed order.
// The step's device pieces (ring, tagged words, tensor-core GEMV) are in decode_step.cuh. The attention of a split
// is an attention program's device entry (include/gqa/decode_abi.cuh): the built-in kernel (decode_persistent.cu)
// compiles the stock one (examples/qwen3_gqa/persistent_program.cu) into itself; decode_persistent_linkable.cu is
// the same kernel as LTO IR with the entry left open, linked with a program at run time (decode_program.cpp).
#pragma once
#include "engine/cuda/decode_step.cuh"
#include "gqa/decode_abi.cuh"

namespace gqa::cuda {

namespace {
// This block's attention split at a step with keys 0..pos: its KV head, and its tiles of keys_per_tile keys
// among the keys 0..pos-1 (streamed through the ring): s, s + S, s + 2S, ... (interleaved for the same reason
// as matrix tiles). The new key at pos, written by this step's QKV phase, belongs to the last split.
struct Split {
  bool has, new_key;
  int kvh, s, n_splits, tiles;  // tiles: of the whole cache (0..pos-1); the split's are s, s + n_splits, ...
  int count;                    // how many of them are the split's
};
__device__ __forceinline__ Split block_split(const PersistentDecodeArgs& a, const Plan& p, int pos) {
  const int len = pos + 1;
  const int S = max(1, min((len + a.split_keys - 1) / a.split_keys, p.max_splits));
  Split sp{};
  sp.n_splits = S;
  const int task = static_cast<int>(blockIdx.x);
  sp.has = task < a.n_kv * S;
  if (!sp.has) return sp;
  sp.kvh = task / S, sp.s = task % S;
  sp.tiles = (pos + p.keys_per_tile - 1) / p.keys_per_tile;
  sp.count = sp.s < sp.tiles ? (sp.tiles - sp.s + S - 1) / S : 0;
  sp.new_key = sp.s == S - 1;
  return sp;
}

// Issues tiles in order, waiting for each stage to be free (mbarrier try_wait, which suspends the thread:
// a test_wait spin here slowed the compute warps' shared-memory loads); returns when nothing is left, or
// at the attention tiles while the position is not known yet.
__device__ __forceinline__ void pump(const PersistentDecodeArgs& a, const Plan& p, const Ring& ring, Loader& ld) {
  const int D = a.head_dim;
  while (ld.phase != kLoadDone) {
    const bool claimed = p.dynamic && ld.phase != kLoadAtt;  // this phase's tiles are claimed (claim_tile)
    if (ld.t1 < 0) {  // entering the phase
      if (ld.phase == kLoadAtt) {
        if (ld.pos < 0) return;  // not known yet
        const Split sp = block_split(a, p, ld.pos);
        ld.t = sp.s, ld.t1 = sp.has ? sp.tiles : 0, ld.dt = sp.n_splits;
      } else if (claimed) {
        ld.t1 = tiles_of(load_mat(a, p, ld.phase, ld.l));
        ld.t = claim_tile(a, ld, ld.t1);
      } else {
        const Tiles r = block_tiles(load_mat(a, p, ld.phase, ld.l));
        ld.t = r.first, ld.t1 = r.end, ld.dt = r.step;
      }
    }
    if (ld.t >= ld.t1) {
      if (claimed) {  // a stage without data tells the compute warps that the phase is over for this block
        int s;
        free_stage(ring, ld, &s);
        ring.tile[s] = -1;
        mbar_expect_tx(&ring.full[s], 0);
        issued_one(ld, ring);
      }
      next_load_phase(ld, a.layers);
      continue;
    }
    int s;
    char* dst = free_stage(ring, ld, &s);
    ring.tile[s] = ld.t;  // before the barrier's arrive, which releases it to the compute warps
    if (ld.phase == kLoadAtt) {
      const Split sp = block_split(a, p, ld.pos);
      const int k = ld.t * p.keys_per_tile, n = min(p.keys_per_tile, ld.pos - k);
      const size_t key_row = (static_cast<size_t>(ld.l) * a.n_kv + sp.kvh) * a.capacity + k, row = key_row * D;
      copy_kv(dst, reinterpret_cast<const char*>(a.k_cache + row), reinterpret_cast<const char*>(a.v_cache + row),
              static_cast<unsigned>(n) * D * 2, &ring.full[s]);
    } else {
      const Mat m = load_mat(a, p, ld.phase, ld.l);
      const int row0 = ld.t * m.rows;
      copy_rows(dst, m, row0, min(m.rows, m.n - row0), &ring.full[s]);
    }
    // The next claim right away: its L2 round trip overlaps the wait for the next free stage.
    ld.t = claimed ? claim_tile(a, ld, ld.t1) : ld.t + ld.dt;
    issued_one(ld, ring);
  }
}

// The producer: the first weights (layer 0's qkv) stream while the previous kernel finishes; the attention
// tiles need the position, written by it.
__device__ __forceinline__ void produce(const PersistentDecodeArgs& a, const Plan& p, const Ring& ring) {
  Loader ld;
  ld.step = *const_cast<volatile unsigned*>(a.sync + kSyncStep) + 1;  // claim_tile says why it may be read here
  pump(a, p, ring, ld);
  griddep_wait();
  ld.pos = *const_cast<volatile int*>(a.pos);
  pump(a, p, ring, ld);
}

struct Layer {
  Mat qkv, o, gu, dn;
};
__device__ __forceinline__ Layer layer_mats(const PersistentDecodeArgs& a, const Plan& p, int l) {
  return Layer{load_mat(a, p, kLoadQkv, l), load_mat(a, p, kLoadO, l), load_mat(a, p, kLoadGu, l),
               load_mat(a, p, kLoadDn, l)};
}

template <int D, int N>
__device__ __forceinline__ void phase_qkv(Ctx& c, int l, const Mat& m) {
  const PersistentDecodeArgs& a = c.a;
  const Tiles r = block_tiles(m);
  if (!c.p.dynamic && r.count() == 0) return;
  const int H = a.hidden;
  BVec<N> w;
  Vec<N> x;
  load_vec(a.layer[l].attn_norm, H, w);  // before the wait: it depends on nothing
  if (l == 0) {
    BVec<N> e;
    load_vec(a.embed + static_cast<size_t>(c.token) * H, H, e);
#pragma unroll
    for (int j = 0; j < N; ++j) x.v[j] = to_float4(e.v[j]);
  } else {
    ll_read(c.xd, H, tag_of(c, l - 1, kDn), c.p.poll_ns, x);
  }
  mark(c, kMarkReady);
  store_rmsnorm(c, H, x, w);
  mark(c, kMarkFilled);
  const unsigned tag = tag_of(c, l, kQkv);
  gemv_tiles(c, m, r, [&](int row, float s) { ll_store(c.qkv + row, s, tag); });
  mark(c, kMarkComputed);
}


// The inputs of an attention split: its q heads, k and v are this step's qkv rows (tagged words).
template <int D, int G>
__device__ __forceinline__ void attention_inputs(Ctx& c, int l, const Split& sp) {
  const int qd = c.a.n_heads * D, kvd = c.a.n_kv * D;
  const unsigned tag = tag_of(c, l, kQkv);
  attention_inputs<D, G>(c, l, sp.kvh, sp.new_key, [&](int h, float (&v)[D / 32]) {
    const int src = h < G ? (sp.kvh * G + h) * D : h == G ? qd + sp.kvh * D : qd + kvd + sp.kvh * D;
    ll_gather<D / 32>(tag, v, c.p.poll_ns, [&](int e) { return c.qkv + src + c.lane + 32 * e; });
  });
}

// The merging split's result: its own state, then the other splits' partials in split order, as in the
// one-at-a-time merge of phase_att (the same arithmetic), but polled merge_chunk splits at a time into shared
// memory after the warps' scratch (one L2 round trip per chunk instead of one per split). A split's partials are
// part_stride(G, D) words, a whole number of ll_read's 4-word groups.
template <int D, int G, int N>
__device__ __forceinline__ void merge_splits(Ctx& c, int S, const float* scr, int parts, const Word* part, Word* out,
                                             unsigned tag) {
  constexpr int W = D + 2, per = part_stride(G, D), E = (G * D + kConsumers - 1) / kConsumers;
  float M[E], L[E], O[E];
#pragma unroll
  for (int e = 0; e < E; ++e) {
    const int i = static_cast<int>(threadIdx.x) + e * kConsumers;
    if (i < G * D) warps_merged<D, G>(scr, parts, i / D, i % D, M[e], L[e], O[e]);
  }
  float* stage = c.xs + kConsumerWarps * G * W;
  for (int s0 = 0; s0 < S - 1; s0 += c.p.merge_chunk) {
    const int ns = min(c.p.merge_chunk, S - 1 - s0), n = ns * per;
    Vec<N> v;
    ll_read(part + static_cast<size_t>(s0) * per, n, tag, c.p.poll_ns, v);
#pragma unroll
    for (int j = 0; j < N; ++j)
      if (vec_index(j) < n) *reinterpret_cast<float4*>(stage + vec_index(j)) = v.v[j];
    consumer_sync();
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int i = static_cast<int>(threadIdx.x) + e * kConsumers;
      if (i >= G * D) continue;
      const int g = i / D, d = i % D;
      for (int s = 0; s < ns; ++s) {
        const float* src = stage + s * per + g * W;
        const float Mn = fmaxf(M[e], src[D]);
        const float wa = merge_weight(M[e], Mn), wb = merge_weight(src[D], Mn);
        L[e] = L[e] * wa + src[D + 1] * wb, O[e] = O[e] * wa + src[d] * wb, M[e] = Mn;
      }
    }
    consumer_sync();  // the stage is rewritten by the next chunk (and c.xs by the next phase)
  }
#pragma unroll
  for (int e = 0; e < E; ++e) {
    const int i = static_cast<int>(threadIdx.x) + e * kConsumers;
    if (i < G * D) ll_store(out + i, O[e] / L[e], tag);
  }
}

// The split's attention proper: the program's device entry (gqa/decode_abi.cuh), the stock one unless an
// attention program was linked into the step. Its partial states land at c.xs; returns how many.
template <int D, int G>
__device__ __forceinline__ int attend_split(Ctx& c, const Split& sp) {
  gqa_decode_split s{};
  s.head_dim = D, s.group = G, s.kv_head = sp.kvh, s.split = sp.s, s.num_splits = sp.n_splits, s.pos = c.pos;
  s.keys_per_tile = c.p.keys_per_tile, s.first_tile = sp.s, s.tile_step = sp.n_splits, s.num_tiles = sp.count;
  s.has_new_key = sp.new_key, s.max_parts = kConsumerWarps, s.scratch_bytes = c.p.xs_bytes;
  s.scale_log2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;  // scores in the log2 domain
  s.q = c.res, s.new_kv = reinterpret_cast<const uint16_t*>(c.res + G * D), s.scratch = c.xs, s.step = &c;
  mark(c, kMarkFilled);
  const int parts = gqa_decode_attend_v2(&s);
  mark(c, kMarkComputed);
  consumer_sync();  // the partial states are read across warps
  if (parts < 1 || parts > kConsumerWarps) __trap();  // outside the contract: the launch fails, never a wrong merge
  return parts;
}

template <int D, int G, int N>
__device__ __forceinline__ void phase_att(Ctx& c, int l) {
  const PersistentDecodeArgs& a = c.a;
  const Split sp = block_split(a, c.p, c.pos);
  if (!sp.has) return;
  const int S = sp.n_splits;
  attention_inputs<D, G>(c, l, sp);
  mark(c, kMarkReady);
  const int parts = attend_split<D, G>(c, sp);
  const int W = D + 2;
  float* scr = c.xs;
  // The block's result per (query head, dim). With several splits, the last one (which also attends the new
  // key) merges the others' partials into its own, in split order; the others publish theirs.
  const unsigned tag = tag_of(c, l, kAtt);
  constexpr int PS = part_stride(G, D);
  Word* part = c.part + static_cast<size_t>(sp.kvh) * S * PS;  // [split][PS] of this KV head
  if (S > 1 && sp.s == S - 1 && c.p.merge_chunk > 1) {
    merge_splits<D, G, N>(c, S, scr, parts, part, c.att + static_cast<size_t>(sp.kvh) * G * D, tag);
    return;
  }
  if (S > 1 && sp.s < S - 1)  // the padding after the split's partials, read with them by merge_splits
    for (int i = G * W + static_cast<int>(threadIdx.x); i < PS; i += kConsumers) ll_store(part + sp.s * PS + i, 0.f, tag);
  for (int i = threadIdx.x; i < G * D; i += kConsumers) {
    const int g = i / D, d = i % D;
    float M, L, O;
    warps_merged<D, G>(scr, parts, g, d, M, L, O);
    Word* out = c.att + static_cast<size_t>(sp.kvh) * G * D + i;
    if (S == 1) {
      ll_store(out, O / L, tag);
    } else if (sp.s < S - 1) {
      Word* mine = part + static_cast<size_t>(sp.s) * PS + g * W;
      ll_store(mine + d, O, tag);
      if (d == 0) ll_store(mine + D, M, tag), ll_store(mine + D + 1, L, tag);
    } else {
      for (int s = 0; s < S - 1; ++s) {
        const Word* theirs = part + static_cast<size_t>(s) * PS + g * W;
        float v[3];  // m, l, o
        ll_gather<3>(tag, v, c.p.poll_ns, [&](int k) { return theirs + (k == 2 ? d : D + k); });
        const float Mn = fmaxf(M, v[0]);
        const float wa = merge_weight(M, Mn), wb = merge_weight(v[0], Mn);
        L = L * wa + v[1] * wb, O = O * wa + v[2] * wb, M = Mn;
      }
      ll_store(out, O / L, tag);
    }
  }
  consumer_sync();  // the merge scratch (c.xs) is read across warps: done before the next phase's writes
}

template <int D, int G, int N>
__device__ __forceinline__ void consume(Ctx& c) {
  const PersistentDecodeArgs& a = c.a;
  const int H = a.hidden, I = a.inter, qd = a.n_heads * D;
  Layer m{};
  for (int l = 0; l < a.layers; ++l) {
    m = layer_mats(a, c.p, l);
    begin_phase(c, l * kPhases + kQkv);
    phase_qkv<D, N>(c, l, m.qkv);
    mark(c, kMarkEnd);
    begin_phase(c, l * kPhases + kAtt);
    phase_att<D, G, N>(c, l);
    mark(c, kMarkEnd);
    begin_phase(c, l * kPhases + kO);
    if (const Tiles r = block_tiles(m.o); c.p.dynamic || r.count() > 0) {
      read_input<N>(c, c.att, qd, tag_of(c, l, kAtt));
      mark(c, kMarkFilled);
      const unsigned tag = tag_of(c, l, kO);
      const Residual res{c.xd, l > 0 ? tag_of(c, l - 1, kDn) : 0, c.p.poll_ns,
                         l == 0 ? a.embed + static_cast<size_t>(c.token) * H : nullptr};
      gemv_tiles(c, m.o, r, [&](int row, float s) { ll_store(c.xo + row, s, tag); }, res);
      mark(c, kMarkComputed);
    }
    mark(c, kMarkEnd);
    begin_phase(c, l * kPhases + kGu);
    if (const Tiles r = block_tiles(m.gu); c.p.dynamic || r.count() > 0) {
      BVec<N> w;
      Vec<N> x;
      load_vec(a.layer[l].mlp_norm, H, w);
      ll_read(c.xo, H, tag_of(c, l, kO), c.p.poll_ns, x);
      mark(c, kMarkReady);
      store_rmsnorm(c, H, x, w);
      mark(c, kMarkFilled);
      const unsigned tag = tag_of(c, l, kGu);
      gemv_tiles(c, m.gu, r, [&](int row, float g, float u) {
        ll_store(c.h + row, g / (1.0f + expf(-g)) * u, tag);
      });
      mark(c, kMarkComputed);
    }
    mark(c, kMarkEnd);
    begin_phase(c, l * kPhases + kDn);
    if (const Tiles r = block_tiles(m.dn); c.p.dynamic || r.count() > 0) {
      read_input<N>(c, c.h, I, tag_of(c, l, kGu));
      mark(c, kMarkFilled);
      const unsigned tag = tag_of(c, l, kDn);
      const Residual res{c.xo, tag_of(c, l, kO), c.p.poll_ns, nullptr};
      gemv_tiles(c, m.dn, r, [&](int row, float s) { ll_store(c.xd + row, s, tag); }, res);
      mark(c, kMarkComputed);
    }
    mark(c, kMarkEnd);
  }
  begin_phase(c, a.layers * kPhases);
  const Mat lm = load_mat(a, c.p, kLoadLm, 0);
  if (const Tiles r = block_tiles(lm); c.p.dynamic || r.count() > 0) {
    BVec<N> w;
    Vec<N> x;
    load_vec(a.final_norm, H, w);
    ll_read(c.xd, H, tag_of(c, a.layers - 1, kDn), c.p.poll_ns, x);
    mark(c, kMarkReady);
    store_rmsnorm(c, H, x, w);
    mark(c, kMarkFilled);
    gemv_tiles(c, lm, r, [&](int row, float s) { a.logits[row] = s; });
    mark(c, kMarkComputed);
  }
  mark(c, kMarkEnd);
}

// The kernel's body; the kernels (decode_persistent.cu: the built-in attention; decode_persistent_linkable.cu: a
// program's, linked at run time) are one line around it.
template <int D, int G, int N>
__device__ __forceinline__ void persistent_decode_body(const PersistentDecodeArgs& a, const Plan& p) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t bars[2 * kMaxStages];
  __shared__ float gpart[2 * kPartFloats];
  __shared__ float red[kConsumerWarps];
  __shared__ float2 rope[kMaxRope];
  __shared__ int stage_tile[kMaxStages];
  Ring ring{smem, bars, bars + kMaxStages, p.stages, p.stage_bytes, stage_tile};
  if (threadIdx.x == 0) {
    for (int s = 0; s < p.stages; ++s) mbar_init(&ring.full[s], 1), mbar_init(&ring.empty[s], kConsumerWarps);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x / 32 == kConsumerWarps) {  // the producer warp
    if (threadIdx.x % 32 == 0) produce(a, p, ring);
    __syncwarp();  // reconverge before the block-wide barrier below
  } else {
    float* res = reinterpret_cast<float*>(smem + static_cast<size_t>(p.stages) * p.stage_bytes);
    const LLLayout ll = ll_layout(a.hidden, a.inter, a.n_heads, a.n_kv, a.head_dim, p.max_splits);
    Ctx c{a, p, ring, 0, 0, 0, 0, res + p.res_floats, res, red, gpart, static_cast<int>(threadIdx.x / 32),
          static_cast<int>(threadIdx.x % 32), 0, 0, a.ll + ll.xo, a.ll + ll.xd, a.ll + ll.qkv, a.ll + ll.att,
          a.ll + ll.h, a.ll + ll.part};
    griddep_wait();
    c.step = *const_cast<volatile unsigned*>(a.sync + kSyncStep) + 1;
    c.pos = *const_cast<volatile int*>(a.pos);
    c.token = *const_cast<volatile int*>(a.token);
    rope_table(c, rope);
    if (a.n_heads != G * a.n_kv) __trap();  // the launcher picks the instantiation
    consume<D, G, N>(c);
  }
  __syncthreads();
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

}  // namespace
}  // namespace gqa::cuda

// The step's side of the device entry's contract (gqa/decode_abi.cuh).
extern "C" __device__ const void* gqa_decode_tile_acquire(gqa_decode_split* s) {
  return gqa::cuda::acquire_stage(*static_cast<gqa::cuda::Ctx*>(s->step));
}
extern "C" __device__ void gqa_decode_tile_release(gqa_decode_split* s) {
  gqa::cuda::release_stage(*static_cast<gqa::cuda::Ctx*>(s->step));
}
extern "C" __device__ void gqa_decode_sync(void) { gqa::cuda::consumer_sync(); }
