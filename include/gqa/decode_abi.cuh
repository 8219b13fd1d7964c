/* gqa/decode_abi.cuh: the device-level entry of an attention program (ABI v2), CUDA only.
 *
 * ABI v2 = the host entry of gqa/abi.h (unchanged) plus this optional device entry: the decode attention
 * that the CUDA engine's persistent decode step runs inside its one launch per token. A program that defines
 * gqa_decode_attend_v2 is compiled to relocatable device code (LTO IR) and linked with the step at run time
 * (nvJitLink, cached), so `generate --attention PROG.cu` keeps the default step and only its attention
 * changes. The host entry (gqa_attention) stays for prefill and batched calls; a program may define both,
 * or only this one (prefill then runs the engine's own attention).
 *
 * How the step calls it. Per layer, the KV cache of each KV head is cut into num_splits key ranges, one per
 * block ("split"). A block normalises and rotates its G query heads (into shared memory), the split holding
 * the new token's key also writes that key and value to the cache, and then the block's 256 compute threads
 * call gqa_decode_attend_v2 once, together. The step's producer warp streams the split's K/V tiles from the
 * cache into shared memory (bulk copies) while the block still works on the previous phase; the program
 * takes them one by one with gqa_decode_tile_acquire / gqa_decode_tile_release. The program returns partial
 * softmax states; the step merges them (and the splits) in a fixed order, so results are deterministic.
 *
 * Scores are in the log2 domain: s = (q . k) * scale_log2 with scale_log2 = log2(e) / sqrt(head_dim).
 * A partial state of query head g over a set of keys is  m = max s  (-INFINITY when the set is empty),
 * l = sum exp2(s - m),  o[d] = sum exp2(s - m) v[d]  (l = 0 and o = 0 when empty).
 *
 * Rules (the evaluator and the engine's tests check what they can; breaking one is undefined behaviour
 * inside the engine's step, up to a hang that the evaluator's worker is killed for):
 *  - All 256 compute threads (threadIdx.x 0..255, warps 0..7) call the entry together and every thread
 *    returns the same value. threadIdx.x 256..287 is the step's producer warp: it never enters. Never use
 *    __syncthreads() or barrier 0; synchronise the 256 threads with gqa_decode_sync() only.
 *  - Tiles: every thread calls gqa_decode_tile_acquire(s) exactly num_tiles times, in order, and every warp
 *    calls gqa_decode_tile_release(s) (converged, all 32 lanes) once after each acquire, when it has read
 *    that tile for the last time, and before the next acquire (one tile held at a time: the step's ring may
 *    have only two stages). Tile i of the split holds gqa_decode_tile_keys(s, i) keys: K as
 *    [keys][head_dim] bf16, then V as [keys][head_dim] bf16 right after it (the tile starts 128-byte aligned).
 *    A tile is read-only and must not be read after its release.
 *  - Keys: the split's tiles cover its share of the cached keys 0 .. pos-1; with has_new_key the split also
 *    attends the new key at pos, given in new_kv (its value after it) and not in any tile.
 *  - Memory: read q, new_kv and the tiles; write only `scratch` (scratch_bytes bytes of shared memory,
 *    16-byte aligned, contents unspecified on entry) and registers / local memory. No global or other
 *    shared memory writes, no atomics, no __shared__ variables of the program's own (the step plans every
 *    byte of shared memory), no dynamic allocation, no printf, no state kept between calls (every call
 *    starts from its arguments only).
 *  - Result: the entry writes P partial states, 1 <= P <= max_parts, at scratch: state p of query head g is
 *    scratch[(p * group + g) * (head_dim + 2) + d] = o[d] for d < head_dim, then m, then l. The states of
 *    a split together must cover each of its keys exactly once. It returns P. The step synchronises the 256
 *    threads after the call and then reads them.
 *  - Deterministic: the same inputs give the same bits (no order that depends on timing).
 *
 * Optional plan: a program may define
 *     extern "C" __device__ const gqa_decode_plan_v2 gqa_decode_plan = {split_keys, kv_tile_kib, merge_chunk};
 * to set the step's split sizing (a split covers at least split_keys >= 1 keys; at most 16 splits per KV head
 * and one per SM), its K/V bytes per tile (kv_tile_kib KiB, 8..64, a whole number of keys) and how many
 * splits' partials the merging split polls at once (1: one at a time; 0: the step's choice, one at a time for
 * groups of 4 or more, as many as fit for smaller ones). Without it the
 * engine's options (--cuda-option persistent_split_keys=, ...) apply. Out-of-range values fail the link.
 */
#ifndef GQA_DECODE_ABI_CUH
#define GQA_DECODE_ABI_CUH

#include <stdint.h>

/* Version of this contract; the entry's name carries it, so a program written for another version fails to
 * link with a missing gqa_decode_attend_v2. */
#define GQA_DECODE_ABI_VERSION 2

/* Threads that call the entry (8 warps), and the most partial states it may return. */
#define GQA_DECODE_THREADS 256
#define GQA_DECODE_MAX_PARTS 8

typedef struct gqa_decode_split {
  int32_t head_dim;      /* 64 or 128 (a compile-time constant of the step's build for the model) */
  int32_t group;         /* query heads per KV head: 1, 2, 4, 8, or 5 with head_dim 128 (a compile-time constant) */
  int32_t kv_head;       /* the KV head this split attends */
  int32_t split;         /* this split's index, 0 .. num_splits - 1 */
  int32_t num_splits;    /* splits of this KV head at this step */
  int32_t pos;           /* the new token's position: the cache holds keys 0 .. pos - 1 */
  int32_t keys_per_tile; /* keys in a full tile */
  int32_t first_tile;    /* the split's tiles are first_tile + i * tile_step, i < num_tiles; tile t holds */
  int32_t tile_step;     /*   keys t * keys_per_tile .. min((t + 1) * keys_per_tile, pos) - 1 */
  int32_t num_tiles;
  int32_t has_new_key;   /* this split also attends the new key (new_kv) */
  int32_t max_parts;     /* GQA_DECODE_MAX_PARTS */
  int32_t scratch_bytes; /* at least max_parts * group * (head_dim + 2) * 4 */
  float scale_log2;      /* log2(e) / sqrt(head_dim) */
  const float* q;        /* shared memory [group][head_dim]: the query heads, normalised and rotated, unscaled */
  const uint16_t* new_kv; /* shared memory [2][head_dim] bf16: the new key, then its value (has_new_key only) */
  float* scratch;        /* shared memory, scratch_bytes bytes: the result, and the program's working space */
  void* step;            /* the step's own state: only for passing this split back to the functions below */
} gqa_decode_split;

typedef struct gqa_decode_plan_v2 {
  int32_t split_keys;
  int32_t kv_tile_kib;
  int32_t merge_chunk;
} gqa_decode_plan_v2;

#ifdef __CUDACC__
/* Defined by the step (linked in). acquire: waits until the split's next tile is in shared memory and returns
 * it (every thread of the 256 calls it); release: the calling warp is done with its current tile. */
extern "C" __device__ const void* gqa_decode_tile_acquire(gqa_decode_split* s);
extern "C" __device__ void gqa_decode_tile_release(gqa_decode_split* s);
/* Barrier of the 256 compute threads (never __syncthreads: the producer warp does not take part). */
extern "C" __device__ void gqa_decode_sync(void);

/* Keys in tile i (0 .. num_tiles - 1) of the split. */
static __device__ __forceinline__ int gqa_decode_tile_keys(const gqa_decode_split* s, int i) {
  const int first = (s->first_tile + i * s->tile_step) * s->keys_per_tile, left = s->pos - first;
  return left < s->keys_per_tile ? left : s->keys_per_tile;
}

/* The entry a program defines (the step calls it), with this exact signature:
 *     GQA_DECODE_ENTRY int gqa_decode_attend_v2(gqa_decode_split* s) { ... }
 * (the step's link inlines it: head_dim and group are constants inside it, and nothing is a call). */
#define GQA_DECODE_ENTRY extern "C" __device__
extern "C" __device__ int gqa_decode_attend_v2(gqa_decode_split* s);
#endif /* __CUDACC__ */

#endif /* GQA_DECODE_ABI_CUH */
