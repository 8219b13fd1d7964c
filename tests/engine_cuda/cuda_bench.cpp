// Benchmark of the CUDA engine (scripts/gpu.sh bench runs it on a GPU machine; not a test):
//   cuda_bench --model DIR [--contexts 128,2048,8192] [--layouts persistent,fused,unfused] [--tokens 256]
//              [--json FILE] [--quick] [--only-layer] [--cuda-option KEY=VALUE ...]
// 1. read bandwidth of device memory (streaming reduction over 4 GiB);
// 2. the decode GEMV against cuBLAS (cublasGemmEx, n = 1) on Qwen3-0.6B's five matrix shapes, each call on
//    another copy of the weights so that L2 never holds them, timed as graph replays;
// 3. batch-1 generation (greedy, device sampling) at each prompt length: prefill and decode tokens/s, the
//    roofline time/token >= (weight bytes + context x KV bytes/token) / bandwidth at the mean decode
//    context, % of roofline, peak device memory against weights + KV cache + 10%;
//    for every decode-step layout (persistent one-launch step, fused per-layer kernels, unfused original
//    kernels) in the same run;
// 4. the default (persistent) layout at the first context without programmatic dependent launch, and without
//    CUDA graphs; its attention split length at the first and last context;
// 5. the fused per-layer kernel alone (28 launches on distinct weights), against its bytes.
// --quick: only 3 for the persistent and fused layouts. --cuda-option: a CudaEngineOptions knob for every engine.
// --decode-program PROG.cu [--rounds N]: instead of all the above, the persistent step with PROG's device entry
// linked in (include/gqa/decode_abi.cuh) against the built-in step, alternated N times (default 3) at each
// context in the same process; prints the compile and link times and the median ratio per context.
#include <cuda_runtime.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cuda_engine.h"
#include "engine/cuda/ops.h"
#include "engine/generate.h"
#include "programs/compiler.h"

namespace gqa {
namespace {

struct Args {
  std::string model, json_out;
  std::vector<int64_t> contexts{128, 2048, 8192};
  int64_t tokens = 256;
  bool only_layer = false;  // --only-layer: just the fused layer kernel's breakdown (for profiling it)
  bool quick = false;       // --quick: layouts x contexts only
  std::vector<std::string> layouts{"persistent", "fused", "unfused"};  // --layouts: which decode layouts
  CudaEngineOptions options;  // --cuda-option KEY=VALUE: the knobs every engine of the run gets
  std::string decode_program;  // --decode-program PROG.cu: the parity run of the program's device entry
  int rounds = 3;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) fail("bench", "{} needs a value", k);
      return argv[++i];
    };
    if (k == "--model") {
      a.model = val();
    } else if (k == "--tokens") {
      a.tokens = std::stoll(val());
    } else if (k == "--only-layer") {
      a.only_layer = true;
    } else if (k == "--quick") {
      a.quick = true;
    } else if (k == "--json") {
      a.json_out = val();
    } else if (k == "--layouts") {
      a.layouts.clear();
      std::stringstream ss(val());
      for (std::string item; std::getline(ss, item, ',');) a.layouts.push_back(decode_layout_name(parse_decode_layout(item)));
    } else if (k == "--cuda-option") {
      set_cuda_option(a.options, val());
    } else if (k == "--decode-program") {
      a.decode_program = val();
    } else if (k == "--rounds") {
      a.rounds = std::stoi(val());
    } else if (k == "--contexts") {
      a.contexts.clear();
      std::stringstream ss(val());
      for (std::string item; std::getline(ss, item, ',');) a.contexts.push_back(std::stoll(item));
    } else {
      fail("bench", "unknown argument '{}' (known: --model --contexts --layouts --tokens --json --only-layer --quick "
           "--cuda-option --decode-program --rounds)", k);
    }
  }
  if (a.model.empty()) fail("bench", "--model DIR is required");
  return a;
}

std::vector<int32_t> random_prompt(int64_t n, uint64_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  uint64_t s = seed;
  for (auto& id : ids) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<int32_t>((s >> 33) % 151000);
  }
  return ids;
}

// Times `calls` enqueued by fn(i) as graph replays; returns microseconds per call (median of 10 replays).
template <class Fn>
double time_graph(cudaStream_t stream, int calls, Fn&& fn) {
  auto g = cuda::Graph::capture(stream, [&] {
    for (int i = 0; i < calls; ++i) fn(i);
  });
  cuda::Event t0(true), t1(true);
  std::vector<float> ms;
  for (int r = 0; r < 12; ++r) {
    GQA_CUDA_CHECK(cudaEventRecord(t0.get(), stream));
    g.launch(stream);
    GQA_CUDA_CHECK(cudaEventRecord(t1.get(), stream));
    GQA_CUDA_CHECK(cudaEventSynchronize(t1.get()));
    float t = 0;
    GQA_CUDA_CHECK(cudaEventElapsedTime(&t, t0.get(), t1.get()));
    if (r >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] * 1e3 / calls;
}

nlohmann::json gemv_vs_cublas(double bw) {
  struct Shape { const char* name; int n, k, copies; };
  const Shape shapes[] = {{"qkv", 4096, 1024, 28}, {"o_proj", 1024, 2048, 28}, {"gate_up", 6144, 1024, 28},
                          {"down", 1024, 3072, 28}, {"lm_head", 151936, 1024, 2}};
  int sms = 0;
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cuda::Stream stream;
  cuda::CublasHandle cublas;
  cuda::DeviceBuffer ws(16u << 20);
  GQA_CUBLAS_CHECK(cublasSetStream(cublas.get(), stream.get()));
  GQA_CUBLAS_CHECK(cublasSetWorkspace(cublas.get(), ws.get(), ws.bytes()));
  nlohmann::json out = nlohmann::json::array();
  std::printf("\n%-8s %7s %6s | %22s | %22s | %22s\n", "matrix", "n", "k", "own GEMV + PDL", "own GEMV", "cuBLAS GemmEx");
  for (const auto& s : shapes) {
    const size_t per = static_cast<size_t>(s.n) * s.k;
    cuda::DeviceBuffer w(per * s.copies * 2), xf(s.k * 4), xb(s.k * 2), y(s.n * 4);
    cuda::Exec ex{stream.get(), true, sms};
    cuda::fill_random_bf16(ex, w.as<cuda::bf16>(), per * s.copies, 7, 0.05f);
    cuda::fill_random_bf16(ex, xb.as<cuda::bf16>(), s.k, 8, 1.0f);
    std::vector<float> hx(s.k, 0.5f);
    GQA_CUDA_CHECK(cudaMemcpy(xf.get(), hx.data(), s.k * 4, cudaMemcpyHostToDevice));
    const int calls = s.copies * 4;
    auto own = [&](bool pdl) {
      cuda::Exec e{stream.get(), pdl, sms};
      return time_graph(stream.get(), calls, [&](int i) {
        cuda::GemvArgs a;
        a.w = w.as<cuda::bf16>() + per * (i % s.copies), a.n = s.n, a.k = s.k, a.x = xf.as<float>(), a.y = y.as<float>();
        cuda::gemv(e, cuda::GemvInput::Plain, a);
      });
    };
    const double t_pdl = own(true), t_own = own(false);
    const float alpha = 1, beta = 0;
    const double t_cublas = time_graph(stream.get(), calls, [&](int i) {
      GQA_CUBLAS_CHECK(cublasGemmEx(cublas.get(), CUBLAS_OP_T, CUBLAS_OP_N, s.n, 1, s.k, &alpha,
                                    w.as<cuda::bf16>() + per * (i % s.copies), CUDA_R_16BF, s.k, xb.get(), CUDA_R_16BF,
                                    s.k, &beta, y.get(), CUDA_R_32F, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    });
    auto gbs = [&](double us) { return per * 2.0 / (us * 1e-6) / 1e9; };
    std::printf("%-8s %7d %6d | %7.2f us %5.0f GB/s %3.0f%% | %7.2f us %5.0f GB/s %3.0f%% | %7.2f us %5.0f GB/s %3.0f%%\n",
                s.name, s.n, s.k, t_pdl, gbs(t_pdl), 100 * gbs(t_pdl) * 1e9 / bw, t_own, gbs(t_own),
                100 * gbs(t_own) * 1e9 / bw, t_cublas, gbs(t_cublas), 100 * gbs(t_cublas) * 1e9 / bw);
    out.push_back({{"matrix", s.name}, {"n", s.n}, {"k", s.k}, {"own_pdl_us", t_pdl}, {"own_us", t_own},
                   {"cublas_us", t_cublas}});
  }
  return out;
}

// The decode step's other kernels in isolation, 28 calls per graph (one per layer, each on its own
// layer of a Qwen3-0.6B-shaped cache), so that the per-token budget can be split by kernel.
nlohmann::json op_breakdown() {
  int sms = 0;
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cuda::Stream stream;
  const cuda::Exec ex{stream.get(), true, sms};
  const int L = 28, nh = 16, nkv = 8, D = 128, H = 1024, V = 151936;
  nlohmann::json out = nlohmann::json::object();
  std::printf("\n%-34s %10s %10s\n", "kernel (x28 unless noted)", "us/call", "us/token");
  for (int ctx : {128, 8192}) {
    const int cap = ctx + 256;
    const int splits = std::min({(cap + 31) / 32, 4 * sms / nkv, cuda::kMaxDecodeSplits});
    const size_t layer = static_cast<size_t>(nkv) * cap * D;
    cuda::DeviceBuffer kv(2 * L * layer * 2), q(nh * D * 4), qkv((nh + 2 * nkv) * D * 4), po(splits * nh * D * 4),
        pml(splits * nh * 8), o(nh * D * 4), cnt(nkv * 4), pos(4), nw(D * 2), inv(D * 2);
    cuda::fill_random_bf16(ex, kv.as<cuda::bf16>(), 2 * L * layer, 3, 1.0f);
    cuda::fill_random_bf16(ex, nw.as<cuda::bf16>(), D, 4, 1.0f);
    GQA_CUDA_CHECK(cudaMemsetAsync(q.get(), 0, q.bytes(), stream.get()));
    GQA_CUDA_CHECK(cudaMemsetAsync(qkv.get(), 0, qkv.bytes(), stream.get()));
    GQA_CUDA_CHECK(cudaMemsetAsync(inv.get(), 0, inv.bytes(), stream.get()));
    GQA_CUDA_CHECK(cudaMemsetAsync(cnt.get(), 0, cnt.bytes(), stream.get()));
    const int p = ctx;
    GQA_CUDA_CHECK(cudaMemcpyAsync(pos.get(), &p, 4, cudaMemcpyHostToDevice, stream.get()));
    GQA_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
    const double t_att = time_graph(stream.get(), L, [&](int l) {
      cuda::DecodeAttentionArgs a;
      a.q = q.as<float>(), a.k_cache = kv.as<cuda::bf16>() + 2 * l * layer, a.v_cache = a.k_cache + layer;
      a.capacity = cap, a.pos = pos.as<int>(), a.n_heads = nh, a.n_kv = nkv, a.head_dim = D, a.n_splits = splits;
      a.scale = 0.088f, a.part_o = po.as<float>(), a.part_ml = pml.as<float>(), a.counters = cnt.as<unsigned>();
      a.out = o.as<float>();
      cuda::attention_decode(ex, a);
    });
    const double kv_bytes = 2.0 * nkv * (ctx + 1) * D * 2;
    std::printf("%-34s %10.2f %10.1f   (%.0f GB/s)\n", fmt::format("attention_decode ctx {} ({} splits)", ctx, splits).c_str(),
                t_att, t_att * L, kv_bytes / (t_att * 1e-6) / 1e9);
    out[fmt::format("attention_decode_{}_us", ctx)] = t_att;
    if (ctx != 128) continue;
    const double t_rope = time_graph(stream.get(), L, [&](int l) {
      cuda::QkNormRopeArgs a;
      a.qkv = qkv.as<float>(), a.T = 1, a.n_heads = nh, a.n_kv = nkv, a.head_dim = D, a.q_norm = nw.as<cuda::bf16>();
      a.k_norm = a.q_norm, a.eps = 1e-6f, a.inv_freq = inv.as<float>(), a.pos = pos.as<int>(), a.q_out = q.as<float>();
      a.k_cache = kv.as<cuda::bf16>() + 2 * l * layer, a.v_cache = a.k_cache + layer, a.capacity = cap;
      cuda::qk_norm_rope(ex, a);
    });
    std::printf("%-34s %10.2f %10.1f\n", "qk_norm_rope", t_rope, t_rope * L);
    out["qk_norm_rope_us"] = t_rope;
    cuda::DeviceBuffer x(H * 4), emb(static_cast<size_t>(V) * H * 2), tok(4), logits(static_cast<size_t>(V) * 4),
        scratch(cuda::sample_scratch_bytes(V));
    GQA_CUDA_CHECK(cudaMemsetAsync(tok.get(), 0, 4, stream.get()));
    cuda::fill_random_bf16(ex, emb.as<cuda::bf16>(), static_cast<size_t>(V) * H, 5, 1.0f);
    const double t_embed = time_graph(stream.get(), L, [&](int) { cuda::embed(ex, tok.as<int32_t>(), 1, emb.as<cuda::bf16>(), H, x.as<float>()); });
    std::printf("%-34s %10.2f %10.1f\n", "embed (x1 per token)", t_embed, t_embed);
    out["embed_us"] = t_embed;
    GQA_CUDA_CHECK(cudaMemsetAsync(logits.get(), 0, logits.bytes(), stream.get()));
    const double t_sample = time_graph(stream.get(), L, [&](int) {
      cuda::SampleArgs a;
      a.logits = logits.as<float>(), a.vocab = V, a.token = tok.as<int32_t>(), a.scratch = scratch.get();
      cuda::sample(ex, a);
    });
    std::printf("%-34s %10.2f %10.1f\n", "greedy sampling (x1 per token)", t_sample, t_sample);
    out["greedy_sample_us"] = t_sample;
  }
  return out;
}

// The fused layout's per-layer kernel without attention: 28 launches, each on its own layer's weights (the
// whole Qwen3-0.6B layer stack), so its time per layer compares with the layer's bytes over the bandwidth.
nlohmann::json layer_kernel(double bw) {
  int sms = 0;
  GQA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cuda::Stream stream;
  const cuda::Exec ex{stream.get(), true, sms};
  const int L = 28, H = 1024, I = 3072, nh = 16, nkv = 8, D = 128, cap = 512, qd = nh * D, kvd = nkv * D;
  const size_t per_layer = static_cast<size_t>(H) * qd + 2ull * I * H + static_cast<size_t>(H) * I +
                           static_cast<size_t>(qd + 2 * kvd) * H;
  cuda::DeviceBuffer w(per_layer * L * 2), norms(4 * H * 2), x(H * 4), att(qd * 4), gu(2 * I * 4), qkv((qd + 2 * kvd) * 4),
      q(qd * 4), kv(2ull * nkv * cap * D * 2), pos(4), inv(D * 2), sync(cuda::decode_layer_sync_words(nh, nkv) * 4);
  cuda::fill_random_bf16(ex, w.as<cuda::bf16>(), per_layer * L, 9, 0.05f);
  cuda::fill_random_bf16(ex, norms.as<cuda::bf16>(), 4 * H, 10, 1.0f);
  for (auto* b : {&x, &att, &inv, &sync}) GQA_CUDA_CHECK(cudaMemsetAsync(b->get(), 0, b->bytes(), stream.get()));
  const int p = 100;
  GQA_CUDA_CHECK(cudaMemcpyAsync(pos.get(), &p, 4, cudaMemcpyHostToDevice, stream.get()));
  GQA_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  const double bytes = per_layer * 2.0;
  struct Variant { const char* name; bool pdl; };
  const Variant variants[] = {{"full", true}, {"full, no PDL", false}};
  nlohmann::json out = nlohmann::json::object();
  for (const Variant& v : variants) {
  const cuda::Exec exv{stream.get(), v.pdl, sms};
  const double us = time_graph(stream.get(), L, [&](int l) {
    const cuda::bf16* base = w.as<cuda::bf16>() + per_layer * l;
    cuda::DecodeLayerArgs a;
    a.hidden = H, a.inter = I, a.n_heads = nh, a.n_kv = nkv, a.head_dim = D, a.eps = 1e-6f;
    a.wo = base, a.wgu = a.wo + static_cast<size_t>(H) * qd, a.wdown = a.wgu + 2ull * I * H;
    a.wqkv = a.wdown + static_cast<size_t>(H) * I;
    a.mlp_norm = norms.as<cuda::bf16>(), a.attn_norm = a.mlp_norm + H, a.q_norm = a.mlp_norm + 2 * H;
    a.k_norm = a.mlp_norm + 3 * H, a.att = att.as<float>(), a.gu = gu.as<float>(), a.inv_freq = inv.as<float>();
    a.qkv = qkv.as<float>(), a.q_out = q.as<float>(), a.k_cache = kv.as<cuda::bf16>();
    a.v_cache = a.k_cache + static_cast<size_t>(nkv) * cap * D, a.capacity = cap, a.pos = pos.as<int>();
    a.x = x.as<float>(), a.sync = sync.as<unsigned>();
    cuda::decode_layer(exv, a);
  });
  std::printf("%-34s %10.2f %10.1f   (%.1f MB/layer: %.0f GB/s = %.0f%% of read bandwidth; bytes alone %.2f us)\n",
              fmt::format("layer kernel: {}", v.name).c_str(), us, us * L, bytes / 1e6, bytes / (us * 1e-6) / 1e9,
              100.0 * bytes / (us * 1e-6) / bw, bytes / bw * 1e6);
  out[v.name] = us;
  }
  // Leave x and the barrier in a sane state for later users of the buffers (none; they are freed here).
  return {{"us_per_layer", out["full"]}, {"bytes_per_layer", bytes}, {"variants", out}};
}

nlohmann::json bench_context(const std::string& model, const CudaEngineOptions& eo, const char* variant, int64_t ctx,
                             int64_t tokens, double bw, Engine* reuse) {
  std::unique_ptr<Engine> owned;
  Engine* e = reuse;
  if (!e) {
    owned = open_cuda_engine(model, eo);
    e = owned.get();
  }
  const ModelConfig& c = e->config();
  GenerateOptions o;
  o.max_tokens = tokens;
  o.ignore_stop_tokens = true;
  auto prompt = random_prompt(ctx, static_cast<uint64_t>(ctx));
  generate(*e, prompt, o);  // warm-up: graph capture, cuBLAS heuristics, same capacity as the timed run
  auto r = generate(*e, prompt, o);
  const auto& s = r.stats;
  const double weight_bytes = static_cast<double>(c.parameter_count()) * 2;
  const double kv_per_token = static_cast<double>(c.num_hidden_layers) * 2 * c.kv_dim() * 2;
  const double mean_ctx = static_cast<double>(ctx) + tokens / 2.0;
  const double roofline_s = (weight_bytes + mean_ctx * kv_per_token) / bw;
  const double tps = s.decode_tokens_per_second();
  const double kv_bytes = static_cast<double>(ctx + tokens) * kv_per_token;
  const double budget = (weight_bytes + kv_bytes) * 1.10;
  // The layout that ran, which is not the one asked for when the persistent step cannot run (a tile size this
  // GPU cannot hold, say): the row says so instead of passing the fused layout's time off as the variant's.
  using Decode = CudaEngineOptions::Decode;
  const Decode ran = cuda_decode_layout(*e);
  const char* layout = decode_layout_name(ran);
  std::printf("%-10s ctx %6lld | prefill %9.0f tok/s | decode %7.1f tok/s %7.1f us/tok | roofline %7.1f tok/s | "
              "%5.1f%% | peak %.3f GB (budget %.3f GB)%s%s\n",
              variant, static_cast<long long>(ctx), s.prefill_tokens_per_second(), tps, 1e6 / tps, 1.0 / roofline_s,
              100.0 * tps * roofline_s, s.peak_device_memory_bytes / 1e9, budget / 1e9,
              ran == eo.decode ? "" : " | ran the layout ", ran == eo.decode ? "" : layout);
  std::fflush(stdout);
  return {{"variant", variant},
          {"layout", layout},
          {"requested_layout", decode_layout_name(eo.decode)},
          {"plan", cuda_decode_plan(*e)},
          {"context", ctx},
          {"tokens", tokens},
          {"decode_path", s.decode_path},
          {"prefill_tokens_per_second", s.prefill_tokens_per_second()},
          {"decode_tokens_per_second", tps},
          {"roofline_tokens_per_second", 1.0 / roofline_s},
          {"percent_of_roofline", 100.0 * tps * roofline_s},
          {"peak_device_memory_bytes", s.peak_device_memory_bytes},
          {"weights_plus_kv_bytes", weight_bytes + kv_bytes},
          {"memory_budget_bytes", budget}};
}

// The persistent step with a program's device entry against the built-in step: both engines open, alternated
// `rounds` times per context (built-in first in odd rounds, the program first in even ones).
nlohmann::json decode_program_parity(const Args& a, double bw) {
  CompileOptions co;
  co.target = Target::Cuda;
  co.output = Output::DeviceLto;
  co.cuda_arch = "sm_90a";
  co.use_cache = false;  // the uncached compile time is part of what this reports
  const auto t0 = std::chrono::steady_clock::now();
  const CompileResult cr = compile_program(read_file(a.decode_program, "bench"), a.decode_program, co);
  if (!cr.ok) fail("bench", "{}: the device entry did not compile:\n{}", a.decode_program, cr.log);
  const std::string lto = read_file(cr.so_path, "bench");
  CudaEngineOptions eo = a.options;
  eo.decode = CudaEngineOptions::Decode::Persistent;
  auto builtin = open_cuda_engine(a.model, eo);
  auto linked = open_cuda_engine(a.model, eo);
  const std::string link_cache = cr.dir + "/link-test";  // fresh: the link is timed uncached first
  const auto link = linked->set_decode_attention_program(lto, a.decode_program, link_cache);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto relink = linked->set_decode_attention_program(lto, a.decode_program, link_cache);
  std::printf("\n%s: compile %.2f s, link %.2f s (cached relink %.3f s, cached %d); compile + link + load %.2f s\n",
              a.decode_program.c_str(), cr.seconds, link.seconds, relink.seconds, relink.cached, total);
  nlohmann::json out{{"program", a.decode_program}, {"compile_seconds", cr.seconds}, {"link_seconds", link.seconds},
                     {"compile_link_load_seconds", total}, {"relink_cached", relink.cached}};
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t ctx : a.contexts) {
    std::vector<double> ratios;
    for (int r = 0; r < a.rounds; ++r) {
      const bool builtin_first = r % 2 == 0;
      nlohmann::json x, y;
      for (int k = 0; k < 2; ++k) {
        const bool is_builtin = (k == 0) == builtin_first;
        nlohmann::json res = bench_context(a.model, eo, is_builtin ? "built-in" : "program", ctx, a.tokens, bw,
                                           is_builtin ? builtin.get() : linked.get());
        (is_builtin ? x : y) = res;
      }
      const double ratio = y["decode_tokens_per_second"].get<double>() / x["decode_tokens_per_second"].get<double>();
      ratios.push_back(ratio);
      rows.push_back({{"context", ctx}, {"round", r}, {"builtin", x}, {"program", y}, {"ratio", ratio}});
    }
    std::sort(ratios.begin(), ratios.end());
    const double median = ratios[ratios.size() / 2];
    std::printf("== ctx %lld: program / built-in decode tok/s, median of %d: %.4f (min %.4f, max %.4f)\n",
                static_cast<long long>(ctx), a.rounds, median, ratios.front(), ratios.back());
    out["median_ratio"][std::to_string(ctx)] = median;
  }
  out["rounds"] = rows;
  return out;
}

int run(int argc, char** argv) {
  Args a = parse(argc, argv);
  if (cuda_device_count() == 0) fail("bench", "no CUDA device");
  cudaDeviceProp prop{};
  GQA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("\ndevice: %s, %d SMs, L2 %.0f MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6);
  cuda::configure_kernels();  // shared-memory opt-ins: not allowed during the graph captures below
  const double bw = cuda::measure_read_bandwidth(size_t(4) << 30, 10);
  std::printf("measured read bandwidth: %.0f GB/s (streaming reduction over 4 GiB, median of 10)\n", bw / 1e9);
  nlohmann::json j{{"device", prop.name}, {"read_bandwidth_bytes_per_second", bw}};
  if (a.only_layer) {
    j["layer_kernel"] = layer_kernel(bw);
    if (!a.json_out.empty()) std::ofstream(a.json_out) << j.dump(2) << "\n";
    return 0;
  }
  if (!a.quick) {
    j["gemv"] = gemv_vs_cublas(bw);
    j["ops"] = op_breakdown();
    j["layer_kernel"] = layer_kernel(bw);
  }

  if (!a.decode_program.empty()) {
    j["decode_program"] = decode_program_parity(a, bw);
    if (!a.json_out.empty()) std::ofstream(a.json_out) << j.dump(2) << "\n";
    return 0;
  }

  std::printf("\n");
  using Decode = CudaEngineOptions::Decode;
  nlohmann::json runs = nlohmann::json::array();
  for (auto dec : {Decode::Persistent, Decode::Fused, Decode::Unfused}) {
    if (a.quick && dec == Decode::Unfused) continue;
    const char* name = decode_layout_name(dec);
    if (std::find(a.layouts.begin(), a.layouts.end(), name) == a.layouts.end()) continue;
    CudaEngineOptions eo = a.options;
    eo.decode = dec;
    auto engine = open_cuda_engine(a.model, eo);
    for (int64_t ctx : a.contexts) runs.push_back(bench_context(a.model, eo, name, ctx, a.tokens, bw, engine.get()));
  }
  nlohmann::json sweep = nlohmann::json::array();
  if (!a.quick) {
    CudaEngineOptions no_pdl = a.options;
    no_pdl.programmatic_launch = false;
    runs.push_back(bench_context(a.model, no_pdl, "persistent-nopdl", a.contexts.front(), a.tokens, bw, nullptr));
    CudaEngineOptions no_graph = a.options;
    no_graph.cuda_graph = false;
    runs.push_back(bench_context(a.model, no_graph, "persistent-nograph", a.contexts.front(), a.tokens, bw, nullptr));
    // The persistent step's attention split length at the shortest and longest context (same results).
    for (int64_t ctx : {a.contexts.front(), a.contexts.back()})
      for (int keys : {32, 128, 256, 1024}) {
        CudaEngineOptions eo = a.options;
        eo.persistent_split_keys = keys;
        sweep.push_back(bench_context(a.model, eo, fmt::format("split{}", keys).c_str(), ctx, a.tokens, bw, nullptr));
      }
    // Its weight tile size (default 64 KiB; 96 is about the most an H100/H200 holds two stages of).
    for (int64_t ctx : {a.contexts.front(), a.contexts.back()})
      for (int kib : {32, 48, 80, 96}) {
        CudaEngineOptions eo = a.options;
        eo.persistent_tile_kib = kib;
        sweep.push_back(bench_context(a.model, eo, fmt::format("tile{}k", kib).c_str(), ctx, a.tokens, bw, nullptr));
      }
  }
  j["sweep"] = sweep;
  j["runs"] = runs;
  if (!a.json_out.empty()) std::ofstream(a.json_out) << j.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace gqa

int main(int argc, char** argv) {
  try {
    return gqa::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
