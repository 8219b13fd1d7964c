// The stock attention kernels at the ABI's shapes against a float64 host reference on fresh random bf16
// inputs, outputs and workspace poisoned with NaN: the batched split-KV decode kernel (ragged batches of
// 1/8/32 sequences, lengths 1 and off every tile size, split counts from the rule and forced), and the ABI
// wrapper for decode, prefill and chunked prefill. Per (query, head) row: relative L2 <= 1e-2 (bf16 output).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/ops.h"
#include "engine/cuda/stock_attention_abi.h"
#include "attention_reference.h"
#include "gpu_test_util.h"

namespace gqa {
namespace {

using cuda::DeviceBuffer;

constexpr double kRowTol = 1e-2;

// Host copy of a ragged problem over the engine's head-major cache: K/V [seq][kv_head][cap][D].
struct HostProblem {
  int nh = 16, nkv = 8, D = 128, cap = 1;
  std::vector<int32_t> q_lens, kv_lens, cu_q;
  std::vector<uint16_t> q, k, v;  // bf16 bits; cache positions past kv_lens are NaN
  float scale = 0;
  int seqs() const { return static_cast<int>(kv_lens.size()); }
  int total_q() const { return cu_q.back(); }
};

HostProblem make_host(int nh, int nkv, int D, std::vector<int32_t> q_lens, std::vector<int32_t> kv_lens, uint64_t seed) {
  HostProblem p;
  p.nh = nh, p.nkv = nkv, p.D = D, p.q_lens = std::move(q_lens), p.kv_lens = std::move(kv_lens);
  p.cap = *std::max_element(p.kv_lens.begin(), p.kv_lens.end()) + 3;  // a capacity past every length
  p.cu_q = {0};
  for (int32_t l : p.q_lens) p.cu_q.push_back(p.cu_q.back() + l);
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  p.q.resize(static_cast<size_t>(p.total_q()) * nh * D);
  for (auto& x : p.q) x = f32_to_bf16(3.f * u(g));  // peaked softmax: a wrong key shows
  const size_t per_seq = static_cast<size_t>(nkv) * p.cap * D;
  p.k.resize(per_seq * p.seqs()), p.v.resize(p.k.size());
  for (int s = 0; s < p.seqs(); ++s)
    for (int h = 0; h < nkv; ++h)
      for (int pos = 0; pos < p.cap; ++pos)
        for (int i = 0; i < D; ++i) {
          const size_t idx = s * per_seq + (static_cast<size_t>(h) * p.cap + pos) * D + i;
          const bool valid = pos < p.kv_lens[s];
          p.k[idx] = valid ? f32_to_bf16(1.7f * u(g)) : 0x7fc0;  // NaN past the length
          p.v[idx] = valid ? f32_to_bf16(1.7f * u(g)) : 0x7fc0;
        }
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  return p;
}

// Reference output row (query t of sequence s, head h), causal per the ABI.
std::vector<double> reference_row(const HostProblem& p, int s, int t, int h) {
  const int g = h / (p.nh / p.nkv), last = p.kv_lens[s] - p.q_lens[s] + t;
  const size_t head0 = s * static_cast<size_t>(p.nkv) * p.cap * p.D + static_cast<size_t>(g) * p.cap * p.D;
  const uint16_t* q = p.q.data() + (static_cast<size_t>(p.cu_q[s] + t) * p.nh + h) * p.D;
  return testing::attention_reference_row(q, p.k.data() + head0, p.v.data() + head0, last, p.D, p.scale);
}

// Worst per-row relative L2 of bf16 `out` ([total_q][nh][D]) against the reference; INFINITY on NaN.
double worst_row_error(const HostProblem& p, const std::vector<uint16_t>& out) {
  double worst = 0;
  for (int s = 0; s < p.seqs(); ++s)
    for (int t = 0; t < p.q_lens[s]; ++t)
      for (int h = 0; h < p.nh; ++h) {
        const auto want = reference_row(p, s, t, h);
        const uint16_t* got = out.data() + (static_cast<size_t>(p.cu_q[s] + t) * p.nh + h) * p.D;
        double num = 0, den = 0;
        for (int i = 0; i < p.D; ++i) {
          const double gv = bf16_to_f32(got[i]);
          if (std::isnan(gv)) return INFINITY;
          num += (gv - want[i]) * (gv - want[i]), den += want[i] * want[i];
        }
        worst = std::max(worst, std::sqrt(num / std::max(den, 1e-300)));
      }
  return worst;
}

template <class T>
DeviceBuffer upload(const std::vector<T>& v) {
  DeviceBuffer b(std::max<size_t>(v.size() * sizeof(T), 1));
  GQA_CUDA_CHECK(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}
std::vector<uint16_t> download_bf16(const DeviceBuffer& b, size_t n) {
  std::vector<uint16_t> v(n);
  GQA_CUDA_CHECK(cudaDeviceSynchronize());
  GQA_CUDA_CHECK(cudaMemcpy(v.data(), b.get(), n * 2, cudaMemcpyDeviceToHost));
  return v;
}
void poison(const DeviceBuffer& b) { GQA_CUDA_CHECK(cudaMemset(b.get(), 0xff, b.bytes())); }

int sm_count() {
  int dev = 0, n = 0;
  GQA_CUDA_CHECK(cudaGetDevice(&dev));
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

std::string describe(const HostProblem& p) {
  std::ostringstream s;
  s << "heads " << p.nh << ":" << p.nkv << " D " << p.D << " kv";
  for (size_t i = 0; i < p.kv_lens.size() && i < 6; ++i) s << " " << p.kv_lens[i];
  if (p.kv_lens.size() > 6) s << " ... (" << p.kv_lens.size() << " seqs)";
  s << " q";
  for (size_t i = 0; i < p.q_lens.size() && i < 6; ++i) s << " " << p.q_lens[i];
  return s.str();
}

std::vector<int32_t> ragged_lengths(int batch, int max_len, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int32_t> l(batch);
  for (int s = 0; s < batch; ++s) l[s] = 1 + static_cast<int32_t>(g() % max_len);
  l[0] = max_len;
  if (batch > 1) l[1] = 1;
  return l;
}

TEST(CudaAttention, BatchedDecodeKernelMatchesReference) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  struct Case { int nh, nkv, D, batch, max_len, splits; };  // splits 0: attention_decode_splits' rule
  const Case cases[] = {{16, 8, 128, 1, 1, 0},    {16, 8, 128, 1, 1, 5},    {16, 8, 128, 1, 77, 0},
                        {16, 8, 128, 1, 4099, 0}, {16, 8, 128, 8, 2053, 0}, {16, 8, 128, 8, 300, 64},
                        {16, 8, 128, 32, 515, 0}, {16, 8, 128, 32, 70, 3},  {8, 2, 64, 5, 999, 0},
                        {32, 4, 128, 3, 130, 7},  {8, 8, 64, 4, 50, 0}};
  const int sms = sm_count();
  cuda::Stream st;
  uint64_t seed = 11;
  for (const auto& c : cases) {
    auto kv = ragged_lengths(c.batch, c.max_len, ++seed);
    HostProblem p = make_host(c.nh, c.nkv, c.D, std::vector<int32_t>(c.batch, 1), kv, ++seed);
    const int splits = c.splits ? c.splits
                                : cuda::attention_decode_splits(sms, c.D, c.nh / c.nkv, c.nkv, c.batch, c.max_len, 64);
    auto dq = upload(p.q), dk = upload(p.k), dv = upload(p.v), dl = upload(p.kv_lens);
    DeviceBuffer po(static_cast<size_t>(c.batch) * splits * c.nh * c.D * 4), pml(static_cast<size_t>(c.batch) * splits * c.nh * 8);
    DeviceBuffer out(static_cast<size_t>(c.batch) * c.nh * c.D * 2), counters(static_cast<size_t>(c.batch) * c.nkv * 4);
    GQA_CUDA_CHECK(cudaMemset(counters.get(), 0, counters.bytes()));
    cuda::DecodeAttentionArgs a;
    a.q_bf16 = dq.as<cuda::bf16>(), a.k_cache = dk.as<cuda::bf16>(), a.v_cache = dv.as<cuda::bf16>();
    a.capacity = p.cap, a.k_stride_seq = a.v_stride_seq = static_cast<int64_t>(c.nkv) * p.cap * c.D;
    a.kv_lens = dl.as<int32_t>(), a.num_seqs = c.batch;
    a.n_heads = c.nh, a.n_kv = c.nkv, a.head_dim = c.D, a.n_splits = splits, a.scale = p.scale;
    a.part_o = po.as<float>(), a.part_ml = pml.as<float>(), a.counters = counters.as<unsigned>();
    a.out_bf16 = out.as<cuda::bf16>();
    for (int rep = 0; rep < 2; ++rep) {  // the second call checks that the counters were re-armed
      poison(po), poison(pml), poison(out);
      a.inputs_ready = rep == 1;
      cuda::attention_decode(cuda::Exec{st.get(), rep == 1, sms}, a);
      GQA_CUDA_CHECK_LAUNCH();
      EXPECT_LE(worst_row_error(p, download_bf16(out, out.bytes() / 2)), kRowTol)
          << describe(p) << " splits " << splits << " call " << rep;
    }
  }
}

// The ABI wrapper, each call captured into a graph and replayed (as the evaluator does), twice.
void check_abi(const HostProblem& p, const std::string& what) {
  auto dq = upload(p.q), dk = upload(p.k), dv = upload(p.v);
  std::vector<int32_t> lens(p.cu_q);
  lens.insert(lens.end(), p.kv_lens.begin(), p.kv_lens.end());
  auto dl = upload(lens);
  DeviceBuffer out(static_cast<size_t>(p.total_q()) * p.nh * p.D * 2);
  cuda::Stream st;
  gqa_attention_args a{};
  a.abi_version = GQA_ABI_VERSION;
  a.num_seqs = p.seqs(), a.num_q_heads = p.nh, a.num_kv_heads = p.nkv, a.head_dim = p.D;
  a.total_q = p.total_q(), a.max_q_len = *std::max_element(p.q_lens.begin(), p.q_lens.end());
  a.max_kv_len = *std::max_element(p.kv_lens.begin(), p.kv_lens.end());
  a.cu_q_lens = dl.as<int32_t>(), a.kv_lens = dl.as<int32_t>() + p.seqs() + 1;
  a.q = dq.as<gqa_bf16>(), a.k = dk.as<gqa_bf16>(), a.v = dv.as<gqa_bf16>(), a.out = out.as<gqa_bf16>();
  a.k_stride_seq = a.v_stride_seq = static_cast<int64_t>(p.nkv) * p.cap * p.D;
  a.k_stride_pos = a.v_stride_pos = p.D;
  a.k_stride_head = a.v_stride_head = static_cast<int64_t>(p.cap) * p.D;
  a.scale = p.scale, a.stream = st.get();
  const size_t need = cuda::stock_attention_workspace_bytes(&a);
  ASSERT_LE(need, gqa_workspace_min_bytes(&a)) << what << ": the ABI's workspace guarantee must cover the stock kernel";
  DeviceBuffer ws(gqa_workspace_min_bytes(&a));
  a.workspace = ws.get(), a.workspace_bytes = ws.bytes();
  int rc = -1;
  auto g = cuda::Graph::capture(st.get(), [&] { rc = cuda::stock_attention_abi(&a); });
  ASSERT_EQ(rc, GQA_OK) << what;
  for (int rep = 0; rep < 2; ++rep) {
    poison(out), poison(ws);
    g.launch(st.get());
    GQA_CUDA_CHECK(cudaStreamSynchronize(st.get()));
    EXPECT_LE(worst_row_error(p, download_bf16(out, out.bytes() / 2)), kRowTol) << what << " " << describe(p) << " replay " << rep;
  }
}

TEST(CudaAttention, AbiDecodeBatchesMatchReference) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  uint64_t seed = 100;
  for (int batch : {1, 3, 8, 32}) {
    for (int max_len : {1, 33, 1000}) {
      auto kv = ragged_lengths(batch, max_len, ++seed);
      check_abi(make_host(16, 8, 128, std::vector<int32_t>(batch, 1), kv, ++seed), "decode");
    }
  }
}

TEST(CudaAttention, AbiPrefillAndChunkedPrefillMatchReference) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  struct Case { int q, kv; };
  const Case cases[] = {{2, 2}, {37, 37}, {64, 64}, {200, 200}, {100, 400}, {63, 192}, {130, 131}};
  uint64_t seed = 300;
  for (const auto& c : cases) check_abi(make_host(16, 8, 128, {c.q}, {c.kv}, ++seed), "prefill");
}

}  // namespace
}  // namespace gqa
