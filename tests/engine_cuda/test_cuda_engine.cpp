// The CUDA engine against the CPU reference engine on the tiny random models (Qwen3-0.6B's head layout, and
// 4:1 GQA with head_dim 64 and an untied lm_head). Tolerance, per logits row: relative L2 error <= 3e-2
// and the same top-1 token unless the CPU's gap to the GPU's choice is within twice the row's largest
// difference. The GPU keeps K/V in bf16 and feeds the prefill GEMMs bf16 activations; the CPU computes in
// float32 from the same bf16 weights. Greedy continuations must agree for at least 32 of 48 tokens.
// Decode tests run every step layout (the persistent one-launch step, fused per-layer kernels, and the
// original unfused kernels).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "engine/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "model/make_model.h"
#include "gpu_test_util.h"
#include "tiny_model.h"

namespace gqa {
namespace {

constexpr double kMaxRelL2 = 3e-2;

std::vector<int32_t> test_prompt(int n, int salt = 0) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ids[i] = (i * 7919 + 13 + salt * 104729) % 151000;
  return ids;
}

struct Preset {
  const char* name;
  uint64_t seed;
};
const Preset kPresets[] = {{"tiny", 1}, {"tiny-gqa4", 2}};

using Decode = CudaEngineOptions::Decode;
const Decode kDecodes[] = {Decode::Persistent, Decode::Fused, Decode::Unfused};
const char* name(Decode d) { return decode_layout_name(d); }

// A random model of `cfg` in a fresh temporary directory (the caller removes it).
std::filesystem::path random_model(const ModelConfig& cfg, uint64_t seed, const std::string& tag) {
  const auto dir = std::filesystem::temp_directory_path() / ("gqa-test-" + std::to_string(::getpid()) + "-" + tag);
  make_random_model(cfg, seed, dir.string(), "");
  return dir;
}
CudaEngineOptions with(Decode d) {
  CudaEngineOptions o;
  o.decode = d;
  return o;
}

void expect_close(const float* got, const float* want, int64_t V, const std::string& where, double* worst) {
  auto d = testing::compare_rows(got, want, V);
  *worst = std::max(*worst, d.rel_l2);
  EXPECT_LE(d.rel_l2, kMaxRelL2) << where;
  EXPECT_TRUE(d.top1_explained) << where << ": top-1 differs beyond the measured error (max |diff| " << d.max_abs << ")";
}

// Decodes ids[prompt..end) one token at a time on both engines after a shared prompt (capacity end + 10) and
// checks every step's logits: relative L2 <= 1e-3 and the top-1 explained. Returns the worst relative L2.
double decode_drift(Engine& tested, Engine& reference, const std::vector<int32_t>& ids, int prompt,
                    const std::string& where) {
  const int64_t V = tested.config().vocab_size, end = static_cast<int64_t>(ids.size());
  tested.reset(end + 10);
  reference.reset(end + 10);
  tested.forward(std::span<const int32_t>(ids.data(), prompt));
  reference.forward(std::span<const int32_t>(ids.data(), prompt));
  double worst = 0;
  for (int64_t t = prompt; t < end; ++t) {
    const float* f = tested.forward(std::span<const int32_t>(&ids[t], 1));
    std::vector<float> fv(f, f + V);
    auto d = testing::compare_rows(fv.data(), reference.forward(std::span<const int32_t>(&ids[t], 1)), V);
    worst = std::max(worst, d.rel_l2);
    EXPECT_LE(d.rel_l2, 1e-3) << where << " position " << t;
    EXPECT_TRUE(d.top1_explained) << where << " position " << t;
  }
  return worst;
}

TEST(CudaEngineNoGpu, OpeningWithoutADeviceIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  try {
    open_cuda_engine(testing::tiny_model_dir("tiny", 1));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

TEST(CudaEngine, PrefillLogitsMatchCpu) {
  GQA_REQUIRE_GPU();
  for (const auto& p : kPresets) {
    const auto dir = testing::tiny_model_dir(p.name, p.seed);
    auto gpu = open_cuda_engine(dir);
    auto cpu = CpuEngine::open(dir);
    const int64_t V = cpu->config().vocab_size;
    auto ids = test_prompt(40);
    gpu->reset(64);
    cpu->reset(64);
    const float* g = gpu->forward(ids, true);
    std::vector<float> gv(g, g + 40 * V);
    const float* c = cpu->forward(ids, true);
    double worst = 0;
    for (int t = 0; t < 40; ++t)
      expect_close(gv.data() + t * V, c + t * V, V, std::string(p.name) + " row " + std::to_string(t), &worst);
    std::printf("%s prefill: worst relative L2 %.2e\n", p.name, worst);
    EXPECT_EQ(gpu->position(), 40);
  }
}

TEST(CudaEngine, DecodeStepLogitsMatchCpu) {
  GQA_REQUIRE_GPU();
  for (const auto dec : kDecodes)
  for (const auto& p : kPresets) {
    const auto dir = testing::tiny_model_dir(p.name, p.seed);
    auto gpu = open_cuda_engine(dir, with(dec));
    auto cpu = CpuEngine::open(dir);
    const int64_t V = cpu->config().vocab_size;
    auto ids = test_prompt(60, 1);
    gpu->reset(80);
    cpu->reset(80);
    gpu->forward(std::span<const int32_t>(ids.data(), 20));
    cpu->forward(std::span<const int32_t>(ids.data(), 20));
    double worst = 0;
    for (int t = 20; t < 60; ++t) {  // one token at a time: the captured decode graph
      const float* g = gpu->forward(std::span<const int32_t>(&ids[t], 1));
      std::vector<float> gv(g, g + V);
      const float* c = cpu->forward(std::span<const int32_t>(&ids[t], 1));
      expect_close(gv.data(), c, V, std::string(p.name) + " " + name(dec) + " position " + std::to_string(t), &worst);
    }
    std::printf("%s decode (%s): worst relative L2 %.2e\n", p.name, name(dec), worst);
    EXPECT_EQ(gpu->position(), 60);
  }
}

TEST(CudaEngine, LongPromptCrossesPrefillChunks) {
  GQA_REQUIRE_GPU();
  // 1100 tokens: three prefill chunks of the GPU engine and five of the CPU's.
  for (const auto dec : kDecodes) {
  const auto dir = testing::tiny_model_dir("tiny-gqa4", 2);
  auto gpu = open_cuda_engine(dir, with(dec));
  auto cpu = CpuEngine::open(dir);
  const int64_t V = cpu->config().vocab_size;
  auto ids = test_prompt(1100, 2);
  gpu->reset(1110);
  cpu->reset(1110);
  const float* g = gpu->forward(ids);
  std::vector<float> gv(g, g + V);
  double worst = 0;
  expect_close(gv.data(), cpu->forward(ids), V, "last prompt token", &worst);
  for (int i = 0; i < 8; ++i) {
    const int32_t tok = ids[i];
    g = gpu->forward(std::span<const int32_t>(&tok, 1));
    gv.assign(g, g + V);
    expect_close(gv.data(), cpu->forward(std::span<const int32_t>(&tok, 1)), V, "decode after long prompt", &worst);
  }
  std::printf("long prompt (%s): worst relative L2 %.2e\n", name(dec), worst);
  }
}

TEST(CudaEngine, GreedyGenerationAgreesWithCpu) {
  GQA_REQUIRE_GPU();
  for (const auto dec : kDecodes)
  for (const auto& p : kPresets) {
    const auto dir = testing::tiny_model_dir(p.name, p.seed);
    auto gpu = open_cuda_engine(dir, with(dec));
    auto cpu = CpuEngine::open(dir);
    GenerateOptions o;
    o.max_tokens = 48;
    o.ignore_stop_tokens = true;
    auto ids = test_prompt(12, 3);
    auto rg = generate(*gpu, ids, o);
    auto rc = generate(*cpu, ids, o);
    EXPECT_EQ(rg.stats.decode_path, "device");
    ASSERT_EQ(rg.tokens.size(), 48u);
    size_t agree = 0;
    while (agree < rc.tokens.size() && rg.tokens[agree] == rc.tokens[agree]) ++agree;
    std::printf("%s greedy (%s): GPU and CPU agree on %zu of 48 tokens\n", p.name, name(dec), agree);
    EXPECT_GE(agree, 32u) << p.name;
    EXPECT_EQ(gpu->position(), 12 + 47);
  }
}

// The device sampler follows the host Sampler's rules and draws: same logits (the GPU engine's own), same
// tokens, whether sampled on the device (generate's device path) or on the host from forward()'s logits.
TEST(CudaEngine, DeviceSamplingEqualsHostSamplingOnTheSameLogits) {
  GQA_REQUIRE_GPU();
  const auto dir = testing::tiny_model_dir("tiny", 1);
  auto gpu = open_cuda_engine(dir);
  const int64_t V = gpu->config().vocab_size;
  const SamplingParams cases[] = {{0.8f, 0, 1.0f, 7}, {0.7f, 20, 0.9f, 11}, {1.3f, 64, 1.0f, 5}, {1.0f, 5, 0.5f, 3}};
  for (const auto& sp : cases) {
    GenerateOptions o;
    o.max_tokens = 32;
    o.ignore_stop_tokens = true;
    o.sampling = sp;
    auto ids = test_prompt(10, 4);
    auto dev = generate(*gpu, ids, o);
    EXPECT_EQ(dev.stats.decode_path, "device");

    gpu->reset(static_cast<int64_t>(ids.size()) + 32);
    Sampler s(sp);
    std::vector<int32_t> host;
    const float* l = gpu->forward(ids);
    for (int i = 0; i < 32; ++i) {
      if (i > 0) l = gpu->forward(std::span<const int32_t>(&host.back(), 1));
      host.push_back(s.sample(l, V));
    }
    EXPECT_EQ(dev.tokens, host) << "temperature " << sp.temperature << " top_k " << sp.top_k << " top_p " << sp.top_p;
  }
}

TEST(CudaEngine, GraphsAndProgrammaticLaunchDoNotChangeResults) {
  GQA_REQUIRE_GPU();
  for (const auto dec : kDecodes) {
  const auto dir = testing::tiny_model_dir("tiny", 1);
  GenerateOptions o;
  o.max_tokens = 24;
  o.ignore_stop_tokens = true;
  auto ids = test_prompt(16, 5);
  std::vector<std::vector<int32_t>> runs;
  for (int variant = 0; variant < 3; ++variant) {
    CudaEngineOptions eo = with(dec);
    eo.cuda_graph = variant != 1;
    eo.programmatic_launch = variant != 2;
    auto gpu = open_cuda_engine(dir, eo);
    runs.push_back(generate(*gpu, ids, o).tokens);
  }
  EXPECT_EQ(runs[0], runs[1]) << name(dec) << " without graphs";
  EXPECT_EQ(runs[0], runs[2]) << name(dec) << " without programmatic dependent launch";
  }
}

// The step layouts compute the same function with sums in another order: logits within 1e-3 relative L2 of
// the unfused layout's at every step on the Qwen3-0.6B head layout and on 4:1 GQA (an ulp of float before the
// bf16 rounding of a cached K/V element moves the logits by ~1e-4 on these random models), same greedy tokens.
// The persistent layout runs with 256-key attention splits (one split at these lengths) and with a split
// every 3 keys (up to 16 splits per KV head, merged by the last one); and across a 300-token context where
// splits stream several KV tiles through the ring.
TEST(CudaEngine, DecodeLayoutsAgree) {
  GQA_REQUIRE_GPU();
  struct Variant {
    const char* name;
    Decode decode;
    int split_keys;
  };
  const Variant variants[] = {{"fused", Decode::Fused, 256},
                              {"persistent", Decode::Persistent, 256},
                              {"persistent, 3-key splits", Decode::Persistent, 3}};
  for (const auto& p : kPresets)
    for (const auto& v : variants)
      for (const int prompt : {10, 300}) {
        const auto dir = testing::tiny_model_dir(p.name, p.seed);
        CudaEngineOptions eo = with(v.decode);
        eo.persistent_split_keys = v.split_keys;
        auto tested = open_cuda_engine(dir, eo);
        auto unfused = open_cuda_engine(dir, with(Decode::Unfused));
        auto ids = test_prompt(prompt + 30, 7);
        const double worst = decode_drift(*tested, *unfused, ids, prompt, std::string(p.name) + " " + v.name);
        EXPECT_EQ(cuda_decode_layout(*tested), v.decode) << p.name << " " << v.name;
        std::printf("%s %s vs unfused decode after %d tokens: worst relative L2 %.2e\n", p.name, v.name, prompt,
                    worst);
        GenerateOptions o;
        o.max_tokens = 32;
        o.ignore_stop_tokens = true;
        ids.resize(prompt);
        EXPECT_EQ(generate(*tested, ids, o).tokens, generate(*unfused, ids, o).tokens) << p.name << " " << v.name;
      }
}

// Qwen3-0.6B's real layer shapes (hidden 1024, intermediate 3072, 16:8 heads of 128), 2 layers and a small
// vocabulary: the persistent step's tiles then hold several rows (32 KiB tiles: 8 of o_proj, 5 of down, 16
// of qkv, one block of 16 for the mma; 64 KiB: two blocks; 80 KiB: three), a head spans tiles of several
// blocks and the attention splits stream several KV tiles (8 KiB KV tiles: 16 keys, two warps per tile), none of
// which the tiny presets exercise. Its logits must match the unfused step's.
TEST(CudaEngine, PersistentDecodeOnQwen3LayerShapes) {
  GQA_REQUIRE_GPU();
  ModelConfig cfg = preset_config("qwen3-0.6b");
  cfg.num_hidden_layers = 2;
  cfg.vocab_size = 4096;
  cfg.bos_token_id = 1;
  cfg.eos_token_ids = {2};
  const auto dir = random_model(cfg, 3, "q06-2l");
  struct Run {
    int split_keys, tile_kib, kv_tile_kib, fma_rows, balance = 0, dynamic = 0;
  };
  const Decode decode = Decode::Persistent;
  // fma_rows 8 at 32 KiB: o's tiles (8 rows) and down's (5) on CUDA cores, qkv's, gate/up's (8 pairs) and lm_head's
  // (16 rows) on tensor cores; 5 at 32 KiB: down's only. Balanced tiles at 64 KiB: gate/up's 12 pairs (not 16).
  for (const auto& [split_keys, tile_kib, kv_kib, fma_rows, balance, dynamic] :
       {Run{256, 64, 32, 0}, Run{16, 32, 32, 0}, Run{64, 80, 32, 0}, Run{16, 64, 64, 0}, Run{16, 64, 8, 0},
        Run{64, 32, 32, 8}, Run{16, 32, 32, 5}, Run{64, 64, 32, 4, 31}, Run{64, 32, 32, 4, 0, 1}}) {
    CudaEngineOptions eo = with(decode);
    eo.persistent_split_keys = split_keys;
    eo.persistent_tile_kib = tile_kib;
    eo.persistent_kv_tile_kib = kv_kib;
    eo.persistent_fma_rows = fma_rows;
    eo.persistent_balance_tiles = balance;
    eo.persistent_dynamic_tiles = dynamic;
    auto tested = open_cuda_engine(dir.string(), eo);
    auto unfused = open_cuda_engine(dir.string(), with(Decode::Unfused));
    auto ids = test_prompt(330, 9);
    for (auto& id : ids) id %= static_cast<int32_t>(tested->config().vocab_size);
    const std::string what = std::string(name(decode)) + ", split_keys " + std::to_string(split_keys) + ", " +
                             std::to_string(tile_kib) + " KiB tiles, " + std::to_string(kv_kib) + " KiB KV tiles, fma_rows " +
                             std::to_string(fma_rows) + (balance ? ", balanced tiles" : "") +
                             (dynamic ? ", dynamic tiles" : "");
    const double worst = decode_drift(*tested, *unfused, ids, 300, what);
    EXPECT_EQ(cuda_decode_layout(*tested), decode) << what;  // not a fallback
    std::printf("Qwen3-0.6B layer shapes, %s vs unfused: worst relative L2 %.2e\n", what.c_str(), worst);
  }
  std::filesystem::remove_all(dir);
}

// The persistent step's results do not depend on how long a block pauses between polls (its outputs are
// summed in a fixed order): the logits are bit for bit those of the default pause.
// Nor on which block computes which weight tile (dynamic tiles: claimed at run time, so a different block each
// step), since every row is summed the same way whoever computes it. The engines decode several positions
// after a reset, so the claim counters run across steps and resets.
TEST(CudaEngine, PersistentStepIsDeterministicWhateverThePollPause) {
  GQA_REQUIRE_GPU();
  for (const auto& p : kPresets)
    for (const int dynamic : {0, 1}) {
      const Decode layout = Decode::Persistent;
      const auto dir = testing::tiny_model_dir(p.name, p.seed);
      CudaEngineOptions busy = with(layout);
      busy.persistent_poll_ns = 0;
      busy.persistent_dynamic_tiles = dynamic;
      auto a = open_cuda_engine(dir, with(layout));
      auto b = open_cuda_engine(dir, busy);
      const int64_t V = a->config().vocab_size;
      const auto ids = test_prompt(40, 5);
      a->reset(64);
      b->reset(64);
      a->forward(std::span<const int32_t>(ids.data(), 20));
      b->forward(std::span<const int32_t>(ids.data(), 20));
      for (size_t t = 20; t < ids.size(); ++t) {
        const float* fa = a->forward(std::span<const int32_t>(&ids[t], 1));
        const std::vector<float> la(fa, fa + V);
        const float* fb = b->forward(std::span<const int32_t>(&ids[t], 1));
        ASSERT_EQ(0, std::memcmp(la.data(), fb, V * sizeof(float)))
            << p.name << " dynamic tiles " << dynamic << " position " << t;
      }
      EXPECT_EQ(cuda_decode_layout(*a), layout);
    }
}

// The merging split's poll of many splits at once (merge_chunk) does v7's arithmetic in v7's order: with up to
// 16 splits (a split every 3 keys) the logits are bit for bit those of one split per poll, and of two per poll,
// and match the unfused step. Also with five query heads per KV head (Qwen3-14B's group, head_dim 128), whose
// split partials are padded to whole 4-word groups of ll_read (part_stride: 650 words -> 652).
TEST(CudaEngine, PersistentSplitMergeChunksGiveTheSameLogits) {
  GQA_REQUIRE_GPU();
  ModelConfig g5 = preset_config("tiny");  // Qwen3-14B's group: partials padded to whole ll_read groups
  g5.num_attention_heads = 40;
  g5.num_key_value_heads = 8;
  g5.head_dim = 128;
  const auto g5_dir = random_model(g5, 6, "g5-chunks");
  const Preset models[] = {kPresets[0], kPresets[1], {"group 5", 0}};
  for (const auto& p : models) {
    const std::string dir = p.seed == 0 ? g5_dir.string() : testing::tiny_model_dir(p.name, p.seed);
    auto options = [](int chunk) {
      CudaEngineOptions o = with(Decode::Persistent);
      o.persistent_split_keys = 3;
      o.persistent_merge_chunk = chunk;
      return o;
    };
    auto a = open_cuda_engine(dir, options(64));  // as many as fit (0 would take one per poll at groups of 4+)
    auto one = open_cuda_engine(dir, options(1));
    auto two = open_cuda_engine(dir, options(2));
    auto unfused = open_cuda_engine(dir, with(Decode::Unfused));
    EXPECT_EQ(cuda_decode_plan(*a).find("merge chunk 0;"), std::string::npos) << p.name << ": " << cuda_decode_plan(*a);
    const int64_t V = a->config().vocab_size;
    const auto ids = test_prompt(60, 4);
    decode_drift(*a, *unfused, ids, 30, std::string(p.name) + ", a split every 3 keys");
    for (auto* e : {a.get(), one.get(), two.get()}) {
      e->reset(80);
      e->forward(std::span<const int32_t>(ids.data(), 30));
    }
    for (size_t t = 30; t < ids.size(); ++t) {
      const float* fa = a->forward(std::span<const int32_t>(&ids[t], 1));
      const std::vector<float> la(fa, fa + V);
      const float* f1 = one->forward(std::span<const int32_t>(&ids[t], 1));
      ASSERT_EQ(0, std::memcmp(la.data(), f1, V * sizeof(float))) << p.name << " chunk 1, position " << t;
      const float* f2 = two->forward(std::span<const int32_t>(&ids[t], 1));
      ASSERT_EQ(0, std::memcmp(la.data(), f2, V * sizeof(float))) << p.name << " chunk 2, position " << t;
    }
    EXPECT_EQ(cuda_decode_layout(*a), Decode::Persistent);
  }
  std::filesystem::remove_all(g5_dir);
}

// One query head per KV head, 16 KV heads of head_dim 64: the persistent step's smallest group and head size.
TEST(CudaEngine, PersistentDecodeWithOneQueryHeadPerKvHead) {
  GQA_REQUIRE_GPU();
  ModelConfig cfg = preset_config("tiny");
  cfg.num_attention_heads = 16;
  cfg.num_key_value_heads = 16;
  cfg.head_dim = 64;
  const auto dir = random_model(cfg, 5, "kv16");
  auto tested = open_cuda_engine(dir.string(), with(Decode::Persistent));
  auto unfused = open_cuda_engine(dir.string(), with(Decode::Unfused));
  decode_drift(*tested, *unfused, test_prompt(40, 3), 20, "16 KV heads of 64");
  EXPECT_EQ(cuda_decode_layout(*tested), Decode::Persistent);
  std::filesystem::remove_all(dir);
}

// Ring stages shrink to fit: 192 KiB asked, two of them do not fit in shared memory, the largest that do are
// taken. An intermediate of 30,720 leaves room for two stages of 32 KiB only, which do not hold a row of its
// down_proj: the engine decodes with the fused layout instead (and says so), with the fused layout's results.
TEST(CudaEngine, PersistentStagesShrinkToFitOrFallBackToTheFusedLayout) {
  GQA_REQUIRE_GPU();
  const auto dir = testing::tiny_model_dir("tiny", 1);
  CudaEngineOptions huge = with(Decode::Persistent);
  huge.persistent_tile_kib = 192;
  auto tested = open_cuda_engine(dir, huge);
  auto unfused = open_cuda_engine(dir, with(Decode::Unfused));
  const auto ids = test_prompt(40, 6);
  decode_drift(*tested, *unfused, ids, 20, "192 KiB tiles asked");
  EXPECT_EQ(cuda_decode_layout(*tested), Decode::Persistent);
  EXPECT_EQ(cuda_decode_plan(*tested).find("2 ring stages of 192 KiB"), std::string::npos) << cuda_decode_plan(*tested);
  ModelConfig cfg = preset_config("tiny");
  cfg.intermediate_size = 30720;
  const auto long_dir = random_model(cfg, 12, "long-intermediate");
  auto fused = open_cuda_engine(long_dir.string(), with(Decode::Persistent));
  auto reference = open_cuda_engine(long_dir.string(), with(Decode::Unfused));
  decode_drift(*fused, *reference, ids, 20, "intermediate 30,720");
  EXPECT_EQ(cuda_decode_layout(*fused), Decode::Fused);
  std::filesystem::remove_all(long_dir);
}

// Every dense Qwen3 size's widths (hidden, intermediate, heads: 1.7B 16:8, 4B and 8B 32:8, 14B 40:8, 32B 64:8)
// on two layers and a 4,096-token vocabulary: prefill and decode logits of the default step, the fused one and
// the unfused one match the CPU engine within the tolerance above. The default step is the persistent one where
// it holds the widths (1.7B to 8B: its wide build, hidden up to 6,144 in registers, longer inputs read in parts)
// and then also matches the unfused step within 1e-3; the fused layout for 14B (two stages fit beside its
// intermediate only at 57 KiB, one row of down_proj each: slower) and 32B (a row of its down_proj, 50 KiB, does
// not fit the stages its intermediate leaves). 14B's persistent step, asked for with 57 KiB stages, is checked
// the same way.
TEST(CudaEngine, EveryQwen3SizeMatchesTheCpuEngine) {
  GQA_REQUIRE_GPU();
  for (const char* preset : {"qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b"}) {
    ModelConfig cfg = preset_config(preset);
    cfg.num_hidden_layers = 2;
    cfg.vocab_size = 4096;
    cfg.bos_token_id = 1;
    cfg.eos_token_ids = {2};
    const auto dir = random_model(cfg, 11, std::string(preset) + "-2l");
    auto cpu = CpuEngine::open(dir.string());
    auto ids = test_prompt(40, 12);
    for (auto& id : ids) id %= static_cast<int32_t>(cfg.vocab_size);
    const int64_t V = cfg.vocab_size;
    cpu->reset(48);
    const float* c = cpu->forward(std::span<const int32_t>(ids.data(), 24), true);
    const std::vector<float> cpu_prefill(c, c + 24 * V);
    std::vector<std::vector<float>> cpu_steps;
    for (size_t t = 24; t < ids.size(); ++t) {
      c = cpu->forward(std::span<const int32_t>(&ids[t], 1));
      cpu_steps.emplace_back(c, c + V);
    }
    const bool is14b = std::string(preset) == "qwen3-14b", persistent = std::string(preset) != "qwen3-32b";
    if (is14b) {  // by default 14B decodes fused
      auto gpu = open_cuda_engine(dir.string(), with(Decode::Persistent));
      gpu->reset(48);
      EXPECT_EQ(cuda_decode_layout(*gpu), Decode::Fused) << preset;
    }
    auto with14 = [&](Decode d) {
      CudaEngineOptions o = with(d);
      if (is14b) o.persistent_tile_kib = 57;
      return o;
    };
    for (const Decode dec : {Decode::Persistent, Decode::Fused, Decode::Unfused}) {
      auto gpu = open_cuda_engine(dir.string(), with14(dec));
      gpu->reset(48);  // the persistent step's plan, and with it the layout, is settled by reset()
      EXPECT_EQ(cuda_decode_layout(*gpu), dec == Decode::Persistent && !persistent ? Decode::Fused : dec) << preset;
      const std::string what = std::string(preset) + " (" + name(cuda_decode_layout(*gpu)) + ")";
      const std::string plan = cuda_decode_plan(*gpu);
      EXPECT_EQ(plan.rfind(dec == Decode::Persistent && persistent ? "persistent, wide build"
                           : dec == Decode::Unfused                ? "unfused"
                                                                   : "fused", 0), 0u) << what << ": " << plan;
      const float* g = gpu->forward(std::span<const int32_t>(ids.data(), 24), true);
      double worst = 0;
      for (int t = 0; t < 24; ++t)
        expect_close(g + t * V, cpu_prefill.data() + t * V, V, what + " prefill row " + std::to_string(t), &worst);
      for (size_t t = 24; t < ids.size(); ++t) {
        g = gpu->forward(std::span<const int32_t>(&ids[t], 1));
        expect_close(g, cpu_steps[t - 24].data(), V, what + " position " + std::to_string(t), &worst);
      }
      std::printf("%s: worst relative L2 against the CPU engine %.2e\n", what.c_str(), worst);
    }
    if (persistent) {
      auto tested = open_cuda_engine(dir.string(), with14(Decode::Persistent));
      auto unfused = open_cuda_engine(dir.string(), with(Decode::Unfused));
      const double worst = decode_drift(*tested, *unfused, ids, 24, std::string(preset) + " persistent vs unfused");
      std::printf("%s persistent vs unfused decode: worst relative L2 %.2e\n", preset, worst);
    }
    std::filesystem::remove_all(dir);
  }
}

// A shape no layout supports is one error at open that names the config.json field and the limit it breaks.
TEST(CudaEngine, UnsupportedShapesNameTheFieldAndTheLimit) {
  GQA_REQUIRE_GPU();
  auto error_at_open = [](const ModelConfig& cfg, const std::string& tag) -> std::string {
    const auto dir = random_model(cfg, 13, tag);
    std::string what;
    try {
      open_cuda_engine(dir.string());
    } catch (const Error& e) {
      what = e.what();
    }
    std::filesystem::remove_all(dir);
    return what;
  };
  ModelConfig wide = preset_config("tiny");
  wide.intermediate_size = 40000;
  EXPECT_NE(error_at_open(wide, "wide").find("config.json: intermediate_size 40000 exceeds 32768"), std::string::npos);
  ModelConfig three = preset_config("tiny");
  three.num_attention_heads = 24;  // 3 per KV head
  EXPECT_NE(error_at_open(three, "g3").find("3 query heads per KV head (num_attention_heads 24 / num_key_value_heads 8)"),
            std::string::npos);
}

// trace_file: after a device decode loop the file holds, per block and phase, the times of the last step in
// order (start <= end), one row per block and slot; an unwritable path is a clear error.
TEST(CudaEngine, PersistentTraceFileRecordsEveryPhase) {
  GQA_REQUIRE_GPU();
  const auto dir = testing::tiny_model_dir("tiny", 1);
  const auto file = std::filesystem::temp_directory_path() / ("gqa-trace-" + std::to_string(::getpid()) + ".csv");
  CudaEngineOptions traced = with(Decode::Persistent);
  traced.trace_file = file.string();
  auto gpu = open_cuda_engine(dir, traced);
  GenerateOptions o;
  o.max_tokens = 8;
  o.ignore_stop_tokens = true;
  EXPECT_EQ(generate(*gpu, test_prompt(12, 8), o).stats.decode_path, "device");
  std::ifstream in(file);
  std::string line;
  ASSERT_TRUE(std::getline(in, line)) << file;
  EXPECT_EQ(line, "block,slot,start_ns,ready_ns,filled_ns,computed_ns,end_ns,data_wait_ns");
  const int64_t slots = gpu->config().num_hidden_layers * 5 + 1;
  int64_t rows = 0, ended = 0;
  while (std::getline(in, line)) {
    unsigned long long f[8] = {};
    ASSERT_EQ(std::sscanf(line.c_str(), "%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu", &f[0], &f[1], &f[2], &f[3], &f[4],
                          &f[5], &f[6], &f[7]), 8) << line;
    EXPECT_EQ(f[1], static_cast<unsigned long long>(rows % slots)) << line;
    EXPECT_GT(f[2], 0u) << line;  // every block passes every phase (and writes its marks)
    EXPECT_GE(f[6], f[2]) << line;
    ended += f[6] > 0;
    ++rows;
  }
  EXPECT_GT(rows, 0);
  EXPECT_EQ(rows % slots, 0);
  EXPECT_EQ(ended, rows);
  std::filesystem::remove(file);

  traced.trace_file = "/nonexistent-dir/trace.csv";
  auto bad = open_cuda_engine(dir, traced);
  try {
    generate(*bad, test_prompt(12, 8), o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/trace.csv"), std::string::npos) << e.what();
  }
}

TEST(CudaEngine, StopTokensEndGenerationAndPositionFollows) {
  GQA_REQUIRE_GPU();
  for (const auto dec : kDecodes) {
  const auto dir = testing::tiny_model_dir("tiny", 1);
  auto gpu = open_cuda_engine(dir, with(dec));
  GenerateOptions o;
  o.max_tokens = 40;
  o.ignore_stop_tokens = true;
  auto ids = test_prompt(8, 6);
  auto full = generate(*gpu, ids, o).tokens;
  o.ignore_stop_tokens = false;
  o.stop_tokens = {full[9]};  // the 10th token (or an earlier occurrence) ends the run
  auto cut = generate(*gpu, ids, o);
  EXPECT_EQ(cut.stats.stop_reason, "stop_token");
  ASSERT_LE(cut.tokens.size(), 10u);
  EXPECT_EQ(cut.tokens.back(), full[9]);
  EXPECT_TRUE(std::equal(cut.tokens.begin(), cut.tokens.end(), full.begin()));
  EXPECT_EQ(gpu->position(), static_cast<int64_t>(ids.size() + cut.tokens.size() - 1));
  // Decoding continues correctly from there although steps ran ahead of the stop.
  const float* l = gpu->forward(std::span<const int32_t>(&cut.tokens.back(), 1));
  EXPECT_EQ(argmax(l, gpu->config().vocab_size), full[cut.tokens.size()]) << name(dec);
  }
}

TEST(CudaEngine, MisuseIsAClearError) {
  GQA_REQUIRE_GPU();
  auto gpu = open_cuda_engine(testing::tiny_model_dir("tiny", 1));
  EXPECT_THROW(gpu->reset(0), Error);
  EXPECT_THROW(gpu->reset(gpu->config().max_position_embeddings + 1), Error);
  gpu->reset(4);
  auto ids = test_prompt(5);
  EXPECT_THROW(gpu->forward(ids), Error);
  const int32_t bad = static_cast<int32_t>(gpu->config().vocab_size);
  EXPECT_THROW(gpu->forward(std::span<const int32_t>(&bad, 1)), Error);
  EXPECT_EQ(gpu->position(), 0);
  CudaEngineOptions no_keys;
  no_keys.persistent_split_keys = 0;
  EXPECT_THROW(open_cuda_engine(testing::tiny_model_dir("tiny", 1), no_keys), Error);
  CudaEngineOptions small_tiles;
  small_tiles.persistent_tile_kib = 16;  // at least 32
  EXPECT_THROW(open_cuda_engine(testing::tiny_model_dir("tiny", 1), small_tiles), Error);
  CudaEngineOptions negative_pause;
  negative_pause.persistent_poll_ns = -1;
  EXPECT_THROW(open_cuda_engine(testing::tiny_model_dir("tiny", 1), negative_pause), Error);
  CudaEngineOptions kv_over_stage;
  kv_over_stage.persistent_kv_tile_kib = 128;  // more than a ring stage (64 KiB) holds
  EXPECT_THROW(open_cuda_engine(testing::tiny_model_dir("tiny", 1), kv_over_stage), Error);
}

// The options as the CLI fills them (no GPU needed): layout names both ways, KEY=VALUE knobs in range, and one
// clear error per bad name, key or value that names it.
TEST(CudaEngineOptions, ParsedFromNamesAndKeyValuesWithClearErrors) {
  for (const Decode d : kDecodes) EXPECT_EQ(parse_decode_layout(decode_layout_name(d)), d);
  auto error_of = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of([] { parse_decode_layout("sideways"); }).find("'sideways'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_decode_layout("cluster"); }).find("known: persistent, fused, unfused"), std::string::npos);
  CudaEngineOptions o;
  set_cuda_option(o, "persistent_tile_kib=96");
  set_cuda_option(o, "persistent_merge_chunk=0");
  set_cuda_option(o, "split_keys=7");
  EXPECT_EQ(o.persistent_tile_kib, 96);
  EXPECT_EQ(o.split_keys, 7);
  EXPECT_NO_THROW(validate(o));
  for (const char* bad : {"persistent_tile_kib=1000", "persistent_split_keys=lots", "persistent_poll_ns=-1",
                          "split_keys=", "split_keys=3x"})
    EXPECT_NE(error_of([&] { set_cuda_option(o, bad); }).find("must be an integer in"), std::string::npos) << bad;
  EXPECT_NE(error_of([&] { set_cuda_option(o, "kv_mma=1"); }).find("'kv_mma' is unknown"), std::string::npos);
  EXPECT_NE(error_of([&] { set_cuda_option(o, "split_keys"); }).find("not KEY=VALUE"), std::string::npos);
  EXPECT_EQ(o.persistent_tile_kib, 96) << "a rejected value must leave the option as it was";
  CudaEngineOptions over;
  over.persistent_kv_tile_kib = 128;  // more than a ring stage (64 KiB)
  EXPECT_NE(error_of([&] { validate(over); }).find("persistent_kv_tile_kib = 128 exceeds"), std::string::npos);
  CudaEngineOptions small;  // 0 is auto; 1..31 KiB is not a stage size
  small.persistent_tile_kib = 0;
  EXPECT_NO_THROW(validate(small));
  small.persistent_tile_kib = 16;
  EXPECT_NE(error_of([&] { validate(small); }).find("persistent_tile_kib = 16 is outside [32, 192] or 0 (the largest"),
            std::string::npos);
  CudaEngineOptions negative;
  negative.persistent_poll_ns = -1;
  EXPECT_NE(error_of([&] { validate(negative); }).find("persistent_poll_ns = -1 is outside"), std::string::npos);
  CudaEngineOptions traced_fused;
  traced_fused.trace_file = "trace.csv";
  EXPECT_NO_THROW(validate(traced_fused));
  traced_fused.decode = Decode::Fused;
  EXPECT_NE(error_of([&] { validate(traced_fused); }).find("--trace records the persistent decode step"),
            std::string::npos);
}

}  // namespace
}  // namespace gqa
