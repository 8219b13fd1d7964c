// The tensor-core prefill kernel (attention_prefill_mma.cu) against a float64 host reference and against the
// older CUDA-core kernel, on fresh random bf16 inputs with NaN-poisoned outputs and NaN in the cache past the
// valid keys: whole prefills of lengths off every tile size, chunked prefill over an existing cache, bf16 and
// float q (which must give bit-identical outputs: the kernel rounds q to bf16 either way), other GQA groups,
// and the dispatch (head_dim 64 falls back to the old kernel). The mma kernel runs with both its block sizes
// (64 and 128 query rows, forced through mma_rows) and through its own choice. Per (query, head) row:
// relative L2 <= 1e-2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/ops.h"
#include "attention_reference.h"
#include "gpu_test_util.h"

namespace gqa {
namespace {

using cuda::DeviceBuffer;

constexpr double kRowTol = 1e-2;

// T new queries at positions kv_len - T .. kv_len - 1 over the engine's cache [n_kv][cap][D] (bf16 bits;
// positions from kv_len on are NaN: the kernels must never let them reach an output).
struct Case {
  int nh = 16, nkv = 8, D = 128, T = 1, kv_len = 1;
};

struct Host {
  Case c;
  int cap = 0, pos0 = 0;
  float scale = 0;
  std::vector<uint16_t> q, k, v;  // q [T][nh][D]
  std::vector<float> qf;          // the same q values as float (exactly representable)
};

Host make_host(const Case& c, uint64_t seed) {
  Host h;
  h.c = c, h.cap = c.kv_len + 5, h.pos0 = c.kv_len - c.T;
  h.scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  h.q.resize(static_cast<size_t>(c.T) * c.nh * c.D);
  h.qf.resize(h.q.size());
  for (size_t i = 0; i < h.q.size(); ++i) h.q[i] = f32_to_bf16(3.f * u(g)), h.qf[i] = bf16_to_f32(h.q[i]);
  h.k.resize(static_cast<size_t>(c.nkv) * h.cap * c.D), h.v.resize(h.k.size());
  for (int kv = 0; kv < c.nkv; ++kv)
    for (int p = 0; p < h.cap; ++p)
      for (int i = 0; i < c.D; ++i) {
        const size_t idx = (static_cast<size_t>(kv) * h.cap + p) * c.D + i;
        const bool valid = p < c.kv_len;
        h.k[idx] = valid ? f32_to_bf16(1.7f * u(g)) : 0x7fc0;
        h.v[idx] = valid ? f32_to_bf16(1.7f * u(g)) : 0x7fc0;
      }
  return h;
}

std::vector<double> reference_row(const Host& h, int t, int head) {
  const Case& c = h.c;
  const int kv = head / (c.nh / c.nkv), last = h.pos0 + t;
  const uint16_t* q = h.q.data() + (static_cast<size_t>(t) * c.nh + head) * c.D;
  const size_t head0 = static_cast<size_t>(kv) * h.cap * c.D;
  return testing::attention_reference_row(q, h.k.data() + head0, h.v.data() + head0, last, c.D, h.scale);
}

// Rows compared with the reference: all of them up to 256 queries, else the first and last 8 and every 7th.
bool checked_row(int T, int t) { return T <= 256 || t < 8 || t >= T - 8 || t % 7 == 0; }

double rel_l2(const uint16_t* got, const double* want, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; ++i) {
    const double gv = bf16_to_f32(got[i]);
    if (std::isnan(gv)) return INFINITY;
    num += (gv - want[i]) * (gv - want[i]), den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "heads " << c.nh << ":" << c.nkv << " D " << c.D << " T " << c.T << " kv_len " << c.kv_len;
  return s.str();
}

template <class T>
DeviceBuffer upload(const std::vector<T>& v) {
  DeviceBuffer b(std::max<size_t>(v.size() * sizeof(T), 1));
  GQA_CUDA_CHECK(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}

// One problem on the device; run() poisons the output, runs the chosen kernel and returns the bf16 output.
struct Device {
  const Host& h;
  DeviceBuffer q, qf, k, v, pos, out;
  cuda::Stream st;
  explicit Device(const Host& host)
      : h(host), q(upload(host.q)), qf(upload(host.qf)), k(upload(host.k)), v(upload(host.v)),
        pos(upload(std::vector<int>{host.pos0})), out(host.q.size() * 2) {}

  int sms() const {
    int n = 1, dev = 0;
    GQA_CUDA_CHECK(cudaGetDevice(&dev));
    GQA_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
  }

  cuda::PrefillAttentionArgs args(cuda::PrefillKernel kernel, bool float_q, int mma_rows) {
    cuda::PrefillAttentionArgs a;
    if (float_q)
      a.q = qf.as<float>();
    else
      a.q_bf16 = q.as<cuda::bf16>();
    a.T = h.c.T, a.k_cache = k.as<cuda::bf16>(), a.v_cache = v.as<cuda::bf16>(), a.capacity = h.cap;
    a.pos = pos.as<int>(), a.n_heads = h.c.nh, a.n_kv = h.c.nkv, a.head_dim = h.c.D, a.scale = h.scale;
    a.out = out.as<cuda::bf16>(), a.kernel = kernel, a.mma_rows = mma_rows;
    return a;
  }

  // mma_rows: the mma kernel's block size (64 or 128), or 0 to let it choose.
  std::vector<uint16_t> run(cuda::PrefillKernel kernel, bool float_q, bool pdl = false, int mma_rows = 0) {
    GQA_CUDA_CHECK(cudaMemsetAsync(out.get(), 0xff, out.bytes(), st.get()));  // NaN
    cuda::attention_prefill(cuda::Exec{st.get(), pdl, sms()}, args(kernel, float_q, mma_rows));
    GQA_CUDA_CHECK_LAUNCH();
    GQA_CUDA_CHECK(cudaStreamSynchronize(st.get()));
    std::vector<uint16_t> o(h.q.size());
    GQA_CUDA_CHECK(cudaMemcpy(o.data(), out.get(), out.bytes(), cudaMemcpyDeviceToHost));
    return o;
  }
};

// Worst row error of `out` against the reference over the checked rows.
double worst_vs_reference(const Host& h, const std::vector<uint16_t>& out) {
  double worst = 0;
  for (int t = 0; t < h.c.T; ++t) {
    if (!checked_row(h.c.T, t)) continue;
    for (int head = 0; head < h.c.nh; ++head) {
      const auto want = reference_row(h, t, head);
      worst = std::max(worst, rel_l2(out.data() + (static_cast<size_t>(t) * h.c.nh + head) * h.c.D, want.data(), h.c.D));
    }
  }
  return worst;
}

// Worst row difference between two kernels' outputs over every row.
double worst_vs_other(const Host& h, const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
  double worst = 0;
  std::vector<double> want(h.c.D);
  for (size_t row = 0; row < a.size() / h.c.D; ++row) {
    for (int i = 0; i < h.c.D; ++i) want[i] = bf16_to_f32(b[row * h.c.D + i]);
    worst = std::max(worst, rel_l2(a.data() + row * h.c.D, want.data(), h.c.D));
  }
  return worst;
}

void check_case(const Case& c, uint64_t seed) {
  const Host h = make_host(c, seed);
  Device d(h);
  const auto mma = d.run(cuda::PrefillKernel::Mma, false, false, 128);
  EXPECT_LE(worst_vs_reference(h, mma), kRowTol) << "mma 128 rows, bf16 q: " << describe(c);
  const auto mma_f = d.run(cuda::PrefillKernel::Mma, true, true, 128);
  EXPECT_TRUE(mma_f == mma) << "mma 128 rows: float q (with PDL) differs from bf16 q: " << describe(c);
  const auto mma64 = d.run(cuda::PrefillKernel::Mma, false, false, 64);
  EXPECT_LE(worst_vs_reference(h, mma64), kRowTol) << "mma 64 rows, bf16 q: " << describe(c);
  const auto mma64_f = d.run(cuda::PrefillKernel::Mma, true, true, 64);
  EXPECT_TRUE(mma64_f == mma64) << "mma 64 rows: float q (with PDL) differs from bf16 q: " << describe(c);
  EXPECT_LE(worst_vs_other(h, mma64, mma), kRowTol) << "mma 64 rows vs 128 rows: " << describe(c);
  const auto simt = d.run(cuda::PrefillKernel::Simt, true);
  EXPECT_LE(worst_vs_reference(h, simt), kRowTol) << "simt, float q: " << describe(c);
  EXPECT_LE(worst_vs_other(h, mma, simt), kRowTol) << "mma vs simt: " << describe(c);
  EXPECT_LE(worst_vs_other(h, mma64, simt), kRowTol) << "mma 64 rows vs simt: " << describe(c);
  const auto simt_b = d.run(cuda::PrefillKernel::Simt, false);
  EXPECT_LE(worst_vs_other(h, simt_b, simt), 1e-6) << "simt: bf16 q differs from float q: " << describe(c);
  cuda::PrefillAttentionArgs probe;
  probe.head_dim = c.D;
  const auto auto_kernel = cuda::attention_prefill_kernel(probe);
  EXPECT_EQ(auto_kernel, c.D == 128 ? cuda::PrefillKernel::Mma : cuda::PrefillKernel::Simt) << describe(c);
  const int rows = cuda::attention_prefill_mma_rows(cuda::Exec{nullptr, false, d.sms()}, d.args(cuda::PrefillKernel::Auto, false, 0));
  EXPECT_TRUE(rows == 64 || rows == 128) << describe(c);
  const auto again = d.run(cuda::PrefillKernel::Auto, false);
  EXPECT_TRUE(again == (auto_kernel == cuda::PrefillKernel::Mma ? (rows == 64 ? mma64 : mma) : simt_b))
      << "Auto differs from the kernel it names, or a kernel is not deterministic: " << describe(c);
}

TEST(CudaAttentionPrefillMma, WholePrefillsMatchReferenceAndOldKernel) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  uint64_t seed = 700;
  for (int L : {1, 2, 37, 63, 64, 65, 127, 128, 129, 200, 333, 512, 1000}) {
    Case c;
    c.T = c.kv_len = L;
    check_case(c, ++seed);
  }
}

TEST(CudaAttentionPrefillMma, ChunkedPrefillOverCacheMatchesReference) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  struct QKv { int q, kv; };
  const QKv cases[] = {{100, 400}, {63, 192}, {130, 131}, {1, 77}, {128, 256}, {129, 1100}, {300, 301},
                        {512, 4096}, {65, 1000}};
  uint64_t seed = 800;
  for (const auto& x : cases) {
    Case c;
    c.T = x.q, c.kv_len = x.kv;
    check_case(c, ++seed);
  }
}

TEST(CudaAttentionPrefillMma, OtherHeadGroupsMatchReference) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  const Case cases[] = {{8, 8, 128, 150, 150}, {32, 4, 128, 70, 333}, {16, 1, 128, 257, 257}, {2, 2, 128, 5, 9}};
  uint64_t seed = 900;
  for (const auto& c : cases) check_case(c, ++seed);
}

TEST(CudaAttentionPrefillMma, BlockRowsFollowTheGridSize) {
  // No GPU needed: the choice is arithmetic on T, n_heads and the SM count.
  cuda::PrefillAttentionArgs a;
  a.n_heads = 16, a.n_kv = 8, a.head_dim = 128;
  const cuda::Exec h200{nullptr, false, 132};
  a.T = 512, a.mma_rows = 128;  // forced
  EXPECT_EQ(cuda::attention_prefill_mma_rows(h200, a), 128);
  a.T = 8192, a.mma_rows = 64;
  EXPECT_EQ(cuda::attention_prefill_mma_rows(h200, a), 64);
  a.mma_rows = 0;
  a.T = 512;  // 64 blocks of 128 rows < 264: 64-row blocks
  EXPECT_EQ(cuda::attention_prefill_mma_rows(h200, a), 64);
  a.T = 1;
  EXPECT_EQ(cuda::attention_prefill_mma_rows(h200, a), 64);
  a.T = 8192;  // 1024 blocks
  EXPECT_EQ(cuda::attention_prefill_mma_rows(h200, a), 128);
  a.T = 2048;  // 256 < 264
  EXPECT_EQ(cuda::attention_prefill_mma_rows(h200, a), 64);
  a.T = 2177;  // 16 × 18 = 288 blocks
  EXPECT_EQ(cuda::attention_prefill_mma_rows(h200, a), 128);
}

TEST(CudaAttentionPrefillMma, DispatchFallsBackForOtherHeadDims) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  EXPECT_TRUE(cuda::attention_prefill_mma_supported(128));
  EXPECT_FALSE(cuda::attention_prefill_mma_supported(64));
  cuda::PrefillAttentionArgs a;
  a.head_dim = 64;
  EXPECT_EQ(cuda::attention_prefill_kernel(a), cuda::PrefillKernel::Simt);
  a.head_dim = 128;
  a.kernel = cuda::PrefillKernel::Simt;
  EXPECT_EQ(cuda::attention_prefill_kernel(a), cuda::PrefillKernel::Simt);
  // head_dim 64 through Auto: the old kernel, still correct.
  Case c{8, 2, 64, 90, 200};
  const Host h = make_host(c, 950);
  Device d(h);
  EXPECT_LE(worst_vs_reference(h, d.run(cuda::PrefillKernel::Auto, false)), kRowTol) << describe(c);
}

}  // namespace
}  // namespace gqa
