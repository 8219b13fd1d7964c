// Futexes on shared memory and the relay's request/answer loop.
#include "evaluate/channel.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ctime>

namespace gqa::eval {

void futex_wait(std::atomic<uint32_t>& word, uint32_t value, int timeout_ms) {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT, value, timeout_ms >= 0 ? &ts : nullptr, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE, 1 << 30, nullptr, nullptr, 0);
}

bool ChildLink::post(Op op, const std::function<void(Control&)>& fill) {
  if (gone_) return false;
  c_->op = op;
  if (fill) fill(*c_);
  const uint32_t n = ++n_;
  c_->request.store(n, std::memory_order_release);
  futex_wake(c_->request);
  for (;;) {
    const uint32_t seen = c_->answered.load(std::memory_order_acquire);
    if (seen == n) return true;
    futex_wait(c_->answered, seen, 20);
    if (c_->answered.load(std::memory_order_acquire) == n) return true;
    if (!poll_()) {
      gone_ = true;
      return false;
    }
  }
}

}  // namespace gqa::eval
