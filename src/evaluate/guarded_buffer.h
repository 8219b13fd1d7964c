// Host buffers for running untrusted programs: the buffer's end touches an inaccessible page (a write past
// it faults at once), the slack before and after it holds canary bytes (checked after each call), and
// inputs can be made read-only so that a program writing into q, k or v faults too.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gqa::eval {

class GuardedBuffer {
 public:
  GuardedBuffer() = default;
  // `bytes` usable bytes starting at an `align`-byte boundary; contents zero.
  explicit GuardedBuffer(size_t bytes, size_t align = 256);
  ~GuardedBuffer();
  GuardedBuffer(GuardedBuffer&& o) noexcept;
  GuardedBuffer& operator=(GuardedBuffer&& o) noexcept;
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;

  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  void* data() const { return data_; }
  size_t size() const { return bytes_; }
  // Read-only (true) or read-write (false) for the data pages.
  void set_read_only(bool read_only);
  // No access at all (true) or read-write again (false).
  void set_hidden(bool hidden);
  // False when a byte around the buffer (inside its pages) was changed.
  bool canaries_intact() const;

 private:
  void release();
  uint8_t* map_ = nullptr;  // whole mapping: guard page, data pages, guard page
  size_t map_bytes_ = 0;
  uint8_t* pages_ = nullptr;  // first data page
  size_t page_bytes_ = 0;     // data pages' size
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace gqa::eval
