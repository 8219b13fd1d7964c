// Byte-level BPE merging on token ids with a per-word cache. The merge order is HF tokenizers': lowest
// rank first, ties broken by the leftmost position, so "aaa" with merge "a a" gives "aa" + "a".
#include <algorithm>
#include <bit>

#include "tokenizer/tokenizer_impl.h"

namespace gqa::tok {

void MergeTable::insert_or_assign(int32_t left, int32_t right, Merge m) {
  if ((size_ + 1) * 2 > slots_.size()) grow();  // keep the load factor at most 1/2
  uint64_t key = pack(left, right);
  size_t i = slot_of(key);
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
  if (slots_[i].key == kEmpty) ++size_;
  slots_[i] = {key, m};
}

void MergeTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  size_t capacity = old.empty() ? 64 : old.size() * 2;
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  shift_ = 64 - std::countr_zero(capacity);
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = slot_of(s.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void Bpe::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  if (ignore_merges) {
    if (auto it = word_ids.find(word); it != word_ids.end()) out.push_back(it->second);
  }
  if (out.size() == first) merge(word, out);
  if (cacheable) {
    std::vector<int32_t> ids(out.begin() + static_cast<ptrdiff_t>(first), out.end());
    std::lock_guard lock(cache_mutex_);
    // A full cache is dropped rather than evicted piecemeal: simple, and the working set of a text
    // (its frequent words) refills it at once.
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

void Bpe::merge(std::string_view word, std::vector<int32_t>& out) const {
  // Symbols form a doubly linked list over an array; a merged-away symbol gets id -1.
  struct Symbol {
    int32_t id, prev, next;
  };
  std::vector<Symbol> syms;
  syms.reserve(word.size());
  bool last_was_unk = false;
  for (unsigned char b : word) {
    int32_t id = byte_ids[b];
    if (id < 0) {
      // A byte missing from the vocabulary: HF drops it without an unk token, or emits unk (once per
      // run of unknown bytes with fuse_unk).
      if (unk_id < 0) continue;
      if (fuse_unk && last_was_unk) continue;
      id = unk_id;
      last_was_unk = true;
    } else {
      last_was_unk = false;
    }
    int32_t i = static_cast<int32_t>(syms.size());
    syms.push_back({id, i - 1, i + 1});
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Candidate {
    int32_t rank, pos, result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Candidate> heap;
  auto push_pair = [&](int32_t pos) {
    int32_t next = syms[pos].next;
    if (next < 0) return;
    const Merge* m = merges.find(syms[pos].id, syms[next].id);
    if (!m) return;
    heap.push_back({m->rank, pos, m->result});
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push_pair(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = syms[c.pos];
    // Stale candidates: the left symbol was merged away, or its right neighbour changed since.
    if (left.id < 0 || left.next < 0) continue;
    Symbol& right = syms[left.next];
    const Merge* m = merges.find(left.id, right.id);
    if (!m || m->result != c.result) continue;
    left.id = c.result;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = c.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

}  // namespace gqa::tok
