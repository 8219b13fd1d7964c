// The device-entry check (src/evaluate/decode_entry_check.cpp) on a GPU: the stock program passes with float
// rounding to spare, and programs that break the contract of include/gqa/decode_abi.cuh each fail, named by the
// mechanism that stops them. Each cheat is the stock program (examples/qwen3_gqa/persistent_program.cu) with one
// edit, so that everything but the cheat is known to be right.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "engine/cuda/cuda_engine.h"
#include "evaluate/decode_entry_check.h"
#include "evaluate/decode_entry_harness.h"
#include "programs/compiler.h"

namespace gqa {
namespace {

#define GQA_REQUIRE_GPU() \
  if (::gqa::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

std::string cache_dir() {
  static const std::string dir = [] {
    const auto d = std::filesystem::temp_directory_path() / ("gqa-decode-entry-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

// The stock program with `from` replaced by `to` (which must occur exactly once).
std::string edited(const std::string& from, const std::string& to) {
  std::string text(stock_decode_program_text());
  const size_t at = text.find(from);
  if (at == std::string::npos || text.find(from, at + 1) != std::string::npos)
    throw std::runtime_error("the stock program holds '" + from + "' not exactly once");
  return text.replace(at, from.size(), to);
}

eval::DecodeEntryReport check(const std::string& text, int D = 128, int G = 2) {
  CompileOptions co;
  co.target = Target::Cuda;
  co.output = Output::DeviceLto;
  co.cuda_arch = "sm_90a";
  co.cache_dir = cache_dir();
  const CompileResult r = compile_program(text, "cheat", co);
  if (!r.ok) throw std::runtime_error("did not compile:\n" + r.log);
  return eval::check_decode_entry(read_file(r.so_path, "test"), D, G, 64, 32, 12345, cache_dir());
}

// The harness hands the entry its tile 128-byte aligned, as the contract promises (host arithmetic; no GPU).
TEST(DecodeEntryHarness, TheTileStageIs128ByteAligned) {
  for (const int D : {64, 128})
    for (const int G : {1, 2, 4, 5, 8})
      EXPECT_EQ(eval::harness_layout(D, G, 32 * 1024 + 2048, 1000).stage % 128, 0u) << "D " << D << " G " << G;
}

TEST(DecodeEntry, TheStockProgramPassesEveryCase) {
  GQA_REQUIRE_GPU();
  // Every group the step is built for: 1 and 2 (Qwen3-0.6B, 1.7B), 4 (4B, 8B), 5 (14B, head_dim 128 only), 8.
  for (const auto& [D, G] : {std::pair{128, 1}, std::pair{128, 2}, std::pair{128, 4}, std::pair{128, 5},
                             std::pair{128, 8}, std::pair{64, 4}}) {
    const auto rep = check(std::string(stock_decode_program_text()), D, G);
    EXPECT_TRUE(rep.ok) << rep.text;
    EXPECT_LT(rep.worst_error, eval::kDecodeEntryTolerance / 10) << rep.text;
    std::printf("D %d G %d: %d cases, worst row error %.2e, harness link %.2f s\n", D, G, rep.cases,
                rep.worst_error, rep.link_seconds);
  }
}

struct Cheat {
  const char* name;
  std::string text;
  const char* stopped_by;  // a phrase of the report
};

TEST(DecodeEntry, EveryCheatFailsNamingWhatStoppedIt) {
  GQA_REQUIRE_GPU();
  const Cheat cheats[] = {
      {"writes past its scratch area",
       edited("  return kWarps;\n}", "  s->scratch[s->scratch_bytes / 4 + 3] = 0.f;\n  return kWarps;\n}"),
       "wrote outside its scratch area"},
      {"overwrites q (read-only)",
       edited("  return kWarps;\n}", "  if (threadIdx.x == 0) const_cast<float*>(s->q)[1] = 0.f;\n  return kWarps;\n}"),
       "read-only"},
      {"writes into the tile it holds",
       edited("    gqa_decode_tile_release(s);",
              "    if (threadIdx.x == 0) const_cast<uint16_t*>(K)[0] ^= 1;\n    gqa_decode_tile_release(s);"),
       "wrote to a tile"},
      {"never releases a tile", edited("    gqa_decode_tile_release(s);", ""), "release"},
      {"returns no partial states", edited("  return kWarps;\n}", "  return 0;\n}"), "partial states"},
      {"natural-log scores where the contract says log2",
       edited("const float scale = s->scale_log2;", "const float scale = s->scale_log2 * 0.6931472f;"), "row error"},
      {"trusts full tiles (reads stale keys past the split's last key)",
       edited("const int n = gqa_decode_tile_keys(s, i);", "const int n = s->keys_per_tile;"), "row error"},
      {"skips the new key", edited("if (s->has_new_key && warp == 0) {", "if (false) {"), "row error"},
      {"carries state between calls (a device counter)",
       edited("template <int D, int G>\n__device__ __forceinline__ int attend(gqa_decode_split* s) {",
              "__device__ unsigned calls;\ntemplate <int D, int G>\n__device__ __forceinline__ int attend("
              "gqa_decode_split* s) {\n  __shared__ unsigned odd;\n  if (threadIdx.x == 0) odd = atomicAdd(&calls, 1) % 2;\n"
              "  gqa_decode_sync();\n  if (odd) return kWarps;"),
       ""},  // any failure: different runs, NaN states, or a row error
  };
  for (const Cheat& c : cheats)
    for (const int G : {2, 5}) {  // Qwen3-0.6B's group and 14B's
      const auto rep = check(c.text, 128, G);
      EXPECT_FALSE(rep.ok) << c.name << ", G " << G << " passed:\n" << rep.text;
      if (*c.stopped_by) {
        EXPECT_NE(rep.text.find(c.stopped_by), std::string::npos) << c.name << ", G " << G << ":\n" << rep.text;
      }
      const size_t first_fail = rep.text.find("FAIL");
      const std::string line = first_fail == std::string::npos
                                   ? "?" : rep.text.substr(first_fail, rep.text.find('\n', first_fail) - first_fail);
      std::printf("%-66s G %d %s\n", c.name, G, line.c_str());
    }
}

}  // namespace
}  // namespace gqa
