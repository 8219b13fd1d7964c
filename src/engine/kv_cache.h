// KV cache of the CPU engine: per layer, keys and values of every position, [pos][kv_head][head_dim],
// float32, allocated once for the whole generation (prompt + token limit).
#pragma once
#include <cstdint>
#include <vector>

namespace gqa {

class KVCache {
 public:
  KVCache() = default;
  KVCache(int64_t layers, int64_t capacity, int64_t kv_dim)
      : layers_(layers), capacity_(capacity), kv_dim_(kv_dim),
        k_(static_cast<size_t>(layers * capacity * kv_dim)), v_(k_.size()) {}

  float* k(int64_t layer) { return k_.data() + layer * capacity_ * kv_dim_; }
  float* v(int64_t layer) { return v_.data() + layer * capacity_ * kv_dim_; }
  int64_t capacity() const { return capacity_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t length = 0;  // positions filled
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

 private:
  int64_t layers_ = 0, capacity_ = 0, kv_dim_ = 0;
  std::vector<float> k_, v_;
};

}  // namespace gqa
