// CPU kernels against straightforward double-precision formulas on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/ops.h"

namespace gqa {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Reference attention in double, written independently of the kernel's loop structure.
std::vector<double> ref_attention(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                                  int T, int pos0, int nh, int nkv, int d) {
  std::vector<double> out(static_cast<size_t>(T * nh * d), 0.0);
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < nh; ++h) {
      int kvh = h * nkv / nh;
      std::vector<double> s(pos0 + t + 1);
      double mx = -1e300;
      for (int j = 0; j <= pos0 + t; ++j) {
        double acc = 0;
        for (int i = 0; i < d; ++i) acc += double(q[(t * nh + h) * d + i]) * k[(j * nkv + kvh) * d + i];
        s[j] = acc / std::sqrt(double(d));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - mx));
      for (int j = 0; j <= pos0 + t; ++j)
        for (int i = 0; i < d; ++i) out[(t * nh + h) * d + i] += s[j] / sum * v[(j * nkv + kvh) * d + i];
    }
  return out;
}

TEST(CpuAttention, MatchesDoubleReferenceWithCausalMaskAndGqa) {
  for (auto [T, pos0, nh, nkv, d] : std::vector<std::array<int, 5>>{{1, 0, 4, 2, 16}, {1, 37, 16, 8, 128}, {5, 3, 8, 2, 64}, {7, 0, 6, 3, 32}}) {
    const int len = pos0 + T;
    auto q = randn(size_t(T * nh * d), 1 + T);
    auto k = randn(size_t(len * nkv * d), 2 + pos0);
    auto v = randn(size_t(len * nkv * d), 3 + nh);
    std::vector<float> out(q.size(), NAN);
    cpu::attention(out.data(), q.data(), k.data(), v.data(), T, pos0, nh, nkv, d, 1.0f / std::sqrt(float(d)));
    auto ref = ref_attention(q, k, v, T, pos0, nh, nkv, d);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 2e-5) << "T=" << T << " pos0=" << pos0 << " i=" << i;
  }
}

TEST(CpuAttention, FutureKeysDoNotChangeEarlierTokens) {
  // Token 0 of a 4-token chunk must equal attention over position 0 alone, whatever later keys hold.
  const int nh = 2, nkv = 1, d = 8, T = 4;
  auto q = randn(T * nh * d, 5), k = randn(T * nkv * d, 6), v = randn(T * nkv * d, 7);
  std::vector<float> out(q.size());
  cpu::attention(out.data(), q.data(), k.data(), v.data(), T, 0, nh, nkv, d, 0.3f);
  for (int i = 0; i < d; ++i) EXPECT_FLOAT_EQ(out[i], v[i]);  // softmax over one key is 1
}

TEST(CpuOps, MatmulAllDtypesAgreeWithDoubleReference) {
  const int T = 6, N = 37, K = 64;  // 6 tokens: the 4-token block and the remainder path
  auto x = randn(T * K, 11);
  auto wf = randn(N * K, 12, 0.5f);
  std::vector<uint16_t> wb(wf.size()), wh(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) {
    wb[i] = f32_to_bf16(wf[i]);
    wh[i] = f32_to_f16(wf[i]);
  }
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (int t_count : {1, T}) {
      Tensor w{"w", dt, {N, K}, dt == DType::F32 ? (const void*)wf.data() : dt == DType::BF16 ? (const void*)wb.data() : (const void*)wh.data()};
      std::vector<float> out(size_t(t_count * N), NAN);
      cpu::matmul(out.data(), x.data(), w, t_count, N, K);
      for (int t = 0; t < t_count; ++t)
        for (int n = 0; n < N; ++n) {
          double ref = 0;
          for (int kk = 0; kk < K; ++kk) {
            float wv = dt == DType::F32 ? wf[n * K + kk] : dt == DType::BF16 ? bf16_to_f32(wb[n * K + kk]) : f16_to_f32(wh[n * K + kk]);
            ref += double(x[t * K + kk]) * wv;
          }
          ASSERT_NEAR(out[t * N + n], ref, 1e-4) << dtype_name(dt) << " t=" << t << " n=" << n;
        }
    }
  }
}

TEST(CpuOps, RmsnormAndSiluMul) {
  std::vector<float> x{1, 2, 3, 4}, w{1, 0.5f, 2, 1}, y(4);
  cpu::rmsnorm(y.data(), x.data(), w.data(), 1, 4, 0.f);
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], x[i] / rms * w[i], 1e-6);
  std::vector<float> g{-1.f, 0.f, 2.f}, u{2.f, 3.f, 0.5f};
  cpu::silu_mul(g.data(), u.data(), 3);
  EXPECT_NEAR(g[0], -1.0 / (1 + std::exp(1.0)) * 2, 1e-6);
  EXPECT_NEAR(g[1], 0.0, 1e-7);
  EXPECT_NEAR(g[2], 2.0 / (1 + std::exp(-2.0)) * 0.5, 1e-6);
}

TEST(CpuOps, RopeRotatesHalvesByPositionAngle) {
  const int d = 8, heads = 2;
  auto x = randn(2 * heads * d, 21);
  auto y = x;
  cpu::rope(y.data(), 2, heads, d, 5, 10000.0);
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < d / 2; ++i) {
        double ang = (5 + t) * std::pow(10000.0, -2.0 * i / d);
        const float* a = &x[(t * heads + h) * d];
        const float* b = &y[(t * heads + h) * d];
        EXPECT_NEAR(b[i], a[i] * std::cos(ang) - a[i + d / 2] * std::sin(ang), 1e-5);
        EXPECT_NEAR(b[i + d / 2], a[i + d / 2] * std::cos(ang) + a[i] * std::sin(ang), 1e-5);
      }
  // Position 0 is the identity.
  auto z = x;
  cpu::rope(z.data(), 1, heads, d, 0, 10000.0);
  for (int i = 0; i < heads * d; ++i) EXPECT_FLOAT_EQ(z[i], x[i]);
}

}  // namespace
}  // namespace gqa
