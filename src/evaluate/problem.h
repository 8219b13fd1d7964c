// One attention problem on the host: guarded inputs (q, KV cache with padding past each sequence's
// length, ragged lengths), poisoned output and workspace, ABI arguments, and a float64 reference with a
// row-by-row comparison. The evaluator keeps private copies of every input: the reference is computed
// from them and the buffers the program saw are compared with them after each call. On the CPU target the
// buffers are in a SharedArena and the Problem lives in the worker's relay (the judge), which never runs
// the program: the candidate's process calls it on the same pages, and the private copies, the reference
// and the comparisons stay where it cannot reach them. The CUDA target copies the buffers to the device.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "evaluate/cases.h"
#include "evaluate/guarded_buffer.h"
#include "gqa/abi.h"

namespace gqa::eval {

// splitmix64: fast, seedable, identical everywhere.
struct Rng {
  uint64_t state;
  uint64_t next();
  float uniform();  // [-1, 1)
};

// Where the KV cache's strides put things: the CPU engine's [pos][kv_head][dim] or the CUDA engine's
// [kv_head][capacity][dim]. Both are legal under the ABI; programs must honour the strides.
enum class KvLayout { PosMajor, HeadMajor };

// Bound on every (query, head) row: ||out - ref|| <= kRowTolerance * ||ref|| (+ a tiny absolute floor).
// 2^-6: eight times what rounding the output to bf16 costs (2^-9), room for bf16 probabilities and any
// summation order, far below what a wrong key, a missing mask or a skipped block produces (~1).
constexpr double kRowTolerance = 1.0 / 64;

struct Comparison {
  bool ok = false;
  double max_row_error = 0;     // max over rows of ||out - ref|| / ||ref||
  double global_error = 0;      // ||out - ref|| / ||ref|| over everything
  int64_t non_finite = 0;       // NaN/Inf elements in out
  int64_t bad_rows = 0;         // rows over the bound
  std::string worst;            // "seq 2 query 5 (position 301) head 7: ..." with a few elements
};

// The mismatch report's lines for one call, shared by the CPU and CUDA correctness stages.
std::string describe_mismatch(const Comparison& c, int64_t rows);
std::string describe_match(const Comparison& c);

class Problem {
 public:
  // With `arena`, every buffer is taken from it (the arena must outlive the Problem).
  Problem(const Case& c, KvLayout layout, int threads, SharedArena* arena = nullptr);
  // Fresh random inputs (q with std 3 so that softmax is peaked, k and v std 1; one (query, head) row in
  // eight with q twelve times larger, logits in the hundreds, so exp without the max subtracted
  // overflows); K/V positions past a sequence's length hold NaN, so reading them shows up. Drops the
  // reference.
  void fill(Rng& rng);
  // New random queries only (cheap: benchmarks refresh them before every call so that no result can be
  // remembered). Drops the reference.
  void refill_queries(Rng& rng);
  // Output and workspace (and the second pair, if made) filled with NaN bytes; inputs made read-only
  // (writes into them fault).
  void poison();
  // The same inputs with a separate output and workspace: the benchmark's stock kernel writes there, so
  // the candidate can never pick up the stock kernel's results or partials.
  const gqa_attention_args& second_args();
  void set_inputs_read_only(bool ro);
  const gqa_attention_args& args() const { return args_; }
  const Case& spec() const { return case_; }
  bool canaries_intact() const;
  // Empty when q, k, v and the lengths the program saw still equal the evaluator's copies; else what
  // changed.
  std::string inputs_changed() const;
  // float64 reference of the evaluator's copies of the inputs (computed once per fill, OpenMP).
  const std::vector<double>& reference();
  Comparison compare();
  // The output against the second output (the stock kernel's, same inputs), with twice the row bound.
  Comparison compare_with_second() const;
  size_t kv_bytes() const { return k_.size() + v_.size(); }
  // Arena buffers: what the candidate's process must protect (guard pages none, inputs read-only unless
  // `inputs_read_only` is false: on the CUDA target it copies the device's inputs back into them).
  void protections(std::vector<Protection>& out, bool inputs_read_only = true) const;
  // The output against another output for the same inputs (the stock kernel's as the relay computed it),
  // with twice the row bound.
  Comparison compare_with(const uint16_t* other) const;
  // The arguments on the evaluator's private copies of the inputs, with the given output and workspace
  // (for the stock kernel run by the judge itself).
  gqa_attention_args private_args(gqa_bf16* out, void* workspace, int threads) const;

 private:
  Case case_;
  KvLayout layout_;
  SharedArena* arena_ = nullptr;
  int threads_ = 1;  // the reference's
  int64_t capacity_ = 0;  // positions per sequence in the buffers (max kv_len + padding)
  GuardedBuffer q_, k_, v_, cu_, kvl_, out_, ws_;
  GuardedBuffer out2_, ws2_;
  gqa_attention_args args_{}, args2_{};
  std::vector<uint16_t> own_q_, own_k_, own_v_;  // the evaluator's copies (same layout as the buffers)
  std::vector<int32_t> own_cu_, own_kv_;
  std::vector<double> ref_;
  void draw_queries(Rng& rng);
  GuardedBuffer buffer(size_t bytes);
};

}  // namespace gqa::eval
