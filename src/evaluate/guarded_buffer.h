// Host buffers for running untrusted programs: the buffer's end touches an inaccessible page (a write past
// it faults at once), the slack before and after it holds canary bytes (checked after each call), and
// inputs can be made read-only so that a program writing into q, k or v faults too. On the CPU target the
// buffers live in a SharedArena: the worker's relay (the judge) and the candidate's process see the same
// pages at the same addresses, and protection is each process's own.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace gqa::eval {

// A page range and the protection the candidate's process gives it (PROT_* bits).
struct Protection {
  uintptr_t begin = 0;
  size_t bytes = 0;
  int prot = 0;
};

// One MAP_SHARED anonymous mapping, made before the worker forks, so that both processes have it at the
// same address. Buffers are taken from it in order (page-aligned) and all given back at once by reset().
class SharedArena {
 public:
  explicit SharedArena(size_t bytes);
  ~SharedArena();
  SharedArena(const SharedArena&) = delete;
  SharedArena& operator=(const SharedArena&) = delete;
  // `bytes` (a multiple of the page size) from the arena; throws gqa::Error when it is full.
  uint8_t* take(size_t bytes);
  void reset() { used_ = 0; }
  uint8_t* base() const { return base_; }
  size_t high_water() const { return high_; }  // the most ever taken: what may carry stale protections

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0, used_ = 0, high_ = 0;
};

class GuardedBuffer {
 public:
  GuardedBuffer() = default;
  // `bytes` usable bytes starting at an `align`-byte boundary; contents zero.
  explicit GuardedBuffer(size_t bytes, size_t align = 256);
  // The same layout taken from `arena`: nothing is protected in this process (the relay writes and reads
  // it); protections() says what the candidate's process must protect.
  GuardedBuffer(SharedArena& arena, size_t bytes, size_t align = 256);
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
  // False when a byte around the buffer (inside its pages) was changed.
  bool canaries_intact() const;
  // For a buffer in an arena: its guard pages inaccessible, its data pages read-only or read-write.
  void protections(std::vector<Protection>& out, bool read_only) const;

 private:
  void release();
  uint8_t* map_ = nullptr;  // whole mapping: guard page, data pages, guard page
  size_t map_bytes_ = 0;
  uint8_t* pages_ = nullptr;  // first data page
  size_t page_bytes_ = 0;     // data pages' size
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool owned_ = true;  // false: in a SharedArena (never unmapped or protected here)
};

}  // namespace gqa::eval
