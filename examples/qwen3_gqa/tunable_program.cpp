// Tunable GQA attention for the CPU target: online softmax over key blocks, optional GQA packing (the
// query heads of a KV head share each K/V row read), split-KV for long decodes. Every EVOLVE-KNOB line is
// a value the offline mutator may set to one of the listed values; the rest of the block is for LLMs.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gqa/abi.h"

// EVOLVE-BLOCK-START
constexpr int KV_BLOCK = 64;           // EVOLVE-KNOB values=16,32,64,128
constexpr int Q_TILE = 8;              // EVOLVE-KNOB values=1,2,4,8,16
constexpr int GQA_PACK = 1;            // EVOLVE-KNOB values=0,1
constexpr int MIN_SPLIT_KEYS = 512;    // EVOLVE-KNOB values=256,512,1024,2048,4096
constexpr int SPLITS_PER_THREAD = 2;   // EVOLVE-KNOB values=1,2,4
constexpr int SCHEDULE_CHUNK = 1;      // EVOLVE-KNOB values=1,2,4

constexpr int MAX_D = 256;
constexpr int MAX_GROUP = 16;
constexpr int MAX_ROWS = Q_TILE * MAX_GROUP;

static inline float bf(gqa_bf16 h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static inline gqa_bf16 to_bf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<gqa_bf16>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<gqa_bf16>(u >> 16);
}

// One work item: queries [qa, qb) of sequence s, query heads [h0, h0 + nh) (all reading KV head g),
// keys [k0, k1). Unnormalised output rows, max and sum go to acc/m/l (row = query-major, then head).
static void run_item(const gqa_attention_args* a, int s, int g, int h0, int nh, int qa, int qb, int k0, int k1,
                     float* acc, float* m, float* l) {
  const int D = a->head_dim;
  const int q_start = a->cu_q_lens[s], q_len = a->cu_q_lens[s + 1] - q_start, kv_len = a->kv_lens[s];
  const int R = (qb - qa) * nh;
  alignas(64) float qf[MAX_ROWS][MAX_D];
  alignas(64) float blk[KV_BLOCK][MAX_D];
  alignas(64) float p[MAX_ROWS][KV_BLOCK];
  int last[MAX_ROWS];
  for (int r = 0; r < R; ++r) {
    const int qi = qa + r / nh, h = h0 + r % nh;
    const gqa_bf16* q = a->q + (static_cast<int64_t>(q_start + qi) * a->num_q_heads + h) * D;
    for (int i = 0; i < D; ++i) qf[r][i] = bf(q[i]) * a->scale;
    std::fill(acc + static_cast<int64_t>(r) * D, acc + static_cast<int64_t>(r + 1) * D, 0.f);
    m[r] = -INFINITY;
    l[r] = 0.f;
    last[r] = kv_len - q_len + qi;
  }
  const int end = std::min(k1, last[R - 1] + 1);
  const gqa_bf16* kb = a->k + s * a->k_stride_seq + g * a->k_stride_head;
  const gqa_bf16* vb = a->v + s * a->v_stride_seq + g * a->v_stride_head;
  for (int j0 = k0; j0 < end; j0 += KV_BLOCK) {
    const int nb = std::min(KV_BLOCK, end - j0);
    for (int j = 0; j < nb; ++j) {
      const gqa_bf16* kr = kb + static_cast<int64_t>(j0 + j) * a->k_stride_pos;
#pragma omp simd
      for (int i = 0; i < D; ++i) blk[j][i] = bf(kr[i]);
    }
    for (int r = 0; r < R; ++r) {
      const int valid = std::min(nb, last[r] + 1 - j0);
      if (valid <= 0) continue;
      float bmax = -INFINITY;
      for (int j = 0; j < valid; ++j) {
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < D; ++i) dot += qf[r][i] * blk[j][i];
        p[r][j] = dot;
        bmax = std::max(bmax, dot);
      }
      const float mn = std::max(m[r], bmax), corr = std::exp(m[r] - mn);
      float sum = 0.f;
      for (int j = 0; j < nb; ++j) {
        p[r][j] = j < valid ? std::exp(p[r][j] - mn) : 0.f;
        sum += p[r][j];
      }
      l[r] = l[r] * corr + sum;
      m[r] = mn;
      float* ar = acc + static_cast<int64_t>(r) * D;
#pragma omp simd
      for (int i = 0; i < D; ++i) ar[i] *= corr;
    }
    for (int j = 0; j < nb; ++j) {
      const gqa_bf16* vr = vb + static_cast<int64_t>(j0 + j) * a->v_stride_pos;
#pragma omp simd
      for (int i = 0; i < D; ++i) blk[j][i] = bf(vr[i]);
    }
    for (int r = 0; r < R; ++r) {
      if (last[r] < j0) continue;
      float* ar = acc + static_cast<int64_t>(r) * D;
      for (int j = 0; j < nb; ++j) {
        const float w = p[r][j];
#pragma omp simd
        for (int i = 0; i < D; ++i) ar[i] += w * blk[j][i];
      }
    }
  }
}

static int attention(const gqa_attention_args* a) {
  if (a->num_kv_heads <= 0 || a->num_q_heads % a->num_kv_heads != 0) return GQA_ERR_INVALID;
  const int D = a->head_dim, G = a->num_q_heads / a->num_kv_heads;
  if (D > MAX_D || G > MAX_GROUP) return GQA_ERR_UNSUPPORTED;
  if (a->workspace_bytes < gqa_workspace_min_bytes(a)) return GQA_ERR_WORKSPACE;
  const int threads = a->num_threads > 0 ? a->num_threads : 1;
  const int hpu = GQA_PACK ? G : 1;                // query heads per work unit
  const int units = a->num_q_heads / hpu;          // work units per query tile
  // Work items of sequence s: units x query tiles x splits; offsets kept in the workspace (no allocation).
  float* partials = static_cast<float*>(a->workspace);
  int* first_item = reinterpret_cast<int*>(partials + static_cast<size_t>(GQA_MAX_KV_SPLITS) * a->num_seqs *
                                                          a->num_q_heads * (D + 2));
  int* splits_of = first_item + a->num_seqs + 1;
  int decode_units = 0;
  for (int s = 0; s < a->num_seqs; ++s) decode_units += units;
  int total = 0;
  for (int s = 0; s < a->num_seqs; ++s) {
    const int q_len = a->cu_q_lens[s + 1] - a->cu_q_lens[s], kv_len = a->kv_lens[s];
    int splits = 1;
    if (q_len == 1) {
      const int want = (SPLITS_PER_THREAD * threads + decode_units - 1) / decode_units;
      splits = std::max(1, std::min({want, kv_len / MIN_SPLIT_KEYS, GQA_MAX_KV_SPLITS}));
    }
    splits_of[s] = splits;
    first_item[s] = total;
    total += units * ((q_len + Q_TILE - 1) / Q_TILE) * splits;
  }
  first_item[a->num_seqs] = total;

#pragma omp parallel for schedule(dynamic, SCHEDULE_CHUNK) num_threads(threads)
  for (int n = 0; n < total; ++n) {
    int s = 0;
    while (first_item[s + 1] <= n) ++s;
    const int local = n - first_item[s], splits = splits_of[s];
    const int q_len = a->cu_q_lens[s + 1] - a->cu_q_lens[s], kv_len = a->kv_lens[s];
    const int split = local % splits, unit = (local / splits) % units, tile = local / splits / units;
    const int h0 = unit * hpu, g = h0 / G;
    const int qa = tile * Q_TILE, qb = std::min(q_len, qa + Q_TILE);
    const int per = (kv_len + splits - 1) / splits;
    alignas(64) float acc[MAX_ROWS * MAX_D];
    float m[MAX_ROWS], l[MAX_ROWS];
    run_item(a, s, g, h0, hpu, qa, qb, split * per, std::min(kv_len, (split + 1) * per), acc, m, l);
    for (int r = 0; r < (qb - qa) * hpu; ++r) {
      const float* src = acc + static_cast<int64_t>(r) * D;
      const int qi = qa + r / hpu, h = h0 + r % hpu;
      if (splits > 1) {  // partial of (s, h, split)
        float* dst = partials + ((static_cast<size_t>(s) * a->num_q_heads + h) * GQA_MAX_KV_SPLITS + split) * (D + 2);
        std::memcpy(dst, src, sizeof(float) * D);
        dst[D] = m[r];
        dst[D + 1] = l[r];
        continue;
      }
      gqa_bf16* o = a->out + (static_cast<int64_t>(a->cu_q_lens[s] + qi) * a->num_q_heads + h) * D;
      const float inv = l[r] > 0 ? 1.f / l[r] : 0.f;
      for (int i = 0; i < D; ++i) o[i] = to_bf(src[i] * inv);
    }
  }
  // Merge the splits of every split decode (sequence, head).
#pragma omp parallel for num_threads(threads)
  for (int sh = 0; sh < a->num_seqs * a->num_q_heads; ++sh) {
    const int s = sh / a->num_q_heads, h = sh % a->num_q_heads, splits = splits_of[s];
    if (splits == 1) continue;
    const float* base = partials + static_cast<size_t>(sh) * GQA_MAX_KV_SPLITS * (D + 2);
    float mx = -INFINITY;
    for (int t = 0; t < splits; ++t) mx = std::max(mx, base[t * (D + 2) + D]);
    float acc[MAX_D] = {};
    float sum = 0.f;
    for (int t = 0; t < splits; ++t) {
      const float* pt = base + t * (D + 2);
      if (pt[D + 1] == 0.f) continue;
      const float w = std::exp(pt[D] - mx);
      sum += pt[D + 1] * w;
      for (int i = 0; i < D; ++i) acc[i] += pt[i] * w;
    }
    gqa_bf16* o = a->out + (static_cast<int64_t>(a->cu_q_lens[s]) * a->num_q_heads + h) * D;
    for (int i = 0; i < D; ++i) o[i] = to_bf(acc[i] / sum);
  }
  return GQA_OK;
}
// EVOLVE-BLOCK-END

extern "C" GQA_EXPORT int gqa_abi_version(void) { return GQA_ABI_VERSION; }

extern "C" GQA_EXPORT int gqa_attention(const gqa_attention_args* args) { return attention(args); }
