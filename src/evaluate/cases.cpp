// Shape lists and weights. Weights follow where Qwen3 generation spends attention time: batch-1 decode at
// short and medium contexts dominates chat use; long-context decode, batched decode and prefill follow.
// docs/evaluator.md restates the tables; change both together.
#include "evaluate/cases.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>

#include "common/error.h"
#include "model/config.h"
#include "model/make_model.h"

namespace gqa::eval {

int Case::total_q() const { return std::accumulate(q_lens.begin(), q_lens.end(), 0); }
int Case::max_q_len() const { return *std::max_element(q_lens.begin(), q_lens.end()); }
int Case::max_kv_len() const { return *std::max_element(kv_lens.begin(), kv_lens.end()); }

double Case::min_bytes() const {
  double b = 0;
  for (size_t s = 0; s < kv_lens.size(); ++s) b += 2.0 * kv_lens[s] * num_kv_heads * head_dim * 2;
  return b + 2.0 * total_q() * num_q_heads * head_dim * 2;
}

double Case::flops() const {
  double f = 0;
  for (size_t s = 0; s < kv_lens.size(); ++s)
    for (int i = 0; i < q_lens[s]; ++i) f += 4.0 * num_q_heads * head_dim * (kv_lens[s] - q_lens[s] + i + 1);
  return f;
}

HeadGeometry head_geometry_of(const std::string& model) {
  ModelConfig cfg;
  if (std::filesystem::is_directory(model)) {
    cfg = ModelConfig::load((std::filesystem::path(model) / "config.json").string());
  } else {
    const auto names = preset_names();
    if (std::find(names.begin(), names.end(), model) == names.end())
      fail("shapes-of", "'{}' is neither a model directory nor a preset (known presets: {})", model, fmt::join(names, ", "));
    cfg = preset_config(model);
  }
  return HeadGeometry{static_cast<int>(cfg.num_attention_heads), static_cast<int>(cfg.num_key_value_heads),
                      static_cast<int>(cfg.head_dim)};
}

std::string format_head_geometry(const HeadGeometry& g) {
  return fmt::format("{}:{}:{}", g.q_heads, g.kv_heads, g.head_dim);
}

HeadGeometry parse_head_geometry(const std::string& text) {
  HeadGeometry g;
  char c1 = 0, c2 = 0;
  int n = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c%d%n", &g.q_heads, &c1, &g.kv_heads, &c2, &g.head_dim, &n) != 5 ||
      c1 != ':' || c2 != ':' || n != static_cast<int>(text.size()) || g.q_heads < 1 || g.kv_heads < 1 ||
      g.head_dim < 1 || g.q_heads % g.kv_heads != 0)
    fail("heads", "'{}' is not Q:KV:D with Q a multiple of KV (query heads : KV heads : head_dim)", text);
  return g;
}

namespace {

// The shape lists below are written with the default geometry; with_geometry() sets the one asked for.
Case decode(std::string name, std::vector<int> kv, double w = 0) {
  return Case{std::move(name), std::vector<int>(kv.size(), 1), std::move(kv), 16, 8, 128, w};
}
Case prefill(std::string name, std::vector<int> q, std::vector<int> kv, double w = 0) {
  return Case{std::move(name), std::move(q), std::move(kv), 16, 8, 128, w};
}
std::vector<Case> with_geometry(std::vector<Case> cases, const HeadGeometry& g) {
  for (Case& c : cases) c.num_q_heads = g.q_heads, c.num_kv_heads = g.kv_heads, c.head_dim = g.head_dim;
  return cases;
}

// Ragged batch-8 decode around 2K context (the serving shape).
const std::vector<int> kBatch8Kv = {1800, 2048, 2301, 1555, 2100, 1999, 2222, 1713};

}  // namespace

std::vector<Case> benchmark_cases(Target t, const HeadGeometry& g) {
  if (t == Target::Cpu)
    return with_geometry({decode("decode_b1_kv512", {512}, 0.20),        decode("decode_b1_kv2048", {2048}, 0.25),
            decode("decode_b1_kv8192", {8192}, 0.15),      decode("decode_b8_kv~2k", kBatch8Kv, 0.15),
            prefill("prefill_q256", {256}, {256}, 0.10),   prefill("chunk_q256_on_1024", {256}, {1280}, 0.15)}, g);
  return with_geometry({decode("decode_b1_kv512", {512}, 0.15),         decode("decode_b1_kv2048", {2048}, 0.20),
          decode("decode_b1_kv8192", {8192}, 0.15),       decode("decode_b1_kv32768", {32768}, 0.10),
          decode("decode_b8_kv~2k", kBatch8Kv, 0.15),     prefill("prefill_q2048", {2048}, {2048}, 0.10),
          prefill("chunk_q512_on_4096", {512}, {4608}, 0.15)}, g);
}

std::vector<Case> correctness_cases(Target t, const HeadGeometry& g) {
  std::vector<Case> c = {
      decode("decode_kv1", {1}),
      decode("decode_kv17", {17}),
      decode("decode_kv100", {100}),
      decode("decode_kv1000", {1000}),
      decode("decode_kv4099", {4099}),
      decode("decode_kv32768", {32768}),
      decode("decode_b3_ragged", {1, 77, 300}),
      prefill("prefill_q1_kv1", {1}, {1}),
      prefill("prefill_q37", {37}, {37}),
      prefill("prefill_q200", {200}, {200}),
      prefill("chunk_q100_on_300", {100}, {400}),
      prefill("chunk_q63_on_129", {63}, {192}),
      prefill("prefill_b3_ragged", {5, 64, 130}, {5, 200, 130}),
      prefill("mixed_b8_ragged", {1, 1, 3, 16, 1, 70, 1, 2}, {1, 50, 3, 300, 129, 70, 1000, 65}),
  };
  for (const Case& b : benchmark_cases(t)) {  // the timed shapes, checked with their own fresh inputs
    Case x = b;
    x.weight = 0;
    c.push_back(x);
  }
  return with_geometry(std::move(c), g);
}

std::vector<Case> evaluation_cases(Target t, uint64_t seed, const HeadGeometry& g) {
  std::vector<Case> c = correctness_cases(t);
  uint64_t state = seed ^ 0xCA5E5EEDull;
  auto draw = [&](int lo, int hi) {  // splitmix64, uniform in [lo, hi]
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + static_cast<int>(z % static_cast<uint64_t>(hi - lo + 1));
  };
  for (int i = 0; i < 4; ++i) {
    const int kv = draw(1, 6000);
    c.push_back(decode(fmt::format("random_decode_kv{}", kv), {kv}));
  }
  std::vector<int> kv_batch;
  for (int s = draw(2, 6); s > 0; --s) kv_batch.push_back(draw(1, 3000));
  c.push_back(decode("random_decode_ragged", kv_batch));
  const int pq = draw(2, 160);
  c.push_back(prefill(fmt::format("random_prefill_q{}", pq), {pq}, {pq}));
  const int cq = draw(2, 160), ckv = cq + draw(1, 1500);
  c.push_back(prefill(fmt::format("random_chunk_q{}_on_{}", cq, ckv - cq), {cq}, {ckv}));
  std::vector<int> mq, mkv;
  for (int s = draw(2, 5); s > 0; --s) {
    mq.push_back(draw(1, 40));
    mkv.push_back(mq.back() + draw(0, 800));
  }
  c.push_back(prefill("random_mixed_ragged", mq, mkv));
  // Every residue of kv_len modulo 128 in one call, each at a random multiple.
  std::vector<int> residues;
  for (int r = 0; r < 128; ++r) residues.push_back(std::max(1, r + 128 * draw(0, 2)));
  c.push_back(decode("decode_b128_every_residue", residues));
  // Upper bounds as the CUDA engine passes them: max_kv_len the cache capacity, max_q_len the chunk.
  Case bound_decode = decode("decode_kv_bound_4096", {draw(1, 1500)});
  bound_decode.kv_bound = 4096;
  c.push_back(bound_decode);
  const int bq = draw(2, 100);
  Case bound_chunk = prefill("chunk_bound_q512_kv2048", {bq}, {bq + draw(0, 900)});
  bound_chunk.q_bound = 512;
  bound_chunk.kv_bound = 2048;
  c.push_back(bound_chunk);
  return with_geometry(std::move(c), g);
}

}  // namespace gqa::eval
