// The device entry's correctness cases (decode_entry_check.h).
#include "evaluate/decode_entry_check.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/decode_program.h"
#include "evaluate/decode_entry_harness.h"
#include "gqa/decode_abi.cuh"

// The harness's LTO IR (cmake/LtoBlob.cmake).
extern "C" const char gqa_decode_harness_lto[];
extern "C" const char gqa_decode_harness_lto_end[];

namespace gqa::eval {

namespace {

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
double from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Case {
  int pos, splits;
  bool large_logits;
};

const char* violation_text(unsigned f) {
  if (f & 1u) return "wrote outside its scratch area (a canary around scratch, q or the tile stage changed)";
  if (f & 2u) return "wrote to q or the new key/value, which are read-only";
  if (f & 4u) return "acquired a tile before every warp released the one before, or more tiles than the split has";
  if (f & 8u) return "did not release every tile it acquired, once per warp";
  if (f & 16u) return "wrote to a tile it held";
  return "";
}

// Device buffers of one case, freed on scope exit.
struct Buffers {
  cuda::DeviceBuffer q, k, v, new_kv, states, parts, violations;
};

}  // namespace

DecodeEntryReport check_decode_entry(std::string_view program_lto, int D, int G, int split_keys, int kv_tile_kib,
                                     uint64_t seed, const std::string& cache_dir) {
  DecodeEntryReport rep;
  const std::string kernel = fmt::format("gqa_decode_harness_d{}_g{}", D, G);
  const std::string_view harness(gqa_decode_harness_lto,
                                 static_cast<size_t>(gqa_decode_harness_lto_end - gqa_decode_harness_lto));
  const cuda::DecodeLink link = cuda::link_with_program(harness, "decode_entry_harness", program_lto, kernel,
                                                        "sm_90a", cache_dir);
  rep.link_seconds = link.seconds;
  cuda::LoadedDecodeProgram loaded(link, kernel, "program");
  const void* fn = loaded.kernel().fn;
  if (loaded.plan().has) {
    if (const std::string why = cuda::check_decode_plan(loaded.plan().plan, D); !why.empty()) {
      rep.failed = 1;
      rep.text = "FAIL the program's plan: " + why + "\n";
      return rep;
    }
    split_keys = loaded.plan().plan.split_keys;
    kv_tile_kib = loaded.plan().plan.kv_tile_kib;
  }
  rep.split_keys = split_keys, rep.kv_tile_kib = kv_tile_kib;

  const int kpt = kv_tile_kib * 1024 / (4 * D), W = D + 2;
  const int stage_bytes = kpt * D * 2 * 2;
  const int scratch_bytes = (GQA_DECODE_MAX_PARTS * G * W * 4 + 15) / 16 * 16;  // the contract's minimum
  const HarnessLayout lay = harness_layout(D, G, stage_bytes, scratch_bytes);
  GQA_CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(lay.total)));

  std::mt19937_64 rng(seed);
  std::vector<Case> cases;
  std::vector<int> positions = {0, 1, kpt - 1, kpt, kpt + 1, 2 * kpt + 3, 1000, 4099, 8191};
  for (int i = 0; i < 2; ++i) positions.push_back(1 + static_cast<int>(rng() % 20000));
  for (int pos : positions) {
    const int engine_splits = std::clamp((pos + 1 + split_keys - 1) / split_keys, 1, 16);  // the step's, 132 SMs
    std::vector<int> splits = {engine_splits, 1, 7};
    std::sort(splits.begin(), splits.end());
    splits.erase(std::unique(splits.begin(), splits.end()), splits.end());
    for (int s : splits) cases.push_back({pos, s, false});
  }
  cases.push_back({3 * kpt + 7, std::clamp((3 * kpt + 8 + split_keys - 1) / split_keys, 1, 16), true});

  const int max_pos = *std::max_element(positions.begin(), positions.end()) + 3 * kpt + 8;
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> k(static_cast<size_t>(max_pos) * D), v(k.size()), new_kv(2 * static_cast<size_t>(D));
  for (auto& x : k) x = to_bf16(nd(rng));
  for (auto& x : v) x = to_bf16(nd(rng));
  Buffers b;
  b.k = cuda::DeviceBuffer(k.size() * 2);
  b.v = cuda::DeviceBuffer(v.size() * 2);
  b.q = cuda::DeviceBuffer(static_cast<size_t>(G) * D * 4);
  b.new_kv = cuda::DeviceBuffer(new_kv.size() * 2);
  b.states = cuda::DeviceBuffer(static_cast<size_t>(16) * GQA_DECODE_MAX_PARTS * G * W * 4);
  b.parts = cuda::DeviceBuffer(16 * 4);
  b.violations = cuda::DeviceBuffer(16 * 4);
  GQA_CUDA_CHECK(cudaMemcpy(b.k.get(), k.data(), k.size() * 2, cudaMemcpyHostToDevice));
  GQA_CUDA_CHECK(cudaMemcpy(b.v.get(), v.data(), v.size() * 2, cudaMemcpyHostToDevice));

  for (const Case& c : cases) {
    ++rep.cases;
    std::vector<float> q(static_cast<size_t>(G) * D);
    for (auto& x : q) x = 3.f * nd(rng);
    if (c.large_logits)
      for (int d = 0; d < D; ++d) q[d] *= 12.f;  // head 0: logits in the hundreds
    for (auto& x : new_kv) x = to_bf16(nd(rng));
    GQA_CUDA_CHECK(cudaMemcpy(b.q.get(), q.data(), q.size() * 4, cudaMemcpyHostToDevice));
    GQA_CUDA_CHECK(cudaMemcpy(b.new_kv.get(), new_kv.data(), new_kv.size() * 2, cudaMemcpyHostToDevice));
    HarnessArgs a{.q = b.q.as<float>(),
                  .k = b.k.as<uint16_t>(),
                  .v = b.v.as<uint16_t>(),
                  .new_kv = b.new_kv.as<uint16_t>(),
                  .pos = c.pos,
                  .keys_per_tile = kpt,
                  .num_splits = c.splits,
                  .stage_bytes = stage_bytes,
                  .scratch_bytes = scratch_bytes,
                  .states_out = b.states.as<float>(),
                  .parts_out = b.parts.as<int>(),
                  .violations = b.violations.as<unsigned>()};
    const size_t n_states = static_cast<size_t>(c.splits) * GQA_DECODE_MAX_PARTS * G * W;
    std::vector<float> states[2];
    std::vector<int> parts(static_cast<size_t>(c.splits));
    std::vector<unsigned> viol(static_cast<size_t>(c.splits));
    const std::string where = fmt::format("pos {:5d} (keys {}), {:2d} split(s), tiles of {} keys{}", c.pos, c.pos + 1,
                                          c.splits, kpt, c.large_logits ? ", large logits" : "");
    try {
      for (int run = 0; run < 2; ++run) {  // twice: the same bits both times (nothing carried between calls)
        GQA_CUDA_CHECK(cudaMemset(b.states.get(), 0xff, n_states * 4));  // poisoned: NaN
        GQA_CUDA_CHECK(cudaMemset(b.parts.get(), 0xff, 16 * 4));
        void* params[] = {&a};
        GQA_CUDA_CHECK(cudaLaunchKernel(fn, dim3(c.splits), dim3(GQA_DECODE_THREADS + 32), params, lay.total, nullptr));
        GQA_CUDA_CHECK(cudaDeviceSynchronize());
        states[run].resize(n_states);
        GQA_CUDA_CHECK(cudaMemcpy(states[run].data(), b.states.get(), n_states * 4, cudaMemcpyDeviceToHost));
        GQA_CUDA_CHECK(cudaMemcpy(parts.data(), b.parts.get(), parts.size() * 4, cudaMemcpyDeviceToHost));
        GQA_CUDA_CHECK(cudaMemcpy(viol.data(), b.violations.get(), viol.size() * 4, cudaMemcpyDeviceToHost));
      }
    } catch (const Error& e) {  // a fault in the program's code: the CUDA context is gone, no case can follow
      ++rep.failed;
      rep.text += fmt::format("FAIL {}: the launch failed: {}\n", where, e.what());
      rep.text += "the remaining cases were not run (the failed launch left the GPU context unusable)\n";
      return rep;
    }
    std::string why;
    for (int s = 0; s < c.splits && why.empty(); ++s) {
      if (viol[s]) why = fmt::format("split {}: {}", s, violation_text(viol[s]));
      else if (parts[s] < 1 || parts[s] > GQA_DECODE_MAX_PARTS)
        why = fmt::format("split {} returned {} partial states (1..{})", s, parts[s], GQA_DECODE_MAX_PARTS);
    }
    if (why.empty() && std::memcmp(states[0].data(), states[1].data(), n_states * 4) != 0) {
      // Only the states the entry returned count (the rest stays poisoned, and NaN != NaN bitwise is fine).
      for (int s = 0; s < c.splits && why.empty(); ++s)
        for (size_t i = 0; i < static_cast<size_t>(parts[s]) * G * W && why.empty(); ++i) {
          const size_t at = static_cast<size_t>(s) * GQA_DECODE_MAX_PARTS * G * W + i;
          if (std::memcmp(&states[0][at], &states[1][at], 4) != 0)
            why = "two calls on the same inputs gave different results (state carried between calls, or an order "
                  "that depends on timing)";
        }
    }
    double err = 0;
    for (int g = 0; g < G && why.empty(); ++g) {
      // Reference: softmax over keys 0..pos (key pos is the new one), float64.
      std::vector<double> sc(static_cast<size_t>(c.pos) + 1), ref(static_cast<size_t>(D), 0.0);
      double mx = -INFINITY;
      for (int j = 0; j <= c.pos; ++j) {
        const uint16_t* kr = j < c.pos ? &k[static_cast<size_t>(j) * D] : new_kv.data();
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += static_cast<double>(q[static_cast<size_t>(g) * D + d]) * from_bf16(kr[d]);
        sc[j] = dot / std::sqrt(static_cast<double>(D));
        mx = std::max(mx, sc[j]);
      }
      double den = 0;
      for (int j = 0; j <= c.pos; ++j) {
        const double p = std::exp(sc[j] - mx);
        den += p;
        const uint16_t* vr = j < c.pos ? &v[static_cast<size_t>(j) * D] : new_kv.data() + D;
        for (int d = 0; d < D; ++d) ref[d] += p * from_bf16(vr[d]);
      }
      for (auto& x : ref) x /= den;
      // The entry's states, merged in float64.
      double M = -INFINITY;
      for (int s = 0; s < c.splits; ++s)
        for (int p = 0; p < parts[s]; ++p) {
          const float* st = &states[0][(static_cast<size_t>(s) * GQA_DECODE_MAX_PARTS + p) * G * W + g * W];
          for (int d = 0; d < W && why.empty(); ++d)
            if (std::isnan(st[d])) why = fmt::format("split {} state {} head {} holds NaN (left unwritten?)", s, p, g);
          if (std::isinf(st[D]) && st[D] < 0 && st[D + 1] != 0.f)
            why = fmt::format("split {} state {} head {}: an empty state (m = -inf) with l = {}", s, p, g, st[D + 1]);
          M = std::max(M, static_cast<double>(st[D]));
        }
      if (!why.empty()) break;
      if (!std::isfinite(M)) {
        why = fmt::format("head {}: every state is empty, but the split attends at least the new key", g);
        break;
      }
      double L = 0;
      std::vector<double> O(static_cast<size_t>(D), 0.0);
      for (int s = 0; s < c.splits; ++s)
        for (int p = 0; p < parts[s]; ++p) {
          const float* st = &states[0][(static_cast<size_t>(s) * GQA_DECODE_MAX_PARTS + p) * G * W + g * W];
          if (std::isinf(st[D])) continue;
          const double w = std::exp2(static_cast<double>(st[D]) - M);
          L += w * st[D + 1];
          for (int d = 0; d < D; ++d) O[d] += w * st[d];
        }
      double worst = 0, scale = 0;
      for (int d = 0; d < D; ++d) {
        worst = std::max(worst, std::abs(O[d] / L - ref[d]));
        scale = std::max(scale, std::abs(ref[d]));
      }
      const double e = worst / std::max(scale, 1e-6);
      if (!std::isfinite(e)) why = fmt::format("head {}: the merged output is not finite", g);
      err = std::max(err, std::isfinite(e) ? e : INFINITY);
    }
    rep.worst_error = std::max(rep.worst_error, err);
    const bool ok = why.empty() && err <= kDecodeEntryTolerance;
    if (!ok) ++rep.failed;
    rep.text += fmt::format("{} {}: {}\n", ok ? "ok  " : "FAIL", where,
                            !why.empty() ? why : fmt::format("row error {:.2e} (bound {:.0e})", err, kDecodeEntryTolerance));
  }
  rep.ok = rep.failed == 0;
  rep.text += fmt::format("{} of {} cases ok; worst row error {:.2e}\n", rep.cases - rep.failed, rep.cases,
                          rep.worst_error);
  return rep;
}

}  // namespace gqa::eval
