// The worker's two processes in lockstep (host entries, both targets). The relay is the judge: it makes every
// input (in a SharedArena, with private copies of its own), posts one request at a time in a Control block
// shared with the candidate's process, and waits for the answer; the candidate's process only calls kernels
// (CUDA target: on device copies of the arena's buffers, copying the results back), times them and answers.
// Nothing the judge decides with (private inputs, reference, stock output, verdicts, result records) is in the
// candidate's address space; what it reads from there (outputs, the inputs as the program left them,
// canaries, reported times, return codes) is checked, never trusted.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

#include "evaluate/guarded_buffer.h"
#include "gqa/abi.h"

namespace gqa::eval {

enum class Op : int32_t {
  Protect = 1,   // reset the arena's used pages to read-write, then apply `prot`
  Call = 2,      // one call of the candidate on `args`
  Repetition = 3,  // a benchmark repetition: stock on `args2` and candidate on `args`, timed, in `stock_first` order
  EndToEnd = 4,  // the end-to-end stage (its record goes through the record area)
  Done = 5,      // send "done" and exit
  Nop = 6,       // answer at once (the relay times the round trip: a repetition's overhead)
  // CUDA target. The arena's buffers are the host side; the candidate's process keeps device copies.
  CudaCall = 7,        // upload `args`' inputs, poison the device outputs, capture one call of the candidate into a
                       // CUDA graph and replay it; copy its output and the device's inputs back into the arena
  CudaBenchSetup = 8,  // device copies of `num_sets` buffer sets (`sets`; the stock kernel's output goes to `out2`),
                       // the candidate's and stock kernels' graphs captured and warmed up; device facts in `device`
  CudaRepetition = 9,  // set `set`: its queries uploaded, stock, candidate and stock behind the ABI replayed with
                       // the L2 flushed before each (rotated by `rotation`), timed with events; both outputs
                       // and the device's inputs copied back
};

struct Control {
  static constexpr int kMaxProtections = 512;
  std::atomic<uint32_t> request;   // relay → child: number of the posted request (a futex word)
  std::atomic<uint32_t> answered;  // child → relay: number of the last request answered (a futex word)
  // The request.
  Op op;
  int32_t stock_first;
  gqa_attention_args args, args2;
  uint64_t reset_begin, reset_bytes;
  int32_t num_protections;
  Protection prot[kMaxProtections];
  // EndToEnd: the tokens to teacher-force with (the relay's stock run's) and where the candidate's logits go.
  static constexpr int kMaxTokens = 1024;
  int32_t num_tokens;
  int32_t tokens[kMaxTokens];
  uint64_t logits_at, logits_floats;
  // CudaBenchSetup / CudaRepetition.
  static constexpr int kMaxSets = 8;
  int32_t num_sets, set, rotation;
  gqa_attention_args sets[kMaxSets];
  uint64_t out2[kMaxSets];
  // The answer (written by the candidate's process: checked, not trusted).
  int32_t rc, rc_stock;
  double cand_seconds, stock_seconds;
  char failure[512];  // the candidate's Kernel::describe(rc) when rc != GQA_OK
  // CUDA target: the stock kernel behind the ABI's time; `fatal`: a CUDA error after the candidate ran (the
  // context may be unusable, so the stage ends); `integrity`: a device guard band the call changed ("": none);
  // CudaBenchSetup: the GPU in words and its measured read bandwidth (bytes/s).
  double stock_abi_seconds, read_bandwidth;
  int32_t fatal;
  char integrity[256];
  char device[256];
};

// Futex wait / wake on a word in shared memory (not FUTEX_PRIVATE: two processes).
void futex_wait(std::atomic<uint32_t>& word, uint32_t value, int timeout_ms);
void futex_wake(std::atomic<uint32_t>& word);

// The relay's side: posts requests and waits for their answers, forwarding the child's records and
// watching that it still lives meanwhile.
class ChildLink {
 public:
  // `poll` runs while waiting (forwards records) and returns false once the child has ended.
  ChildLink(Control* c, std::function<bool()> poll) : c_(c), poll_(std::move(poll)) {}
  // Posts the request filled in by `fill` and waits for the answer; false when the child ended first.
  bool post(Op op, const std::function<void(Control&)>& fill = {});
  bool gone() const { return gone_; }
  Control& control() { return *c_; }

 private:
  Control* c_;
  std::function<bool()> poll_;
  uint32_t n_ = 0;
  bool gone_ = false;
};

}  // namespace gqa::eval
