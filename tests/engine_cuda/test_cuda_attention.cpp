// The stock attention kernels at the ABI's shapes against a float64 host reference on fresh random bf16
// inputs, outputs and workspace poisoned with NaN: the batched split-KV decode kernel (ragged batches of
// 1 to 64 sequences, lengths 1 and off every tile size, split counts from the rule and forced), the ABI
// wrapper for decode (also many calls and replays with changing lengths), prefill and chunked prefill. Per (query, head) row: relative L2 <= 1e-2 (bf16 output).
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
  const size_t per_seq = static_cast<size_t>(p.nkv) * p.cap * p.D;
  const uint16_t* q = p.q.data() + (static_cast<size_t>(p.cu_q[s] + t) * p.nh + h) * p.D;
  std::vector<double> sc(last + 1), o(p.D, 0.0);
  double mx = -INFINITY;
  for (int j = 0; j <= last; ++j) {
    const uint16_t* kr = p.k.data() + s * per_seq + (static_cast<size_t>(g) * p.cap + j) * p.D;
    double d = 0;
    for (int i = 0; i < p.D; ++i) d += double(bf16_to_f32(q[i])) * bf16_to_f32(kr[i]);
    sc[j] = d * p.scale;
    mx = std::max(mx, sc[j]);
  }
  double sum = 0;
  for (double& x : sc) sum += (x = std::exp(x - mx));
  for (int j = 0; j <= last; ++j) {
    const uint16_t* vr = p.v.data() + s * per_seq + (static_cast<size_t>(g) * p.cap + j) * p.D;
    for (int i = 0; i < p.D; ++i) o[i] += sc[j] / sum * bf16_to_f32(vr[i]);
  }
  return o;
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
  // Forced split counts above the cluster limit (64) are clamped by the launcher.
  const Case cases[] = {{16, 8, 128, 1, 1, 0},     {16, 8, 128, 1, 1, 5},     {16, 8, 128, 1, 1, 16},
                        {16, 8, 128, 1, 77, 0},    {16, 8, 128, 1, 4099, 0},  {16, 8, 128, 1, 20001, 0},
                        {16, 8, 128, 1, 33, 16},   {16, 8, 128, 8, 2053, 0},  {16, 8, 128, 8, 300, 64},
                        {16, 8, 128, 32, 515, 0},  {16, 8, 128, 32, 70, 3},   {16, 8, 128, 64, 300, 0},
                        {16, 8, 128, 64, 97, 16},  {8, 2, 64, 5, 999, 0},     {32, 4, 128, 3, 130, 7},
                        {8, 8, 64, 4, 50, 0},      {64, 8, 128, 2, 500, 0},   {64, 8, 64, 3, 200, 9}};
  const int sms = sm_count();
  cuda::Stream st;
  uint64_t seed = 11;
  for (const auto& c : cases) {
    auto kv = ragged_lengths(c.batch, c.max_len, ++seed);
    HostProblem p = make_host(c.nh, c.nkv, c.D, std::vector<int32_t>(c.batch, 1), kv, ++seed);
    const int splits = c.splits ? c.splits
                                : cuda::attention_decode_splits(sms, c.D, c.nh / c.nkv, c.nkv, c.batch, c.max_len, 64);
    ASSERT_GE(splits, 1);
    ASSERT_LE(cuda::attention_decode_max_splits(c.D, c.nh / c.nkv), cuda::kMaxDecodeSplits);
    auto dq = upload(p.q), dk = upload(p.k), dv = upload(p.v), dl = upload(p.kv_lens);
    DeviceBuffer out(static_cast<size_t>(c.batch) * c.nh * c.D * 2);
    cuda::DecodeAttentionArgs a;
    a.q_bf16 = dq.as<cuda::bf16>(), a.k_cache = dk.as<cuda::bf16>(), a.v_cache = dv.as<cuda::bf16>();
    a.capacity = p.cap, a.k_stride_seq = a.v_stride_seq = static_cast<int64_t>(c.nkv) * p.cap * c.D;
    a.kv_lens = dl.as<int32_t>(), a.num_seqs = c.batch;
    a.n_heads = c.nh, a.n_kv = c.nkv, a.head_dim = c.D, a.n_splits = splits, a.scale = p.scale;
    a.out_bf16 = out.as<cuda::bf16>();
    for (int rep = 0; rep < 2; ++rep) {  // with and without programmatic dependent launch
      poison(out);
      cuda::attention_decode(cuda::Exec{st.get(), rep == 1, sms}, a);
      GQA_CUDA_CHECK_LAUNCH();
      EXPECT_LE(worst_row_error(p, download_bf16(out, out.bytes() / 2)), kRowTol)
          << describe(p) << " splits " << splits << " call " << rep;
    }
  }
}

TEST(CudaAttention, DecodeSplitRuleIsOneWaveOfClusters) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  const int sms = sm_count();
  for (int batch : {1, 8, 32, 64})
    for (int len : {1, 32, 512, 2048, 32768}) {
      const int s = cuda::attention_decode_splits(sms, 128, 2, 8, batch, len, 64);
      EXPECT_GE(s, 1);
      EXPECT_LE(s, cuda::attention_decode_max_splits(128, 2));
      EXPECT_LE(s, std::max(1, (len + cuda::kMinDecodeSplitKeys - 1) / cuda::kMinDecodeSplitKeys));
      if (batch * 8 > sms * 4) {
        EXPECT_EQ(s, 1) << "batch " << batch;  // no room for more than one wave
      }
    }
  // Batch 1 at long context spreads over the GPU (8 clusters of >= 8 blocks on an H100/H200).
  if (sms >= 100) {
    EXPECT_GE(cuda::attention_decode_splits(sms, 128, 2, 8, 1, 32768, 64), 8);
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
  for (int batch : {1, 3, 8, 32, 64}) {
    for (int max_len : {1, 33, 1000}) {
      auto kv = ragged_lengths(batch, max_len, ++seed);
      check_abi(make_host(16, 8, 128, std::vector<int32_t>(batch, 1), kv, ++seed), "decode");
    }
  }
}

TEST(CudaAttention, AbiDecodeNeedsNoWorkspace) {  // host only: no GPU needed
  gqa_attention_args a{};
  a.abi_version = GQA_ABI_VERSION, a.num_seqs = 8, a.num_q_heads = 16, a.num_kv_heads = 8, a.head_dim = 128;
  a.total_q = 8, a.max_q_len = 1, a.max_kv_len = 4096;
  EXPECT_EQ(cuda::stock_attention_workspace_bytes(&a), 0u);
}

// One graph replayed many times while the lengths under it change (uploaded on the stream between replays,
// never synchronising in between) and the workspace is poisoned: nothing of a call may depend on the one
// before. Then one graph of several back-to-back calls (programmatic dependent launch between them) with
// different lengths and outputs, sharing one workspace.
TEST(CudaAttention, AbiDecodeConsecutiveCallsWithChangingLengths) {
  GQA_REQUIRE_GPU();
  cuda::configure_kernels();
  const int batch = 8, max_len = 3000;
  HostProblem full = make_host(16, 8, 128, std::vector<int32_t>(batch, 1), std::vector<int32_t>(batch, max_len), 700);
  auto dq = upload(full.q), dk = upload(full.k), dv = upload(full.v);
  cuda::Stream st;
  constexpr int kCalls = 6, kReplays = 12;
  std::vector<DeviceBuffer> lens, outs;
  std::vector<gqa_attention_args> args(kCalls);
  DeviceBuffer ws(1 << 20);
  for (int c = 0; c < kCalls; ++c) {
    std::vector<int32_t> cu(batch + 1), kv(batch, max_len);
    for (int s = 0; s <= batch; ++s) cu[s] = s;
    cu.insert(cu.end(), kv.begin(), kv.end());
    lens.push_back(upload(cu));
    outs.emplace_back(static_cast<size_t>(batch) * 16 * 128 * 2);
    gqa_attention_args& a = args[c];
    a.abi_version = GQA_ABI_VERSION;
    a.num_seqs = batch, a.num_q_heads = 16, a.num_kv_heads = 8, a.head_dim = 128;
    a.total_q = batch, a.max_q_len = 1, a.max_kv_len = max_len;
    a.cu_q_lens = lens[c].as<int32_t>(), a.kv_lens = lens[c].as<int32_t>() + batch + 1;
    a.q = dq.as<gqa_bf16>(), a.k = dk.as<gqa_bf16>(), a.v = dv.as<gqa_bf16>(), a.out = outs[c].as<gqa_bf16>();
    a.k_stride_seq = a.v_stride_seq = static_cast<int64_t>(8) * full.cap * 128;
    a.k_stride_pos = a.v_stride_pos = 128;
    a.k_stride_head = a.v_stride_head = static_cast<int64_t>(full.cap) * 128;
    a.scale = full.scale, a.stream = st.get();
    a.workspace = ws.get(), a.workspace_bytes = ws.bytes();
  }
  std::mt19937_64 g(701);
  auto random_lengths = [&] {
    std::vector<int32_t> kv(batch);
    for (auto& l : kv) l = 1 + static_cast<int32_t>(g() % max_len);
    kv[g() % batch] = 1, kv[g() % batch] = max_len;
    return kv;
  };
  auto check_out = [&](const std::vector<int32_t>& kv, const DeviceBuffer& out, const std::string& what) {
    HostProblem p = full;
    p.kv_lens = kv;
    GQA_CUDA_CHECK(cudaStreamSynchronize(st.get()));
    EXPECT_LE(worst_row_error(p, download_bf16(out, out.bytes() / 2)), kRowTol) << what << " " << describe(p);
  };
  {  // one call, replayed with new lengths each time
    int rc = -1;
    auto graph = cuda::Graph::capture(st.get(), [&] { rc = cuda::stock_attention_abi(&args[0]); });
    ASSERT_EQ(rc, GQA_OK);
    for (int r = 0; r < kReplays; ++r) {
      const auto kv = random_lengths();
      GQA_CUDA_CHECK(cudaMemcpyAsync(lens[0].as<int32_t>() + batch + 1, kv.data(), batch * 4, cudaMemcpyHostToDevice, st.get()));
      GQA_CUDA_CHECK(cudaMemsetAsync(ws.get(), 0xff, ws.bytes(), st.get()));
      GQA_CUDA_CHECK(cudaMemsetAsync(outs[0].get(), 0xff, outs[0].bytes(), st.get()));
      graph.launch(st.get());
      check_out(kv, outs[0], "replay " + std::to_string(r));
    }
  }
  {  // several calls in one graph
    std::vector<std::vector<int32_t>> kvs;
    for (int c = 0; c < kCalls; ++c) {
      kvs.push_back(random_lengths());
      GQA_CUDA_CHECK(cudaMemcpy(lens[c].as<int32_t>() + batch + 1, kvs[c].data(), batch * 4, cudaMemcpyHostToDevice));
      poison(outs[c]);
    }
    int rc = GQA_OK;
    auto graph = cuda::Graph::capture(st.get(), [&] {
      for (int c = 0; c < kCalls && rc == GQA_OK; ++c) rc = cuda::stock_attention_abi(&args[c]);
    });
    ASSERT_EQ(rc, GQA_OK);
    for (int r = 0; r < 2; ++r) {
      poison(ws);
      graph.launch(st.get());
      for (int c = 0; c < kCalls; ++c) check_out(kvs[c], outs[c], "call " + std::to_string(c) + " of one graph");
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
