// mmap'd buffers with PROT_NONE guard pages on both sides and canary-filled slack.
#include "evaluate/guarded_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace gqa::eval {

namespace {
constexpr uint8_t kCanary = 0xA5;
size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
}  // namespace

SharedArena::SharedArena(size_t bytes) : size_(bytes) {
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) fail("evaluate", "cannot map a shared arena of {} bytes: {}", bytes, std::strerror(errno));
  base_ = static_cast<uint8_t*>(m);
}

SharedArena::~SharedArena() { munmap(base_, size_); }

uint8_t* SharedArena::take(size_t bytes) {
  if (bytes % page() != 0 || used_ + bytes > size_)
    fail("evaluate", "shared arena: {} bytes asked with {} of {} in use", bytes, used_, size_);
  uint8_t* p = base_ + used_;
  used_ += bytes;
  high_ = std::max(high_, used_);
  return p;
}

GuardedBuffer::GuardedBuffer(SharedArena& arena, size_t bytes, size_t align) : bytes_(bytes), owned_(false) {
  const size_t P = page();
  const size_t span = (bytes + align - 1) / align * align;
  page_bytes_ = std::max<size_t>((span + P - 1) / P * P, P);
  map_bytes_ = page_bytes_ + 2 * P;
  map_ = arena.take(map_bytes_);
  pages_ = map_ + P;
  data_ = pages_ + page_bytes_ - span;
  std::memset(pages_, kCanary, page_bytes_ - span);
  std::memset(static_cast<uint8_t*>(data_) + bytes_, kCanary, span - bytes_);
}

void GuardedBuffer::protections(std::vector<Protection>& out, bool read_only) const {
  if (!map_) return;
  const size_t P = page();
  out.push_back({reinterpret_cast<uintptr_t>(map_), P, PROT_NONE});
  out.push_back({reinterpret_cast<uintptr_t>(pages_), page_bytes_, read_only ? PROT_READ : PROT_READ | PROT_WRITE});
  out.push_back({reinterpret_cast<uintptr_t>(pages_ + page_bytes_), P, PROT_NONE});
}

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
  if (map_ && owned_) munmap(map_, map_bytes_);
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
    owned_ = o.owned_;
  }
  return *this;
}

void GuardedBuffer::set_read_only(bool read_only) {
  if (map_ && owned_ && mprotect(pages_, page_bytes_, read_only ? PROT_READ : PROT_READ | PROT_WRITE) != 0)
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
