// Benchmark of the stock GQA attention kernels behind the ABI (scripts/gpu.sh bench --attention runs it; not a test):
//   attention_bench [--json FILE] [--batches 1,8,32] [--contexts 512,2048,8192,32768] [--prefill 512,2048,8192,16384]
//                   [--chunked 512@4096] [--modes cold,hot] [--rotate-mib 256] [--check] [--no-time] [--ragged]
//                   [--prefill-simt]
// Qwen3-0.6B's head layout (16 query heads, 8 KV heads, head_dim 128, bf16). For every shape:
//  - correctness (--check): fresh random bf16 inputs, output poisoned with NaN, one call replayed from a CUDA
//    graph, compared row by row (query, head) with a float64 host reference on sampled rows; the evaluator's
//    bound ‖out − ref‖₂ ≤ 2⁻⁶‖ref‖₂ per row, any NaN fails;
//  - time: the whole ABI call (stock_attention_abi: bf16 in, bf16 out, what a program must beat) and the
//    engine kernels alone (stock_attention_engine_kernels), captured into CUDA graphs, CUDA events around
//    replays. "cold": each call of a graph reads another copy of the KV cache, copies covering --rotate-mib
//    (so L2 never holds the cache); "hot": the same copy every call (as PyTorch reference numbers usually are).
// scripts/bench_attention_torch.py measures PyTorch SDPA (flash, cuDNN) with the same shapes and the same
// rotation rule; the driver prints them side by side. Decode batches use one query per sequence;
// --ragged gives the sequences different lengths (check and sanitizer runs). Prefill rows also time the
// prefill kernel alone through attention_prefill (us_mma, what the ABI runs by default) and, with
// --prefill-simt, the older CUDA-core kernel (us_simt: slow, seconds per shape at L >= 8192).
#include <cuda_runtime.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/ops.h"
#include "engine/cuda/stock_attention_abi.h"
#include "attention_reference.h"

namespace gqa {
namespace {

constexpr int kHeads = 16, kKvHeads = 8, kDim = 128;
constexpr double kRowBound = 1.0 / 64;  // the evaluator's per-row relative L2 bound

struct Args {
  std::string json_out;
  std::vector<int> batches{1, 8, 32}, contexts{512, 2048, 8192, 32768}, prefill{512, 2048, 8192, 16384};
  std::vector<std::pair<int, int>> chunked{{512, 4096}};  // (queries, keys in the cache after the chunk)
  std::vector<std::string> modes{"cold", "hot"};
  int rotate_mib = 256;
  bool check = false, time = true, ragged = false, prefill_simt = false;
};

std::vector<int> int_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) v.push_back(std::stoi(item));
  return v;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) fail("attention_bench", "{} needs a value", k);
      return argv[++i];
    };
    if (k == "--json") a.json_out = val();
    else if (k == "--batches") a.batches = int_list(val());
    else if (k == "--contexts") a.contexts = int_list(val());
    else if (k == "--prefill") a.prefill = int_list(val());
    else if (k == "--chunked") {
      a.chunked.clear();
      std::stringstream ss(val());
      for (std::string item; std::getline(ss, item, ',');) {
        const auto at = item.find('@');
        if (at == std::string::npos) fail("attention_bench", "--chunked wants Q@KV items, got '{}'", item);
        a.chunked.emplace_back(std::stoi(item.substr(0, at)), std::stoi(item.substr(at + 1)));
      }
    } else if (k == "--modes") {
      a.modes.clear();
      std::stringstream ss(val());
      for (std::string m; std::getline(ss, m, ',');) {
        if (m != "cold" && m != "hot") fail("attention_bench", "unknown mode '{}' (cold, hot)", m);
        a.modes.push_back(m);
      }
    } else if (k == "--rotate-mib") a.rotate_mib = std::stoi(val());
    else if (k == "--check") a.check = true;
    else if (k == "--no-time") a.time = false;
    else if (k == "--ragged") a.ragged = true;
    else if (k == "--prefill-simt") a.prefill_simt = true;
    else
      fail("attention_bench", "unknown argument '{}' (see the comment at the top of attention_bench.cpp)", k);
  }
  for (int v : a.batches) if (v < 1) fail("attention_bench", "batch sizes must be >= 1");
  for (int v : a.contexts) if (v < 1) fail("attention_bench", "contexts must be >= 1");
  for (int v : a.prefill) if (v < 1) fail("attention_bench", "prefill lengths must be >= 1");
  for (auto [q, kv] : a.chunked) if (q < 1 || kv < q) fail("attention_bench", "--chunked Q@KV needs 1 <= Q <= KV");
  return a;
}

// One problem: a ragged batch over the engine's head-major cache, `sets` copies of K and V.
struct Problem {
  int seqs = 1, q_per_seq = 1, capacity = 1, sets = 1;
  std::vector<int32_t> cu_q, kv_lens;
  size_t set_elems = 0;  // bf16 elements of K (or V) per copy
  cuda::DeviceBuffer k, v, q, out, lens, ws;
  gqa_attention_args args{};

  int64_t kv_bytes() const {  // K and V bytes one call must read
    int64_t n = 0;
    for (int32_t l : kv_lens) n += l;
    return n * kKvHeads * kDim * 2 * 2;
  }
  gqa_attention_args args_for(int set) const {
    gqa_attention_args a = args;
    a.k = k.as<gqa_bf16>() + set * set_elems;
    a.v = v.as<gqa_bf16>() + set * set_elems;
    return a;
  }
};

Problem make_problem(int seqs, int q_per_seq, std::vector<int32_t> kv_lens, int sets, uint64_t seed, cudaStream_t st,
                     int sms) {
  Problem p;
  p.seqs = seqs, p.q_per_seq = q_per_seq, p.sets = sets, p.kv_lens = std::move(kv_lens);
  p.capacity = *std::max_element(p.kv_lens.begin(), p.kv_lens.end());
  p.cu_q.resize(seqs + 1);
  for (int s = 0; s <= seqs; ++s) p.cu_q[s] = s * q_per_seq;
  const int total_q = seqs * q_per_seq;
  p.set_elems = static_cast<size_t>(seqs) * kKvHeads * p.capacity * kDim;
  p.k = cuda::DeviceBuffer(p.set_elems * sets * 2);
  p.v = cuda::DeviceBuffer(p.set_elems * sets * 2);
  p.q = cuda::DeviceBuffer(static_cast<size_t>(total_q) * kHeads * kDim * 2);
  p.out = cuda::DeviceBuffer(p.q.bytes());
  p.lens = cuda::DeviceBuffer((2 * seqs + 1) * 4);
  cuda::Exec ex{st, false, sms};
  // q uniform in ±5 (std 2.9, a peaked softmax as in the evaluator), K and V ±1.7 (std 1).
  cuda::fill_random_bf16(ex, p.q.as<cuda::bf16>(), p.q.bytes() / 2, seed, 5.0f);
  cuda::fill_random_bf16(ex, p.k.as<cuda::bf16>(), p.set_elems * sets, seed + 1, 1.7f);
  cuda::fill_random_bf16(ex, p.v.as<cuda::bf16>(), p.set_elems * sets, seed + 2, 1.7f);
  std::vector<int32_t> lens(p.cu_q);
  lens.insert(lens.end(), p.kv_lens.begin(), p.kv_lens.end());
  GQA_CUDA_CHECK(cudaMemcpyAsync(p.lens.get(), lens.data(), lens.size() * 4, cudaMemcpyHostToDevice, st));
  gqa_attention_args& a = p.args;
  a.abi_version = GQA_ABI_VERSION;
  a.num_seqs = seqs, a.num_q_heads = kHeads, a.num_kv_heads = kKvHeads, a.head_dim = kDim;
  a.total_q = total_q, a.max_q_len = q_per_seq, a.max_kv_len = p.capacity;
  a.cu_q_lens = p.lens.as<int32_t>(), a.kv_lens = p.lens.as<int32_t>() + seqs + 1;
  a.q = p.q.as<gqa_bf16>(), a.out = p.out.as<gqa_bf16>();
  a.k_stride_seq = a.v_stride_seq = static_cast<int64_t>(kKvHeads) * p.capacity * kDim;
  a.k_stride_pos = a.v_stride_pos = kDim;
  a.k_stride_head = a.v_stride_head = static_cast<int64_t>(p.capacity) * kDim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(kDim));
  a.stream = st;
  const size_t ws = cuda::stock_attention_workspace_bytes(&a);
  p.ws = cuda::DeviceBuffer(std::max<size_t>(ws, 256));
  a.workspace = p.ws.get(), a.workspace_bytes = p.ws.bytes();
  a.k = p.k.as<gqa_bf16>(), a.v = p.v.as<gqa_bf16>();
  return p;
}

void call(int (*fn)(const gqa_attention_args*), const gqa_attention_args& a, const char* what) {
  const int rc = fn(&a);
  if (rc != GQA_OK) fail("attention_bench", "{} returned ABI error {}", what, rc);
}

// Rows (sequence, query) whose outputs are compared with the host reference: every sequence for short
// problems; otherwise the first and last rows plus evenly spaced ones (positions not multiples of tiles).
std::vector<std::pair<int, int>> sampled_rows(const Problem& p) {
  std::vector<std::pair<int, int>> rows;
  const int max_seqs = 8, max_q = 40;
  for (int i = 0; i < std::min(p.seqs, max_seqs); ++i) {
    const int s = p.seqs <= max_seqs ? i : static_cast<int>(static_cast<int64_t>(i) * (p.seqs - 1) / (max_seqs - 1));
    if (p.q_per_seq <= max_q) {
      for (int t = 0; t < p.q_per_seq; ++t) rows.emplace_back(s, t);
    } else {
      for (int t = 0; t < 8; ++t) rows.emplace_back(s, t), rows.emplace_back(s, p.q_per_seq - 1 - t);
      for (int j = 1; j <= max_q - 16; ++j) rows.emplace_back(s, 8 + static_cast<int>(int64_t(j) * (p.q_per_seq - 17) / (max_q - 15)));
    }
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

struct CheckResult {
  double max_rel_l2 = 0, max_abs = 0;
  int rows = 0, bad_rows = 0;
  bool nan = false;
  bool ok() const { return !nan && bad_rows == 0; }
  nlohmann::json json() const {
    return {{"max_row_rel_l2", max_rel_l2}, {"max_abs_error", max_abs}, {"rows_checked", rows},
            {"rows_over_bound", bad_rows}, {"nan", nan}, {"ok", ok()}, {"bound", kRowBound}};
  }
};

// One graph replay of the whole ABI call on copy 0 with the output poisoned, against float64 on the host.
CheckResult check_problem(const Problem& p, cudaStream_t st) {
  GQA_CUDA_CHECK(cudaMemsetAsync(p.out.get(), 0xff, p.out.bytes(), st));
  GQA_CUDA_CHECK(cudaMemsetAsync(p.ws.get(), 0xff, p.ws.bytes(), st));
  const gqa_attention_args a = p.args_for(0);
  auto g = cuda::Graph::capture(st, [&] { call(cuda::stock_attention_abi, a, "stock_attention_abi"); });
  g.launch(st);
  GQA_CUDA_CHECK(cudaStreamSynchronize(st));
  const size_t row = static_cast<size_t>(kHeads) * kDim;
  std::vector<uint16_t> out(p.out.bytes() / 2), q(p.q.bytes() / 2);
  GQA_CUDA_CHECK(cudaMemcpy(out.data(), p.out.get(), p.out.bytes(), cudaMemcpyDeviceToHost));
  GQA_CUDA_CHECK(cudaMemcpy(q.data(), p.q.get(), p.q.bytes(), cudaMemcpyDeviceToHost));
  const auto rows = sampled_rows(p);
  const size_t seq_elems = static_cast<size_t>(kKvHeads) * p.capacity * kDim;
  CheckResult r;
  int cur = -1;
  std::vector<uint16_t> K(seq_elems), V(seq_elems);
  std::vector<std::pair<double, double>> results(rows.size() * kHeads);  // (rel l2, max abs) per row and head
  size_t first = 0;
  auto flush = [&](size_t end) {  // rows [first, end) all belong to sequence `cur`, whose K/V are loaded
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t n = first * kHeads; n < end * kHeads; ++n) {
      const auto [s, t] = rows[n / kHeads];
      const int h = static_cast<int>(n % kHeads), g = h / (kHeads / kKvHeads);
      const int last = p.kv_lens[s] - p.q_per_seq + t;  // causal: keys 0..last
      const size_t qrow = (static_cast<size_t>(p.cu_q[s] + t)) * row + static_cast<size_t>(h) * kDim;
      const size_t head0 = static_cast<size_t>(g) * p.capacity * kDim;
      const std::vector<double> o =
          testing::attention_reference_row(q.data() + qrow, K.data() + head0, V.data() + head0, last, kDim, p.args.scale);
      double num = 0, den = 0, mabs = 0;
      for (int i = 0; i < kDim; ++i) {
        const double got = bf16_to_f32(out[qrow + i]), e = got - o[i];
        if (std::isnan(got)) mabs = INFINITY;
        num += e * e, den += o[i] * o[i];
        mabs = std::max(mabs, std::abs(e));
      }
      results[n] = {std::isnan(num) ? INFINITY : std::sqrt(num / std::max(den, 1e-300)), std::isnan(mabs) ? INFINITY : mabs};
    }
  };
  for (size_t i = 0; i <= rows.size(); ++i) {
    if (i < rows.size() && rows[i].first == cur) continue;
    if (cur >= 0) flush(i);
    if (i == rows.size()) break;
    cur = rows[i].first, first = i;
    GQA_CUDA_CHECK(cudaMemcpy(K.data(), a.k + cur * a.k_stride_seq, seq_elems * 2, cudaMemcpyDeviceToHost));
    GQA_CUDA_CHECK(cudaMemcpy(V.data(), a.v + cur * a.v_stride_seq, seq_elems * 2, cudaMemcpyDeviceToHost));
  }
  for (const auto& [rel, mabs] : results) {
    ++r.rows;
    if (!std::isfinite(rel) || !std::isfinite(mabs)) r.nan = true;
    if (!(rel <= kRowBound)) ++r.bad_rows;
    r.max_rel_l2 = std::max(r.max_rel_l2, rel);
    r.max_abs = std::max(r.max_abs, mabs);
  }
  return r;
}

// Microseconds per call: `calls` calls (call i on copy i % sets) captured into one graph; the median of
// 15 timed replays after 3 warm-up replays.
template <class Fn>
double time_calls(cudaStream_t st, int calls, Fn&& fn) {
  auto g = cuda::Graph::capture(st, [&] {
    for (int i = 0; i < calls; ++i) fn(i);
  });
  cuda::Event t0(true), t1(true);
  std::vector<float> ms;
  for (int r = 0; r < 18; ++r) {
    GQA_CUDA_CHECK(cudaEventRecord(t0.get(), st));
    g.launch(st);
    GQA_CUDA_CHECK(cudaEventRecord(t1.get(), st));
    GQA_CUDA_CHECK(cudaEventSynchronize(t1.get()));
    float t = 0;
    GQA_CUDA_CHECK(cudaEventElapsedTime(&t, t0.get(), t1.get()));
    if (r >= 3) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] * 1e3 / calls;
}

// Copies of K/V per mode: hot 1; cold enough to cover rotate_mib (at most 64). Same rule in the torch script.
int sets_for(const std::string& mode, int64_t kv_bytes, int rotate_mib) {
  if (mode == "hot" || rotate_mib <= 0) return 1;
  const int64_t want = static_cast<int64_t>(rotate_mib) << 20;
  return static_cast<int>(std::clamp<int64_t>((want + kv_bytes - 1) / kv_bytes, 1, 64));
}
int calls_for(int sets) { return sets * ((20 + sets - 1) / sets); }

struct Runner {
  const Args& args;
  cudaStream_t st;
  int sms;
  double bw;
  bool all_ok = true;

  // Times (and checks) one shape in every mode; returns one JSON object per mode.
  nlohmann::json run(const std::string& kind, int seqs, int q_per_seq, const std::vector<int32_t>& kv_lens,
                     nlohmann::json shape, uint64_t seed) {
    nlohmann::json rows = nlohmann::json::array();
    int64_t kv_bytes = 0;
    for (int32_t l : kv_lens) kv_bytes += static_cast<int64_t>(l) * kKvHeads * kDim * 4;
    nlohmann::json check;
    if (args.check) {
      Problem p = make_problem(seqs, q_per_seq, kv_lens, 1, seed, st, sms);
      const CheckResult c = check_problem(p, st);
      all_ok = all_ok && c.ok();
      check = c.json();
      std::printf("  check %-8s %s: max row rel L2 %.2e, max abs %.2e over %d rows: %s\n", kind.c_str(),
                  shape.dump().c_str(), c.max_rel_l2, c.max_abs, c.rows, c.ok() ? "ok" : "FAILED");
    }
    if (!args.time) {
      nlohmann::json r = shape;
      r["kind"] = kind, r["check"] = check;
      rows.push_back(r);
      return rows;
    }
    for (const auto& mode : args.modes) {
      const int sets = sets_for(mode, kv_bytes, args.rotate_mib);
      Problem p = make_problem(seqs, q_per_seq, kv_lens, sets, seed, st, sms);
      const int calls = calls_for(sets);
      const double us = time_calls(st, calls, [&](int i) { call(cuda::stock_attention_abi, p.args_for(i % sets), "stock_attention_abi"); });
      call(cuda::stock_attention_prepare, p.args_for(0), "stock_attention_prepare");
      const double us_k = time_calls(st, calls, [&](int i) {
        call(cuda::stock_attention_engine_kernels, p.args_for(i % sets), "stock_attention_engine_kernels");
      });
      double us_mma = 0, us_simt = 0;  // prefill: the kernels alone (single sequence), after prepare's pos
      if (kind != "decode") {
        cuda::DeviceBuffer pos(4);
        const int pos0 = kv_lens[0] - q_per_seq;
        GQA_CUDA_CHECK(cudaMemcpyAsync(pos.get(), &pos0, 4, cudaMemcpyHostToDevice, st));
        GQA_CUDA_CHECK(cudaStreamSynchronize(st));
        auto prefill_args = [&](int set, cuda::PrefillKernel kernel) {
          const gqa_attention_args ga = p.args_for(set);
          cuda::PrefillAttentionArgs pa;
          pa.q_bf16 = reinterpret_cast<const cuda::bf16*>(ga.q), pa.T = q_per_seq;
          pa.k_cache = reinterpret_cast<const cuda::bf16*>(ga.k), pa.v_cache = reinterpret_cast<const cuda::bf16*>(ga.v);
          pa.capacity = p.capacity, pa.pos = pos.as<int>(), pa.n_heads = kHeads, pa.n_kv = kKvHeads, pa.head_dim = kDim;
          pa.scale = ga.scale, pa.out = reinterpret_cast<cuda::bf16*>(ga.out), pa.kernel = kernel;
          return pa;
        };
        const cuda::Exec ex{st, true, sms};
        us_mma = time_calls(st, calls, [&](int i) { cuda::attention_prefill(ex, prefill_args(i % sets, cuda::PrefillKernel::Mma)); });
        if (args.prefill_simt)
          us_simt = time_calls(st, calls, [&](int i) { cuda::attention_prefill(ex, prefill_args(i % sets, cuda::PrefillKernel::Simt)); });
      }
      nlohmann::json r = shape;
      r["kind"] = kind, r["mode"] = mode, r["sets"] = sets, r["calls_per_graph"] = calls;
      r["us"] = us, r["us_kernels_only"] = us_k, r["kv_bytes"] = p.kv_bytes();
      r["percent_of_read_bandwidth"] = 100.0 * p.kv_bytes() / (us * 1e-6) / bw;
      if (kind != "decode") {
        double flops = 0;  // causal: each query row scores its keys once (4·d flops per key and head)
        for (int s = 0; s < seqs; ++s)
          for (int t = 0; t < q_per_seq; ++t) flops += 4.0 * kDim * kHeads * (kv_lens[s] - q_per_seq + t + 1);
        r["tflops"] = flops / (us * 1e-6) / 1e12;
        r["us_mma"] = us_mma, r["tflops_mma"] = flops / (us_mma * 1e-6) / 1e12;
        if (us_simt > 0) r["us_simt"] = us_simt, r["tflops_simt"] = flops / (us_simt * 1e-6) / 1e12;
        std::printf("  %-8s %-4s %s: mma kernel alone %9.2f us (%.1f TFLOP/s)", kind.c_str(), mode.c_str(),
                    shape.dump().c_str(), us_mma, r["tflops_mma"].get<double>());
        if (us_simt > 0) std::printf(", simt kernel alone %9.2f us (%.1f TFLOP/s)", us_simt, r["tflops_simt"].get<double>());
        std::printf("\n");
      }
      if (!check.is_null()) r["check"] = check;
      std::printf("  %-8s %-4s %s: %9.2f us (kernels only %9.2f us), %5.1f%% of read bandwidth%s\n", kind.c_str(),
                  mode.c_str(), shape.dump().c_str(), us, us_k, r["percent_of_read_bandwidth"].get<double>(),
                  r.contains("tflops") ? (", " + std::to_string(r["tflops"].get<double>()) + " TFLOP/s").c_str() : "");
      rows.push_back(r);
    }
    return rows;
  }
};

int main_impl(int argc, char** argv) {
  const Args args = parse(argc, argv);
  if (cuda::device_count() == 0) fail("attention_bench", "no CUDA device");
  int dev = 0, sms = 0;
  GQA_CUDA_CHECK(cudaGetDevice(&dev));
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  cudaDeviceProp prop{};
  GQA_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  cuda::configure_kernels();  // shared-memory opt-ins: not allowed during graph capture
  const double bw = args.time ? cuda::measure_read_bandwidth(size_t(4) << 30, 10) : 1.0;
  std::printf("device %s, %d SMs, read bandwidth %.0f GB/s\n", prop.name, sms, bw / 1e9);
  cuda::Stream stream;
  Runner run{args, stream.get(), sms, bw};
  nlohmann::json decode = nlohmann::json::array(), prefill = nlohmann::json::array();
  uint64_t seed = 1000;
  for (int b : args.batches)
    for (int ctx : args.contexts) {
      std::vector<int32_t> lens(b, ctx);
      if (args.ragged)
        for (int s = 0; s < b; ++s) lens[s] = std::max(1, ctx - static_cast<int>((int64_t(s) * 7919) % ctx));
      for (auto& r : run.run("decode", b, 1, lens, {{"batch", b}, {"context", ctx}}, seed += 10)) decode.push_back(r);
    }
  for (int L : args.prefill)
    for (auto& r : run.run("prefill", 1, L, {L}, {{"L", L}, {"cached", 0}}, seed += 10)) prefill.push_back(r);
  for (auto [q, kv] : args.chunked)
    for (auto& r : run.run("chunked", 1, q, {kv}, {{"L", q}, {"cached", kv - q}}, seed += 10)) prefill.push_back(r);
  nlohmann::json j = {{"device", prop.name}, {"sms", sms}, {"read_bandwidth_bytes_per_second", bw},
                      {"modes", args.modes}, {"rotate_mib", args.rotate_mib},
                      {"heads", kHeads}, {"kv_heads", kKvHeads}, {"head_dim", kDim}, {"decode", decode},
                      {"prefill", prefill}, {"all_checks_ok", run.all_ok}};
  if (!args.json_out.empty()) {
    std::ofstream f(args.json_out);
    if (!f) fail("attention_bench", "cannot write {}", args.json_out);
    f << j.dump(1) << "\n";
  }
  if (args.check && !run.all_ok) {
    std::printf("correctness: FAILED (see the rows above)\n");
    return 1;
  }
  if (args.check) std::printf("correctness: all checked shapes ok\n");
  return 0;
}

}  // namespace
}  // namespace gqa

int main(int argc, char** argv) {
  try {
    return gqa::main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
