// Each CUDA kernel family against a float64 host reference on fresh random inputs, outputs poisoned with
// NaN first. Tolerances: GEMV and decode attention compute in float32 from the same bf16 data, so relative
// L2 <= 1e-5; prefill attention writes bf16, so <= 1e-2; device sampling picks the host Sampler's tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/ops.h"
#include "engine/sampler.h"
#include "gpu_test_util.h"

namespace gqa {
namespace {

using cuda::DeviceBuffer;

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  float uniform(float a, float b) { return std::uniform_real_distribution<float>(a, b)(g); }
};

std::vector<uint16_t> random_bf16(Rng& r, size_t n, float scale) {
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_bf16(r.uniform(-scale, scale));
  return v;
}
std::vector<float> random_f32(Rng& r, size_t n, float scale) {
  std::vector<float> v(n);
  for (auto& x : v) x = r.uniform(-scale, scale);
  return v;
}

template <class T>
DeviceBuffer upload(const std::vector<T>& v) {
  DeviceBuffer b(v.size() * sizeof(T));
  GQA_CUDA_CHECK(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}
template <class T>
std::vector<T> download(const DeviceBuffer& b, size_t n) {
  std::vector<T> v(n);
  GQA_CUDA_CHECK(cudaDeviceSynchronize());
  GQA_CUDA_CHECK(cudaMemcpy(v.data(), b.get(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}
void poison(const DeviceBuffer& b) { GQA_CUDA_CHECK(cudaMemset(b.get(), 0xff, b.bytes())); }  // NaN floats

double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

cuda::Exec exec() {
  int sms = 0;
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  return cuda::Exec{nullptr, true, sms};
}

TEST(CudaOps, GemvMatchesReferenceForEveryInputMode) {
  GQA_REQUIRE_GPU();
  Rng r(1);
  struct Shape { int n, k; cuda::GemvInput in; bool acc; };
  const Shape shapes[] = {{4096, 1024, cuda::GemvInput::RmsNorm, false}, {1024, 2048, cuda::GemvInput::Plain, true},
                          {1024, 3072, cuda::GemvInput::SiluMul, true},  {6144, 1024, cuda::GemvInput::RmsNorm, false},
                          {151936, 64, cuda::GemvInput::RmsNorm, false}, {37, 96, cuda::GemvInput::Plain, false},
                          {64, 128, cuda::GemvInput::SiluMul, true}};
  for (const auto& s : shapes) {
    const int in_len = s.in == cuda::GemvInput::SiluMul ? 2 * s.k : s.k;
    auto w = random_bf16(r, static_cast<size_t>(s.n) * s.k, 0.05f);
    auto x = random_f32(r, in_len, 2.0f);
    auto nw = random_bf16(r, s.k, 1.5f);
    auto y0 = random_f32(r, s.n, 1.0f);
    std::vector<double> in(s.k);
    if (s.in == cuda::GemvInput::Plain) {
      for (int i = 0; i < s.k; ++i) in[i] = x[i];
    } else if (s.in == cuda::GemvInput::RmsNorm) {
      double ss = 0;
      for (int i = 0; i < s.k; ++i) ss += double(x[i]) * x[i];
      const double inv = 1.0 / std::sqrt(ss / s.k + 1e-6);
      for (int i = 0; i < s.k; ++i) in[i] = x[i] * inv * bf16_to_f32(nw[i]);
    } else {
      for (int i = 0; i < s.k; ++i) in[i] = x[i] / (1.0 + std::exp(-double(x[i]))) * x[s.k + i];
    }
    std::vector<double> want(s.n);
    for (int n = 0; n < s.n; ++n) {
      double acc = s.acc ? y0[n] : 0.0;
      for (int k = 0; k < s.k; ++k) acc += double(bf16_to_f32(w[static_cast<size_t>(n) * s.k + k])) * in[k];
      want[n] = acc;
    }
    auto dw = upload(w), dx = upload(x), dn = upload(nw);
    DeviceBuffer dy(s.n * sizeof(float));
    if (s.acc)
      GQA_CUDA_CHECK(cudaMemcpy(dy.get(), y0.data(), s.n * sizeof(float), cudaMemcpyHostToDevice));
    else
      poison(dy);
    cuda::GemvArgs a;
    a.w = dw.as<cuda::bf16>(), a.n = s.n, a.k = s.k, a.x = dx.as<float>(), a.norm_w = dn.as<cuda::bf16>();
    a.eps = 1e-6f, a.y = dy.as<float>(), a.accumulate = s.acc;
    cuda::gemv(exec(), s.in, a);
    GQA_CUDA_CHECK_LAUNCH();
    EXPECT_LE(rel_l2(download<float>(dy, s.n), want), 1e-5) << "n " << s.n << " k " << s.k;
  }
}

// The fused decode step's per-layer kernel against a float64 host reference of the same layer math:
// (previous layer) x += wo·att, gu = wgu·rmsnorm(x), x += wdown·silu(g)·u; (this layer) qkv = wqkv·rmsnorm(x),
// q/k RMSNorm + RoPE, k/v into the cache at *pos. Float outputs (x, gu, q) <= 1e-5 / 1e-4 relative L2,
// bf16 cache rows <= 1e-2; every other cache row must stay untouched (poisoned). Called twice (L2 prefetch
// off, then on) to check that the grid barrier and the per-head counters are re-armed.
struct LayerShape {
  int H, I, nh, nkv, D;
  bool prev, next;
};

double rmsnorm_ref(const std::vector<double>& x, const std::vector<uint16_t>& w, std::vector<double>& out) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / x.size() + 1e-6);
  out.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv * bf16_to_f32(w[i]);
  return inv;
}

std::vector<double> matvec_ref(const std::vector<uint16_t>& W, int n, int k, const std::vector<double>& in) {
  std::vector<double> y(n, 0.0);
  for (int r = 0; r < n; ++r) {
    double acc = 0;
    for (int c = 0; c < k; ++c) acc += double(bf16_to_f32(W[static_cast<size_t>(r) * k + c])) * in[c];
    y[r] = acc;
  }
  return y;
}

std::vector<float> as_f32(const std::vector<uint16_t>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = bf16_to_f32(v[i]);
  return f;
}

TEST(CudaOps, DecodeLayerMatchesReference) {
  GQA_REQUIRE_GPU();
  Rng r(5);
  const LayerShape shapes[] = {{1024, 3072, 16, 8, 128, true, true}, {96, 192, 8, 2, 64, true, true},
                               {1024, 3072, 16, 8, 128, false, true}, {64, 128, 16, 8, 128, true, false},
                               {96, 192, 8, 2, 64, false, true}};
  for (const auto& s : shapes) {
    const int qd = s.nh * s.D, kvd = s.nkv * s.D, nqkv = qd + 2 * kvd, cap = 40, pos = 17, vocab = 50, token = 33;
    auto wo = random_bf16(r, static_cast<size_t>(s.H) * qd, 0.05f);
    auto wgu = random_bf16(r, static_cast<size_t>(2 * s.I) * s.H, 0.05f);
    auto wdown = random_bf16(r, static_cast<size_t>(s.H) * s.I, 0.05f);
    auto wqkv = random_bf16(r, static_cast<size_t>(nqkv) * s.H, 0.05f);
    auto mlp_norm = random_bf16(r, s.H, 1.5f), attn_norm = random_bf16(r, s.H, 1.5f);
    auto q_norm = random_bf16(r, s.D, 1.5f), k_norm = random_bf16(r, s.D, 1.5f);
    auto embed = random_bf16(r, static_cast<size_t>(vocab) * s.H, 1.0f);
    auto x0 = random_f32(r, s.H, 2.0f), att = random_f32(r, qd, 1.0f);
    std::vector<float> inv_freq(s.D / 2);
    for (int i = 0; i < s.D / 2; ++i) inv_freq[i] = static_cast<float>(1.0 / std::pow(1e6, 2.0 * i / s.D));

    // Reference.
    std::vector<double> x(s.H), h, gu, qkv;
    for (int i = 0; i < s.H; ++i) x[i] = s.prev ? x0[i] : bf16_to_f32(embed[static_cast<size_t>(token) * s.H + i]);
    if (s.prev) {
      std::vector<double> a(att.begin(), att.end());
      auto o = matvec_ref(wo, s.H, qd, a);
      for (int i = 0; i < s.H; ++i) x[i] += o[i];
      rmsnorm_ref(x, mlp_norm, h);
      gu = matvec_ref(wgu, 2 * s.I, s.H, h);
      std::vector<double> act(s.I);
      for (int i = 0; i < s.I; ++i) act[i] = gu[i] / (1.0 + std::exp(-gu[i])) * gu[s.I + i];
      auto d = matvec_ref(wdown, s.H, s.I, act);
      for (int i = 0; i < s.H; ++i) x[i] += d[i];
    }
    std::vector<double> q_want, k_want, v_want;
    if (s.next) {
      rmsnorm_ref(x, attn_norm, h);
      qkv = matvec_ref(wqkv, nqkv, s.H, h);
      for (int head = 0; head < s.nh + s.nkv; ++head) {
        std::vector<double> v(qkv.begin() + head * s.D, qkv.begin() + (head + 1) * s.D), n;
        rmsnorm_ref(v, head < s.nh ? q_norm : k_norm, n);
        std::vector<double> rot(s.D);
        for (int i = 0; i < s.D / 2; ++i) {
          const double ang = double(pos) * inv_freq[i], c = std::cos(ang), sn = std::sin(ang);
          rot[i] = n[i] * c - n[i + s.D / 2] * sn;
          rot[i + s.D / 2] = n[i + s.D / 2] * c + n[i] * sn;
        }
        (head < s.nh ? q_want : k_want).insert((head < s.nh ? q_want : k_want).end(), rot.begin(), rot.end());
      }
      v_want.assign(qkv.begin() + qd + kvd, qkv.end());
    }

    auto d_wo = upload(wo), d_wgu = upload(wgu), d_wdown = upload(wdown), d_wqkv = upload(wqkv);
    auto d_mn = upload(mlp_norm), d_an = upload(attn_norm), d_qn = upload(q_norm), d_kn = upload(k_norm);
    auto d_emb = upload(embed), d_att = upload(att), d_inv = upload(inv_freq);
    auto d_pos = upload(std::vector<int>{pos}), d_tok = upload(std::vector<int32_t>{token});
    DeviceBuffer d_x(s.H * 4), d_gu(2 * s.I * 4), d_qkv(nqkv * 4), d_q(qd * 4);
    DeviceBuffer d_k(static_cast<size_t>(s.nkv) * cap * s.D * 2), d_v(d_k.bytes());
    DeviceBuffer d_sync(cuda::decode_layer_sync_words(s.nh, s.nkv) * 4);
    GQA_CUDA_CHECK(cudaMemset(d_sync.get(), 0, d_sync.bytes()));
    cuda::DecodeLayerArgs a;
    a.hidden = s.H, a.inter = s.I, a.n_heads = s.nh, a.n_kv = s.nkv, a.head_dim = s.D, a.eps = 1e-6f;
    if (s.prev) {
      a.wo = d_wo.as<cuda::bf16>(), a.mlp_norm = d_mn.as<cuda::bf16>(), a.wgu = d_wgu.as<cuda::bf16>();
      a.wdown = d_wdown.as<cuda::bf16>(), a.att = d_att.as<float>(), a.gu = d_gu.as<float>();
    } else {
      a.embed = d_emb.as<cuda::bf16>(), a.token = d_tok.as<int32_t>();
    }
    if (s.next) {
      a.attn_norm = d_an.as<cuda::bf16>(), a.wqkv = d_wqkv.as<cuda::bf16>(), a.q_norm = d_qn.as<cuda::bf16>();
      a.k_norm = d_kn.as<cuda::bf16>(), a.inv_freq = d_inv.as<float>(), a.qkv = d_qkv.as<float>();
      a.q_out = d_q.as<float>(), a.k_cache = d_k.as<cuda::bf16>(), a.v_cache = d_v.as<cuda::bf16>(), a.capacity = cap;
    }
    a.pos = d_pos.as<int>(), a.x = d_x.as<float>(), a.sync = d_sync.as<unsigned>();
    const std::string where = "H " + std::to_string(s.H) + " heads " + std::to_string(s.nh) + ":" +
                              std::to_string(s.nkv) + " prev " + std::to_string(s.prev) + " next " +
                              std::to_string(s.next);
    for (int rep = 0; rep < 2; ++rep) {
      poison(d_gu), poison(d_qkv), poison(d_q), poison(d_k), poison(d_v);
      if (s.prev)
        GQA_CUDA_CHECK(cudaMemcpy(d_x.get(), x0.data(), s.H * 4, cudaMemcpyHostToDevice));
      else
        poison(d_x);
      // Twice: the grid barrier's counter is left re-armed by the first call.
      cuda::decode_layer(exec(), a);
      GQA_CUDA_CHECK_LAUNCH();
      EXPECT_LE(rel_l2(download<float>(d_x, s.H), x), 1e-5) << where << " x, call " << rep;
      if (s.prev) {
        EXPECT_LE(rel_l2(download<float>(d_gu, 2 * s.I), gu), 1e-5) << where << " gu, call " << rep;
      }
      if (!s.next) continue;
      EXPECT_LE(rel_l2(download<float>(d_q, qd), q_want), 1e-4) << where << " q, call " << rep;
      const auto kc = download<uint16_t>(d_k, d_k.bytes() / 2), vc = download<uint16_t>(d_v, d_v.bytes() / 2);
      std::vector<uint16_t> k_row, v_row;
      size_t untouched = 0, others = 0;
      for (int g = 0; g < s.nkv; ++g)
        for (int p = 0; p < cap; ++p)
          for (int i = 0; i < s.D; ++i) {
            const size_t idx = (static_cast<size_t>(g) * cap + p) * s.D + i;
            if (p == pos) {
              k_row.push_back(kc[idx]), v_row.push_back(vc[idx]);
            } else {
              ++others;
              untouched += (kc[idx] == 0xffff) + (vc[idx] == 0xffff);
            }
          }
      EXPECT_LE(rel_l2(as_f32(k_row), k_want), 1e-2) << where << " k cache row, call " << rep;
      EXPECT_LE(rel_l2(as_f32(v_row), v_want), 1e-2) << where << " v cache row, call " << rep;
      EXPECT_EQ(untouched, 2 * others) << where << ": cache rows other than the position were written";
    }
  }
}

// Host reference of one query head's attention over keys 0..len-1 of a [n_kv][cap][D] bf16 cache.
std::vector<double> ref_attention(const float* q, const std::vector<uint16_t>& K, const std::vector<uint16_t>& Vc,
                                  int kvh, int cap, int D, int len, double scale) {
  std::vector<double> s(len), out(D, 0.0);
  double mx = -INFINITY;
  for (int j = 0; j < len; ++j) {
    double d = 0;
    for (int i = 0; i < D; ++i) d += double(q[i]) * bf16_to_f32(K[(static_cast<size_t>(kvh) * cap + j) * D + i]);
    s[j] = d * scale;
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (int j = 0; j < len; ++j) sum += (s[j] = std::exp(s[j] - mx));
  for (int j = 0; j < len; ++j)
    for (int i = 0; i < D; ++i) out[i] += s[j] / sum * bf16_to_f32(Vc[(static_cast<size_t>(kvh) * cap + j) * D + i]);
  return out;
}

TEST(CudaOps, DecodeAttentionMatchesReferenceAcrossSplits) {
  GQA_REQUIRE_GPU();
  Rng r(2);
  struct Case { int nh, nkv, D, cap, pos, splits; };
  const Case cases[] = {{16, 8, 128, 300, 0, 1},   {16, 8, 128, 300, 6, 5},   {16, 8, 128, 300, 299, 66},
                        {16, 8, 128, 300, 137, 3}, {8, 2, 64, 1000, 999, 33}, {8, 8, 64, 50, 20, 64},
                        {32, 4, 128, 70, 69, 2}};
  for (const auto& c : cases) {
    auto q = random_f32(r, static_cast<size_t>(c.nh) * c.D, 1.0f);
    auto K = random_bf16(r, static_cast<size_t>(c.nkv) * c.cap * c.D, 1.0f);
    auto V = random_bf16(r, K.size(), 1.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    std::vector<double> want;
    const int G = c.nh / c.nkv;
    for (int h = 0; h < c.nh; ++h) {
      auto o = ref_attention(q.data() + h * c.D, K, V, h / G, c.cap, c.D, c.pos + 1, scale);
      want.insert(want.end(), o.begin(), o.end());
    }
    auto dq = upload(q), dk = upload(K), dv = upload(V), dpos = upload(std::vector<int>{c.pos});
    DeviceBuffer po(static_cast<size_t>(c.splits) * c.nh * c.D * 4), pml(static_cast<size_t>(c.splits) * c.nh * 8),
        out(static_cast<size_t>(c.nh) * c.D * 4), counters(static_cast<size_t>(c.nkv) * 4);
    poison(po), poison(pml), poison(out);
    GQA_CUDA_CHECK(cudaMemset(counters.get(), 0, counters.bytes()));
    cuda::DecodeAttentionArgs a;
    a.q = dq.as<float>(), a.k_cache = dk.as<cuda::bf16>(), a.v_cache = dv.as<cuda::bf16>(), a.capacity = c.cap;
    a.pos = dpos.as<int>(), a.n_heads = c.nh, a.n_kv = c.nkv, a.head_dim = c.D, a.n_splits = c.splits, a.scale = scale;
    a.part_o = po.as<float>(), a.part_ml = pml.as<float>(), a.counters = counters.as<unsigned>();
    a.out = out.as<float>();
    for (int rep = 0; rep < 2; ++rep) {  // the second call checks that the counters were re-armed
      if (rep == 1) poison(out);
      cuda::attention_decode(exec(), a);
      GQA_CUDA_CHECK_LAUNCH();
    }
    EXPECT_LE(rel_l2(download<float>(out, want.size()), want), 1e-5)
        << "heads " << c.nh << ":" << c.nkv << " D " << c.D << " pos " << c.pos << " splits " << c.splits;
  }
}

TEST(CudaOps, PrefillAttentionIsCausalAndMatchesReference) {
  GQA_REQUIRE_GPU();
  Rng r(3);
  struct Case { int nh, nkv, D, T, pos0; };
  const Case cases[] = {{16, 8, 128, 70, 30}, {8, 2, 64, 33, 0}, {16, 8, 128, 1, 5}, {4, 4, 64, 100, 200}};
  for (const auto& c : cases) {
    const int cap = c.pos0 + c.T + 3;
    auto q = random_f32(r, static_cast<size_t>(c.T) * c.nh * c.D, 1.0f);
    auto K = random_bf16(r, static_cast<size_t>(c.nkv) * cap * c.D, 1.0f);
    auto V = random_bf16(r, K.size(), 1.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    const int G = c.nh / c.nkv;
    std::vector<double> want;
    for (int t = 0; t < c.T; ++t)
      for (int h = 0; h < c.nh; ++h) {
        auto o = ref_attention(q.data() + (static_cast<size_t>(t) * c.nh + h) * c.D, K, V, h / G, cap, c.D,
                               c.pos0 + t + 1, scale);
        want.insert(want.end(), o.begin(), o.end());
      }
    auto dq = upload(q), dk = upload(K), dv = upload(V), dpos = upload(std::vector<int>{c.pos0});
    DeviceBuffer out(want.size() * 2);
    poison(out);
    cuda::PrefillAttentionArgs a;
    a.q = dq.as<float>(), a.T = c.T, a.k_cache = dk.as<cuda::bf16>(), a.v_cache = dv.as<cuda::bf16>();
    a.capacity = cap, a.pos = dpos.as<int>(), a.n_heads = c.nh, a.n_kv = c.nkv, a.head_dim = c.D, a.scale = scale;
    a.out = out.as<cuda::bf16>();
    cuda::attention_prefill(exec(), a);
    GQA_CUDA_CHECK_LAUNCH();
    auto raw = download<uint16_t>(out, want.size());
    std::vector<float> got(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) got[i] = bf16_to_f32(raw[i]);
    EXPECT_LE(rel_l2(got, want), 1e-2) << "T " << c.T << " pos0 " << c.pos0 << " D " << c.D;
  }
}

TEST(CudaOps, DeviceSamplerPicksTheHostSamplersTokens) {
  GQA_REQUIRE_GPU();
  Rng r(4);
  const int vocab = 151936;
  const SamplingParams cases[] = {{0.0f, 0, 1.0f, 1},  {0.9f, 0, 1.0f, 2}, {0.6f, 20, 0.95f, 3},
                                  {1.0f, 64, 1.0f, 4}, {2.0f, 1, 1.0f, 5}, {0.8f, 40, 0.3f, 6}};
  DeviceBuffer scratch(cuda::sample_scratch_bytes(vocab)), token(4), rng(8);
  for (const auto& sp : cases) {
    Sampler host(sp);
    for (int draw = 0; draw < 20; ++draw) {
      auto logits = random_f32(r, vocab, 4.0f);
      logits[static_cast<size_t>(r.uniform(0, vocab - 1))] = 9.0f;  // a clear favourite now and then
      const unsigned long long state = host.rng_state();
      const int32_t want = host.sample(logits.data(), vocab);
      auto dl = upload(logits);
      GQA_CUDA_CHECK(cudaMemcpy(rng.get(), &state, 8, cudaMemcpyHostToDevice));
      GQA_CUDA_CHECK(cudaMemset(token.get(), 0xff, 4));
      cuda::SampleArgs a;
      a.logits = dl.as<float>(), a.vocab = vocab, a.temperature = sp.temperature, a.top_k = sp.top_k;
      a.top_p = sp.top_p, a.rng_state = rng.as<unsigned long long>(), a.token = token.as<int32_t>();
      a.scratch = scratch.get();
      cuda::sample(exec(), a);
      GQA_CUDA_CHECK_LAUNCH();
      EXPECT_EQ(download<int32_t>(token, 1)[0], want)
          << "temperature " << sp.temperature << " top_k " << sp.top_k << " top_p " << sp.top_p << " draw " << draw;
      if (sp.temperature > 0) {
        EXPECT_EQ(download<unsigned long long>(rng, 1)[0], host.rng_state());
      }
    }
  }
}

// The persistent step's plan from the model's shapes and the GPU (host arithmetic; runs without a GPU): on an
// H100/H200 (132 SMs, 227 KiB of shared memory per block) Qwen3-0.6B gets the narrow build and three 64 KiB
// stages, Qwen3-8B the wide build, two stages (its 12,288-element input takes 73 KiB) and 2-row down tiles, which
// (at most 4 rows) go to CUDA cores; 14B's intermediate size (unless 57 KiB stages are asked for), tiles too large
// for two stages and more than 8 rows on CUDA cores are refused.
TEST(PersistentPlan, FromTheModelShapesAndTheGpu) {
  auto args = [](int hidden, int inter, int heads, int tile_kib = 64) {
    cuda::PersistentDecodeArgs a;
    a.layers = 2, a.hidden = hidden, a.inter = inter, a.n_heads = heads, a.n_kv = 8, a.head_dim = 128;
    a.vocab = 151936, a.tile_kib = tile_kib;
    return a;
  };
  constexpr int kSms = 132, kOptin = 232448;
  const std::string small = cuda::persistent_decode_plan(args(1024, 3072, 16), kSms, kOptin);
  for (const char* want : {"narrow build", "132 blocks", "3 ring stages of 64 KiB", "qkv 32, o 8, gate/up 16 pairs, down 8"})
    EXPECT_NE(small.find(want), std::string::npos) << want << " in: " << small;
  const std::string large = cuda::persistent_decode_plan(args(4096, 12288, 32), kSms, kOptin);
  std::printf("Qwen3-0.6B: %s\nQwen3-8B: %s\n", small.c_str(), large.c_str());
  for (const char* want : {"wide build", "2 ring stages of 64 KiB", "down 2,", "input buffer 73 KiB",
                           "tiles of up to 4 rows on CUDA cores"})
    EXPECT_NE(large.find(want), std::string::npos) << want << " in: " << large;
  // tile_kib 0: the largest stage up to 64 KiB with room for three: 0.6B keeps 64 KiB (three fit), 8B gets three
  // stages that still hold two rows of down (2 x 12,296 bf16).
  EXPECT_NE(cuda::persistent_decode_plan(args(1024, 3072, 16, 0), kSms, kOptin).find("3 ring stages of 64 KiB"),
            std::string::npos);
  const std::string autos = cuda::persistent_decode_plan(args(4096, 12288, 32, 0), kSms, kOptin);
  std::printf("Qwen3-8B, tile_kib 0: %s\n", autos.c_str());
  EXPECT_NE(autos.find("3 ring stages of 47 KiB"), std::string::npos) << autos;
  EXPECT_NE(autos.find("down 2,"), std::string::npos) << autos;
  // Balanced tiles: Qwen3-4B's o_proj in 8-row tiles gives some blocks 24 rows and others 16 (19.4 on average);
  // 5-row tiles give every block 15 or 20. Its qkv (13 -> 12 rows), gate/up (6 -> 5 pairs) and down (3 -> 2)
  // move the same way; 8B's are balanced already. By default (-1) only where it was measured to pay: 4B's
  // matrices; not 1.7B's down (5 rows to 4 would move it to CUDA cores) nor 0.6B's gate/up (two tiles per block).
  cuda::PersistentDecodeArgs q4 = args(2560, 9728, 32);
  q4.balance_tiles = 0;
  EXPECT_NE(cuda::persistent_decode_plan(q4, kSms, kOptin).find("qkv 13, o 8, gate/up 6 pairs, down 3,"),
            std::string::npos);
  const std::string q4_default = cuda::persistent_decode_plan(args(2560, 9728, 32), kSms, kOptin);
  EXPECT_NE(q4_default.find("qkv 12, o 5, gate/up 5 pairs, down 2, lm_head 13;"), std::string::npos) << q4_default;
  const std::string q17 = cuda::persistent_decode_plan(args(2048, 6144, 16), kSms, kOptin);
  EXPECT_NE(q17.find("qkv 16, o 16, gate/up 8 pairs, down 5, lm_head 16;"), std::string::npos) << q17;
  cuda::PersistentDecodeArgs q17_all = args(2048, 6144, 16);
  q17_all.balance_tiles = 31;
  EXPECT_NE(cuda::persistent_decode_plan(q17_all, kSms, kOptin).find("down 4,"), std::string::npos);
  EXPECT_NE(small.find("lm_head 32;"), std::string::npos) << small;
  // The merge chunk by default: as many splits as fit for groups of 2 (0.6B), one per poll for groups of 4 (8B).
  EXPECT_EQ(small.find("merge chunk 1;"), std::string::npos) << small;
  EXPECT_NE(large.find("merge chunk 1;"), std::string::npos) << large;
  q4.balance_tiles = 2;  // o_proj's bit only
  EXPECT_NE(cuda::persistent_decode_plan(q4, kSms, kOptin).find("qkv 13, o 5, gate/up 6 pairs, down 3,"),
            std::string::npos);
  q4.balance_tiles = 31;
  const std::string bal = cuda::persistent_decode_plan(q4, kSms, kOptin);
  std::printf("Qwen3-4B, balanced tiles: %s\n", bal.c_str());
  EXPECT_NE(bal.find("qkv 12, o 5, gate/up 5 pairs, down 2,"), std::string::npos) << bal;
  cuda::PersistentDecodeArgs q8 = args(4096, 12288, 32);
  q8.balance_tiles = 31;
  EXPECT_NE(cuda::persistent_decode_plan(q8, kSms, kOptin).find("qkv 8, o 8, gate/up 4 pairs, down 2,"),
            std::string::npos);
  // Qwen3-14B: 5 query heads per KV head; its intermediate's terms (103 KiB) leave room for two stages of 57 KiB,
  // which hold one row of down (17,416 bf16): refused when the stages shrink to that (the engine decodes fused,
  // log v23), planned when 57 KiB is asked for.
  try {
    cuda::persistent_decode_plan(args(5120, 17408, 40), kSms, kOptin);
    ADD_FAILURE() << "14B's stages shrunk to one row of down";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fit beside the input buffer only at 57 KiB, where a tile holds one row of "
                                         "down_proj (17408 bf16)"), std::string::npos) << e.what();
  }
  const std::string q14 = cuda::persistent_decode_plan(args(5120, 17408, 40, 57), kSms, kOptin);
  std::printf("Qwen3-14B, tile_kib 57: %s\n", q14.c_str());
  for (const char* want : {"wide build", "2 ring stages of 57 KiB", "down 1,", "input buffer 103 KiB"})
    EXPECT_NE(q14.find(want), std::string::npos) << want << " in: " << q14;
  // Qwen3-32B: two stages fit beside its intermediate's terms (150 KiB) only at 32 KiB, which a row of down
  // (25,600 bf16, 50 KiB) does not.
  try {
    cuda::persistent_decode_plan(args(5120, 25600, 64), kSms, kOptin);
    ADD_FAILURE() << "32B's down rows in 32 KiB stages";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a weight row of 25600 bf16 does not fit a ring stage of 32 KiB"),
              std::string::npos) << e.what();
  }
  cuda::PersistentDecodeArgs fma = args(4096, 12288, 32);
  fma.fma_rows = 9;
  EXPECT_THROW(cuda::persistent_decode_plan(fma, kSms, kOptin), Error);
  // Stages of which two do not fit beside 8B's input buffer shrink to the largest that do.
  const std::string shrunk = cuda::persistent_decode_plan(args(4096, 12288, 32, 96), kSms, kOptin);
  EXPECT_NE(shrunk.find("2 ring stages of 72 KiB"), std::string::npos) << shrunk;
  // Not below 32 KiB: an intermediate of 30,720 leaves room for two stages of 32 KiB only, too small for its row.
  try {
    cuda::persistent_decode_plan(args(4096, 30720, 32), kSms, kOptin);
    ADD_FAILURE() << "an intermediate of 30,720 beside two stages";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a weight row of 30720 bf16 does not fit a ring stage of 32 KiB"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gqa
