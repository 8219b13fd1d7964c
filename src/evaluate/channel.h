// The worker's two processes in lockstep (CPU target). The relay is the judge: it makes every input (in a
// SharedArena, with private copies of its own), posts one request at a time in a Control block shared
// with the candidate's process, and waits for the answer; the candidate's process only calls kernels,
// times them and answers. Nothing the judge decides with (private inputs, reference, stock output,
// verdicts, result records) is in the candidate's address space; what it reads from there (outputs, the
// inputs as the program left them, canaries, reported times, return codes) is checked, never trusted.
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
  // The answer (written by the candidate's process: checked, not trusted).
  int32_t rc, rc_stock;
  double cand_seconds, stock_seconds;
  char failure[512];  // the candidate's Kernel::describe(rc) when rc != GQA_OK
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
