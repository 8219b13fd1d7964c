// Each CUDA kernel family against a float64 host reference on fresh random inputs, outputs poisoned with
// NaN first. Tolerances: GEMV and decode attention compute in float32 from the same bf16 data, so relative
// L2 <= 1e-5; prefill attention writes bf16, so <= 1e-2; device sampling picks the host Sampler's tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/dtype.h"
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

}  // namespace
}  // namespace gqa
