// Attention programs inside the persistent decode step (ABI v2 device entry, include/gqa/decode_abi.cuh): which
// entries a program's text defines, the run-time link with the step's LTO IR (no GPU needed: these run in CI),
// and on a GPU: the stock program linked into the step gives the built-in step's logits bit for bit, variants of
// it match the unfused step, and a program that breaks the contract fails the launch instead of answering.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/cuda/decode_program.h"
#include "engine/generate.h"
#include "gpu_test_util.h"
#include "programs/compiler.h"
#include "tiny_model.h"

namespace gqa {
namespace {

namespace fs = std::filesystem;

// A fresh compile cache per test process, so that every run compiles and links for real.
std::string cache_dir() {
  static const std::string dir = [] {
    const fs::path d = fs::temp_directory_path() / ("gqa-decode-program-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d.string();
  }();
  return dir;
}

// The stock program's text with knob `name` set to `value`.
std::string with_knob(std::string text, const std::string& name, int value) {
  const std::string head = "constexpr int " + name + " = ";
  const size_t at = text.find(head);
  if (at == std::string::npos) throw std::runtime_error("no knob " + name);
  const size_t end = text.find(';', at);
  return text.replace(at + head.size(), end - at - head.size(), std::to_string(value));
}

std::string compile_lto(const std::string& text, const std::string& name) {
  CompileOptions co;
  co.target = Target::Cuda;
  co.output = Output::DeviceLto;
  co.cuda_arch = "sm_90a";
  co.cache_dir = cache_dir();
  const CompileResult r = compile_program(text, name, co);
  if (!r.ok) throw std::runtime_error(name + " did not compile:\n" + r.log);
  return read_file(r.so_path, "test");
}

TEST(DecodeProgramText, EntriesAreFoundByNameOutsideComments) {
  const ProgramEntries stock = program_entries(std::string(stock_decode_program_text()));
  EXPECT_TRUE(stock.device);
  EXPECT_FALSE(stock.host);  // it mentions gqa_attention only in comments, if at all
  const ProgramEntries host = program_entries("GQA_EXPORT int gqa_attention (const gqa_attention_args* a) { return 0; }");
  EXPECT_TRUE(host.host);
  EXPECT_FALSE(host.device);
  const ProgramEntries none = program_entries("// gqa_attention(\n/* gqa_decode_attend_v2( */ typedef gqa_attention_fn f;");
  EXPECT_FALSE(none.host);
  EXPECT_FALSE(none.device);
}

TEST(DecodeProgramLink, TheStockProgramLinksIntoTheStepAndTheLinkIsCached) {
  const std::string lto = compile_lto(std::string(stock_decode_program_text()), "stock");
  ASSERT_FALSE(lto.empty());
  EXPECT_GT(cuda::persistent_step_lto().size(), 1000u);
  for (const auto& [D, G, wide] :
       {std::tuple{128, 2, false}, std::tuple{128, 4, true}, std::tuple{128, 5, true}, std::tuple{64, 4, false}}) {
    const std::string kernel = cuda::persistent_linkable_kernel_name(D, G, wide);
    const cuda::DecodeLink first = cuda::link_decode_program(lto, kernel, "sm_90a", cache_dir());
    EXPECT_FALSE(first.cached) << kernel;
    EXPECT_GT(first.cubin.size(), 10000u) << kernel;
    std::printf("%s: linked in %.2f s, %zu bytes of cubin\n", kernel.c_str(), first.seconds, first.cubin.size());
    const cuda::DecodeLink again = cuda::link_decode_program(lto, kernel, "sm_90a", cache_dir());
    EXPECT_TRUE(again.cached) << kernel;
    EXPECT_EQ(again.cubin, first.cubin) << kernel;
  }
}

TEST(DecodeProgramLink, AProgramWithoutTheEntryFailsNamingIt) {
  const std::string text =
      "#include \"gqa/decode_abi.cuh\"\n"
      "extern \"C\" __device__ int gqa_decode_attend_v1(gqa_decode_split* s) { return 8; }\n";
  const std::string lto = compile_lto(text, "no-entry");
  try {
    cuda::link_decode_program(lto, cuda::persistent_linkable_kernel_name(128, 2, false), "sm_90a", "");
    FAIL() << "linked without gqa_decode_attend_v2";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gqa_decode_attend_v2"), std::string::npos) << e.what();
  }
}

TEST(DecodeProgramLink, PlansOutsideTheContractAreNamed) {
  EXPECT_EQ(cuda::check_decode_plan({64, 32, 0}, 128), "");
  EXPECT_NE(cuda::check_decode_plan({0, 32, 0}, 128).find("split_keys"), std::string::npos);
  EXPECT_NE(cuda::check_decode_plan({64, 4, 0}, 128).find("kv_tile_kib"), std::string::npos);
  EXPECT_NE(cuda::check_decode_plan({64, 32, 65}, 128).find("merge_chunk"), std::string::npos);
}

// ---- On a GPU.

using Decode = CudaEngineOptions::Decode;

std::vector<int32_t> prompt_ids(int n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 17) % vocab);
  return ids;
}

// Logits of every decode step (one token at a time after a prompt of `prompt` tokens).
std::vector<float> decode_logits(Engine& e, int prompt, int steps) {
  const int64_t V = e.config().vocab_size;
  const auto ids = prompt_ids(prompt + steps, V);
  e.reset(prompt + steps + 8);
  e.forward(std::span<const int32_t>(ids.data(), prompt));
  std::vector<float> out;
  for (int t = prompt; t < prompt + steps; ++t) {
    const float* f = e.forward(std::span<const int32_t>(&ids[t], 1));
    out.insert(out.end(), f, f + V);
  }
  return out;
}

TEST(DecodeProgramGpu, TheStockProgramGivesTheBuiltInStepsLogitsBitForBit) {
  GQA_REQUIRE_GPU();
  const std::string lto = compile_lto(std::string(stock_decode_program_text()), "stock");
  for (const auto& [preset, seed] : {std::pair{"tiny", 1}, std::pair{"tiny-gqa4", 2}})
    for (const int prompt : {5, 700}) {
      const auto dir = testing::tiny_model_dir(preset, seed);
      auto builtin = open_cuda_engine(dir);
      auto linked = open_cuda_engine(dir);
      const auto link = linked->set_decode_attention_program(lto, "stock", cache_dir());
      const int steps = 24;
      const std::vector<float> want = decode_logits(*builtin, prompt, steps);
      const std::vector<float> got = decode_logits(*linked, prompt, steps);
      EXPECT_EQ(cuda_decode_layout(*linked), Decode::Persistent);
      EXPECT_EQ(linked->attention_program_calls(),
                static_cast<uint64_t>(steps * linked->config().num_hidden_layers));
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << preset << " after " << prompt << " tokens: the linked stock program's logits differ from the built-in "
          << "step's (max |diff| " << testing::compare_rows(got.data(), want.data(), got.size()).max_abs << ")";
      std::printf("%s, prompt %d: stock program linked in %.2f s (cached %d), logits identical\n", preset, prompt,
                  link.seconds, link.cached);
    }
}

TEST(DecodeProgramGpu, ProgramVariantsMatchTheUnfusedStep) {
  GQA_REQUIRE_GPU();
  const std::string stock(stock_decode_program_text());
  struct Variant {
    const char* what;
    std::string text;
  };
  const Variant variants[] = {
      {"16 dims per lane, 1 key per batch", with_knob(with_knob(stock, "DIMS_PER_LANE", 16), "KEY_BATCH_SMALL_GROUP", 1)},
      {"8 KiB KV tiles, 16-key splits, one split per poll",
       with_knob(with_knob(with_knob(stock, "KV_TILE_KIB", 8), "SPLIT_KEYS", 16), "MERGE_CHUNK", 1)},
      {"1024-key splits, 4 keys per batch at group 4", with_knob(with_knob(stock, "SPLIT_KEYS", 1024),
                                                                 "KEY_BATCH_LARGE_GROUP", 4)}};
  for (const auto& v : variants)
    for (const auto& [preset, seed] : {std::pair{"tiny", 1}, std::pair{"tiny-gqa4", 2}}) {
      const auto dir = testing::tiny_model_dir(preset, seed);
      CudaEngineOptions unfused_opts;
      unfused_opts.decode = Decode::Unfused;
      auto unfused = open_cuda_engine(dir, unfused_opts);
      auto linked = open_cuda_engine(dir);
      linked->set_decode_attention_program(compile_lto(v.text, v.what), v.what, cache_dir());
      const int64_t V = linked->config().vocab_size;
      const std::vector<float> want = decode_logits(*unfused, 600, 16);
      const std::vector<float> got = decode_logits(*linked, 600, 16);
      EXPECT_EQ(cuda_decode_layout(*linked), Decode::Persistent);
      double worst = 0;
      for (size_t row = 0; row < got.size() / V; ++row) {
        const auto d = testing::compare_rows(got.data() + row * V, want.data() + row * V, V);
        worst = std::max(worst, d.rel_l2);
        EXPECT_LE(d.rel_l2, 1e-3) << v.what << ", " << preset << ", step " << row;
        EXPECT_TRUE(d.top1_explained) << v.what << ", " << preset << ", step " << row;
      }
      std::printf("%s, %s: worst relative L2 against the unfused step %.2e\n", v.what, preset, worst);
    }
}

TEST(DecodeProgramGpu, AProgramReturningNoPartialStatesFailsTheStep) {
  GQA_REQUIRE_GPU();
  // Breaks the contract (no partial states): the step traps instead of merging garbage; the error surfaces at
  // the next synchronisation and the engine cannot be used afterwards (a sticky CUDA error), as the evaluator's
  // worker process would be.
  const std::string text = "#include \"gqa/decode_abi.cuh\"\n"
                           "GQA_DECODE_ENTRY int gqa_decode_attend_v2(gqa_decode_split* s) {\n"
                           "  for (int i = 0; i < s->num_tiles; ++i) { gqa_decode_tile_acquire(s); "
                           "gqa_decode_tile_release(s); }\n  return 0;\n}\n";
  const std::string lto = compile_lto(text, "no-parts");
  const auto dir = testing::tiny_model_dir("tiny", 1);
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: the trap poisons its CUDA context
  EXPECT_EXIT(
      {
        auto linked = open_cuda_engine(dir);
        linked->set_decode_attention_program(lto, "no-parts", cache_dir());
        try {
          decode_logits(*linked, 5, 2);
        } catch (const Error& e) {
          std::fprintf(stderr, "%s\n", e.what());
          std::_Exit(3);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(3), "");
}

}  // namespace
}  // namespace gqa
