// Stock CPU attention over the program ABI. Work items are (sequence, KV head, query tile, KV split):
// all query heads of one KV head share each K/V row read (GQA packing), keys stream in blocks with an
// online softmax, and a long decode is split across threads whose partials are merged at the end.
#include "engine/cpu/attention_bf16.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/dtype.h"

namespace gqa::cpu {

namespace {

constexpr int kMaxHeadDim = 256;
constexpr int kMaxRows = 16;       // (query, head) rows of one work item
constexpr int kKeyBlock = 64;      // keys scored before the softmax update
constexpr int kMinSplitKeys = 512; // a decode split covers at least this many keys

// The ABI's bf16 is the 16-bit pattern that common/dtype.h converts.
inline float bf(gqa_bf16 h) { return bf16_to_f32(h); }
inline gqa_bf16 to_bf(float f) { return f32_to_bf16(f); }

struct Item {
  int seq, kv_head, q0, q1, k0, k1;  // queries [q0, q1) of the sequence, keys [k0, k1) (split range)
  int partial;                       // -1: write out directly; else index of this item's partial rows
};

// Computes one item: rows are (query i in [q0,q1), head h of the group). Leaves unnormalised acc, max
// and sum per row in the given arrays.
void run_item(const gqa_attention_args& a, const Item& it, int q_start, int q_len, int kv_len, float* acc_out,
              float* m_out, float* l_out) {
  const int D = a.head_dim, G = a.num_q_heads / a.num_kv_heads;
  const int nq = it.q1 - it.q0, R = nq * G;
  alignas(64) float qf[kMaxRows][kMaxHeadDim];
  alignas(64) float acc[kMaxRows][kMaxHeadDim];
  alignas(64) float kf[kKeyBlock][kMaxHeadDim];
  alignas(64) float s[kMaxRows][kKeyBlock];
  float m[kMaxRows], l[kMaxRows];
  int last_key[kMaxRows];  // causal limit of each row (inclusive)
  for (int qi = 0; qi < nq; ++qi)
    for (int h = 0; h < G; ++h) {
      const int r = qi * G + h;
      const gqa_bf16* qrow = a.q + (static_cast<int64_t>(q_start + it.q0 + qi) * a.num_q_heads + it.kv_head * G + h) * D;
      for (int i = 0; i < D; ++i) qf[r][i] = bf(qrow[i]) * a.scale;
      std::fill(acc[r], acc[r] + D, 0.f);
      m[r] = -INFINITY;
      l[r] = 0.f;
      last_key[r] = kv_len - q_len + it.q0 + qi;
    }
  const int k_end = std::min(it.k1, last_key[R - 1] + 1);
  const gqa_bf16* kbase = a.k + it.seq * a.k_stride_seq + it.kv_head * a.k_stride_head;
  const gqa_bf16* vbase = a.v + it.seq * a.v_stride_seq + it.kv_head * a.v_stride_head;
  for (int j0 = it.k0; j0 < k_end; j0 += kKeyBlock) {
    const int nb = std::min(kKeyBlock, k_end - j0);
    for (int j = 0; j < nb; ++j) {
      const gqa_bf16* krow = kbase + static_cast<int64_t>(j0 + j) * a.k_stride_pos;
#pragma omp simd
      for (int i = 0; i < D; ++i) kf[j][i] = bf(krow[i]);
    }
    for (int r = 0; r < R; ++r) {
      const int valid = std::min(nb, last_key[r] + 1 - j0);
      float bmax = -INFINITY;
      for (int j = 0; j < nb; ++j) {
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < D; ++i) dot += qf[r][i] * kf[j][i];
        s[r][j] = j < valid ? dot : -INFINITY;
        bmax = std::max(bmax, s[r][j]);
      }
      if (valid <= 0) continue;
      const float mnew = std::max(m[r], bmax);
      const float corr = std::exp(m[r] - mnew);
      float sum = 0.f;
      for (int j = 0; j < nb; ++j) {
        s[r][j] = std::exp(s[r][j] - mnew);
        sum += s[r][j];
      }
      l[r] = l[r] * corr + sum;
      m[r] = mnew;
#pragma omp simd
      for (int i = 0; i < D; ++i) acc[r][i] *= corr;
    }
    // Values: each row of V is converted once and added into every row of the item.
    for (int j = 0; j < nb; ++j) {
      const gqa_bf16* vrow = vbase + static_cast<int64_t>(j0 + j) * a.v_stride_pos;
#pragma omp simd
      for (int i = 0; i < D; ++i) kf[j][i] = bf(vrow[i]);
    }
    for (int r = 0; r < R; ++r) {
      if (last_key[r] < j0) continue;
      for (int j = 0; j < nb; ++j) {
        const float p = s[r][j];
        if (p == 0.f) continue;
#pragma omp simd
        for (int i = 0; i < D; ++i) acc[r][i] += p * kf[j][i];
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    std::memcpy(acc_out + static_cast<int64_t>(r) * D, acc[r], sizeof(float) * D);
    m_out[r] = m[r];
    l_out[r] = l[r];
  }
}

}  // namespace

int stock_attention(const gqa_attention_args* args) {
  const gqa_attention_args& a = *args;
  if (a.abi_version != GQA_ABI_VERSION) return GQA_ERR_INVALID;
  if (a.num_kv_heads <= 0 || a.num_q_heads % a.num_kv_heads != 0 || a.head_dim <= 0) return GQA_ERR_INVALID;
  const int G = a.num_q_heads / a.num_kv_heads, D = a.head_dim;
  if (D > kMaxHeadDim || G > kMaxRows) return GQA_ERR_UNSUPPORTED;
  if (a.workspace_bytes < gqa_workspace_min_bytes(&a)) return GQA_ERR_WORKSPACE;
  const int threads = std::max(1, a.num_threads);
  const int q_tile = std::max(1, kMaxRows / G);

  // Work items; a decode (q_len 1) with few items per thread is split along its keys.
  std::vector<Item> items;
  int partial_rows = 0;
  int base_items = 0;
  for (int s = 0; s < a.num_seqs; ++s) base_items += a.num_kv_heads * ((a.cu_q_lens[s + 1] - a.cu_q_lens[s] + q_tile - 1) / q_tile);
  for (int s = 0; s < a.num_seqs; ++s) {
    const int q_len = a.cu_q_lens[s + 1] - a.cu_q_lens[s], kv_len = a.kv_lens[s];
    if (q_len <= 0 || kv_len < q_len) return GQA_ERR_INVALID;
    int splits = 1;
    if (q_len == 1 && base_items < 2 * threads)
      splits = std::clamp(std::min((2 * threads + base_items - 1) / std::max(base_items, 1), kv_len / kMinSplitKeys), 1,
                          GQA_MAX_KV_SPLITS);
    const int per = (kv_len + splits - 1) / splits;
    for (int g = 0; g < a.num_kv_heads; ++g)
      for (int q0 = 0; q0 < q_len; q0 += q_tile)
        for (int sp = 0; sp < splits; ++sp) {
          Item it{s, g, q0, std::min(q_len, q0 + q_tile), sp * per, std::min(kv_len, (sp + 1) * per), -1};
          if (splits > 1) {
            it.partial = partial_rows;
            partial_rows += G;
          }
          items.push_back(it);
        }
  }
  float* part = static_cast<float*>(a.workspace);  // [partial_rows][D + 2]
  if (static_cast<size_t>(partial_rows) * (D + 2) * 4 > a.workspace_bytes) return GQA_ERR_WORKSPACE;

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (size_t n = 0; n < items.size(); ++n) {
    const Item& it = items[n];
    const int q_start = a.cu_q_lens[it.seq];
    const int q_len = a.cu_q_lens[it.seq + 1] - q_start;
    alignas(64) float acc[kMaxRows * kMaxHeadDim];
    float m[kMaxRows], l[kMaxRows];
    run_item(a, it, q_start, q_len, a.kv_lens[it.seq], acc, m, l);
    const int R = (it.q1 - it.q0) * G;
    for (int r = 0; r < R; ++r) {
      const float* src = acc + static_cast<int64_t>(r) * D;
      if (it.partial >= 0) {
        float* dst = part + static_cast<int64_t>(it.partial + r) * (D + 2);
        std::memcpy(dst, src, sizeof(float) * D);
        dst[D] = m[r];
        dst[D + 1] = l[r];
        continue;
      }
      const int qi = it.q0 + r / G, h = it.kv_head * G + r % G;
      gqa_bf16* o = a.out + (static_cast<int64_t>(q_start + qi) * a.num_q_heads + h) * D;
      const float inv = l[r] > 0 ? 1.f / l[r] : 0.f;
      for (int i = 0; i < D; ++i) o[i] = to_bf(src[i] * inv);
    }
  }
  if (partial_rows == 0) return GQA_OK;

  // Merge the splits of each decode (sequence, head): items of one (seq, kv_head) are consecutive.
  for (size_t n = 0; n < items.size();) {
    size_t e = n;
    while (e < items.size() && items[e].partial >= 0 && items[e].seq == items[n].seq &&
           items[e].kv_head == items[n].kv_head)
      ++e;
    if (e == n) {
      ++n;
      continue;
    }
    for (int r = 0; r < G; ++r) {
      float mx = -INFINITY;
      for (size_t t = n; t < e; ++t) mx = std::max(mx, part[static_cast<int64_t>(items[t].partial + r) * (D + 2) + D]);
      float acc[kMaxHeadDim] = {};
      float sum = 0.f;
      for (size_t t = n; t < e; ++t) {
        const float* p = part + static_cast<int64_t>(items[t].partial + r) * (D + 2);
        if (p[D + 1] == 0.f) continue;
        const float w = std::exp(p[D] - mx);
        sum += p[D + 1] * w;
        for (int i = 0; i < D; ++i) acc[i] += p[i] * w;
      }
      const int h = items[n].kv_head * G + r;
      gqa_bf16* o = a.out + (static_cast<int64_t>(a.cu_q_lens[items[n].seq]) * a.num_q_heads + h) * D;
      const float inv = sum > 0 ? 1.f / sum : 0.f;
      for (int i = 0; i < D; ++i) o[i] = to_bf(acc[i] * inv);
    }
    n = e;
  }
  return GQA_OK;
}

}  // namespace gqa::cpu
