// mmap'd buffers with PROT_NONE guard pages on both sides and canary-filled slack.
#include "evaluate/guarded_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace gqa::eval {

namespace {
constexpr uint8_t kCanary = 0xA5;
size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
}  // namespace

GuardedBuffer::GuardedBuffer(size_t bytes, size_t align) : bytes_(bytes) {
  const size_t P = page();
  const size_t span = (bytes + align - 1) / align * align;  // data start aligned, end within `align` of the guard
  page_bytes_ = std::max<size_t>((span + P - 1) / P * P, P);
  map_bytes_ = page_bytes_ + 2 * P;
  void* m = mmap(nullptr, map_bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) fail("evaluate", "cannot map a guarded buffer of {} bytes: {}", bytes, std::strerror(errno));
  map_ = static_cast<uint8_t*>(m);
  pages_ = map_ + P;
  if (mprotect(pages_, page_bytes_, PROT_READ | PROT_WRITE) != 0)
    fail("evaluate", "mprotect of a guarded buffer failed: {}", std::strerror(errno));
  data_ = pages_ + page_bytes_ - span;
  std::memset(pages_, kCanary, page_bytes_ - span);
  std::memset(static_cast<uint8_t*>(data_) + bytes_, kCanary, span - bytes_);
}

GuardedBuffer::~GuardedBuffer() { release(); }

void GuardedBuffer::release() {
  if (map_) munmap(map_, map_bytes_);
  map_ = nullptr;
}

GuardedBuffer::GuardedBuffer(GuardedBuffer&& o) noexcept { *this = std::move(o); }

GuardedBuffer& GuardedBuffer::operator=(GuardedBuffer&& o) noexcept {
  if (this != &o) {
    release();
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = o.map_bytes_;
    pages_ = o.pages_;
    page_bytes_ = o.page_bytes_;
    data_ = o.data_;
    bytes_ = o.bytes_;
  }
  return *this;
}

void GuardedBuffer::set_read_only(bool read_only) {
  if (map_ && mprotect(pages_, page_bytes_, read_only ? PROT_READ : PROT_READ | PROT_WRITE) != 0)
    fail("evaluate", "mprotect of a guarded buffer failed: {}", std::strerror(errno));
}

void GuardedBuffer::set_hidden(bool hidden) {
  if (map_ && mprotect(pages_, page_bytes_, hidden ? PROT_NONE : PROT_READ | PROT_WRITE) != 0)
    fail("evaluate", "mprotect of a guarded buffer failed: {}", std::strerror(errno));
}

bool GuardedBuffer::canaries_intact() const {
  if (!map_) return true;
  const uint8_t* d = static_cast<const uint8_t*>(data_);
  for (const uint8_t* p = pages_; p < d; ++p)
    if (*p != kCanary) return false;
  for (const uint8_t* p = d + bytes_; p < pages_ + page_bytes_; ++p)
    if (*p != kCanary) return false;
  return true;
}

}  // namespace gqa::eval
