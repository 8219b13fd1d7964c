// CudaEngineOptions from the names and values a user types (--decode-layout, --cuda-option KEY=VALUE), and
// their ranges. Host code without CUDA: built into every binary, so the CLI checks flags before any GPU work.
#include <array>
#include <charconv>
#include <string>
#include <string_view>

#include "common/error.h"
#include "engine/cuda/cuda_engine.h"

namespace gqa {

namespace {

using Decode = CudaEngineOptions::Decode;

constexpr std::array<std::pair<Decode, const char*>, 3> kLayouts{
    {{Decode::Persistent, "persistent"}, {Decode::Fused, "fused"}, {Decode::Unfused, "unfused"}}};

// One integer knob: its key, where it lives, its range, and what 0 means where 0 is allowed outside it.
struct Knob {
  const char* key;
  int CudaEngineOptions::*field;
  int lo, hi;
  const char* zero = nullptr;
  bool allows(int v) const { return (v >= lo && v <= hi) || (zero && v == 0); }
  std::string range() const { return fmt::format("[{}, {}]{}", lo, hi, zero ? fmt::format(" or 0 ({})", zero) : ""); }
};
constexpr std::array<Knob, 9> kKnobs{{
    {"split_keys", &CudaEngineOptions::split_keys, 1, 1 << 20},
    {"persistent_split_keys", &CudaEngineOptions::persistent_split_keys, 1, 1 << 20},
    {"persistent_tile_kib", &CudaEngineOptions::persistent_tile_kib, 32, 192,
     "the largest stage up to 64 KiB that leaves room for three"},
    {"persistent_poll_ns", &CudaEngineOptions::persistent_poll_ns, 0, 10000},
    {"persistent_kv_tile_kib", &CudaEngineOptions::persistent_kv_tile_kib, 8, 192},
    {"persistent_merge_chunk", &CudaEngineOptions::persistent_merge_chunk, 0, 64},
    {"persistent_fma_rows", &CudaEngineOptions::persistent_fma_rows, 0, 8},
    {"persistent_balance_tiles", &CudaEngineOptions::persistent_balance_tiles, -1, 31},
    {"persistent_dynamic_tiles", &CudaEngineOptions::persistent_dynamic_tiles, 0, 1},
}};

}  // namespace

const char* decode_layout_name(Decode d) {
  for (const auto& [layout, name] : kLayouts)
    if (layout == d) return name;
  return "?";
}

Decode parse_decode_layout(const std::string& name) {
  for (const auto& [layout, known] : kLayouts)
    if (name == known) return layout;
  fail("cuda", "decode layout '{}' is unknown (known: persistent, fused, unfused)", name);
}

std::string cuda_option_keys() {
  std::string keys;
  for (const Knob& k : kKnobs) keys += (keys.empty() ? "" : ", ") + std::string(k.key);
  return keys;
}

void set_cuda_option(CudaEngineOptions& o, const std::string& key_value) {
  const size_t eq = key_value.find('=');
  if (eq == std::string::npos)
    fail("cuda", "CUDA option '{}' is not KEY=VALUE (keys: {})", key_value, cuda_option_keys());
  const std::string key = key_value.substr(0, eq), text = key_value.substr(eq + 1);
  for (const Knob& k : kKnobs) {
    if (key != k.key) continue;
    int v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !k.allows(v))
      fail("cuda", "CUDA option {}='{}' must be an integer in {}", key, text, k.range());
    o.*k.field = v;
    return;
  }
  fail("cuda", "CUDA option '{}' is unknown (keys: {})", key, cuda_option_keys());
}

void validate(const CudaEngineOptions& o) {
  for (const Knob& k : kKnobs)
    if (!k.allows(o.*k.field)) fail("cuda", "CUDA option {} = {} is outside {}", k.key, o.*k.field, k.range());
  if (o.persistent_tile_kib > 0 && o.persistent_kv_tile_kib > o.persistent_tile_kib)
    fail("cuda", "CUDA option persistent_kv_tile_kib = {} exceeds persistent_tile_kib = {} (a KV tile must fit a ring "
         "stage)", o.persistent_kv_tile_kib, o.persistent_tile_kib);
  if (o.device < 0) fail("cuda", "device {} is not a device index", o.device);
  if (!o.trace_file.empty() && o.decode != Decode::Persistent)
    fail("cuda", "--trace records the persistent decode step, and the {} layout was asked for", decode_layout_name(o.decode));
}

}  // namespace gqa
