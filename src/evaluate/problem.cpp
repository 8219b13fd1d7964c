// Problem buffers, random inputs, poisoning and the float64 reference.
#include "evaluate/problem.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <atomic>

#include "common/dtype.h"
#include "common/error.h"

namespace gqa::eval {

namespace {
constexpr uint16_t kNanBf16 = 0x7FC1;
constexpr int64_t kPadPositions = 5;  // cache rows past the longest sequence, NaN-filled
}  // namespace

uint64_t Rng::next() {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float Rng::uniform() { return static_cast<float>(static_cast<int64_t>(next() >> 40) - (1 << 23)) / (1 << 23); }

GuardedBuffer Problem::buffer(size_t bytes) { return arena_ ? GuardedBuffer(*arena_, bytes) : GuardedBuffer(bytes); }

Problem::Problem(const Case& c, KvLayout layout, int threads, SharedArena* arena) : case_(c), layout_(layout), arena_(arena) {
  const int S = static_cast<int>(c.q_lens.size());
  if (S == 0 || c.kv_lens.size() != c.q_lens.size()) fail("evaluate", "case {}: q_lens and kv_lens differ in length", c.name);
  for (int s = 0; s < S; ++s)
    if (c.q_lens[s] < 1 || c.kv_lens[s] < c.q_lens[s])
      fail("evaluate", "case {}: sequence {} has q_len {} and kv_len {}", c.name, s, c.q_lens[s], c.kv_lens[s]);
  const int64_t D = c.head_dim, H = c.num_q_heads, G = c.num_kv_heads, TQ = c.total_q();
  const int kv_bound = std::max(c.max_kv_len(), c.kv_bound), q_bound = std::max(c.max_q_len(), c.q_bound);
  capacity_ = kv_bound + kPadPositions;
  const int64_t per_seq = capacity_ * G * D;
  q_ = buffer(TQ * H * D * 2);
  k_ = buffer(S * per_seq * 2);
  v_ = buffer(S * per_seq * 2);
  cu_ = buffer((S + 1) * 4);
  kvl_ = buffer(S * 4);
  out_ = buffer(TQ * H * D * 2);
  own_cu_.assign(S + 1, 0);
  for (int s = 0; s < S; ++s) own_cu_[s + 1] = own_cu_[s] + c.q_lens[s];
  own_kv_ = c.kv_lens;
  std::memcpy(cu_.data(), own_cu_.data(), cu_.size());
  std::memcpy(kvl_.data(), own_kv_.data(), kvl_.size());
  gqa_attention_args& a = args_;
  a.abi_version = GQA_ABI_VERSION;
  a.num_seqs = S, a.num_q_heads = c.num_q_heads, a.num_kv_heads = c.num_kv_heads, a.head_dim = c.head_dim;
  a.total_q = static_cast<int32_t>(TQ), a.max_q_len = q_bound, a.max_kv_len = kv_bound;
  a.cu_q_lens = cu_.as<int32_t>(), a.kv_lens = kvl_.as<int32_t>();
  a.q = q_.as<gqa_bf16>(), a.k = k_.as<gqa_bf16>(), a.v = v_.as<gqa_bf16>(), a.out = out_.as<gqa_bf16>();
  a.k_stride_seq = a.v_stride_seq = per_seq;
  if (layout == KvLayout::PosMajor) {
    a.k_stride_pos = a.v_stride_pos = G * D;
    a.k_stride_head = a.v_stride_head = D;
  } else {
    a.k_stride_pos = a.v_stride_pos = D;
    a.k_stride_head = a.v_stride_head = capacity_ * D;
  }
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  a.num_threads = threads;
  threads_ = threads;
  ws_ = buffer(gqa_workspace_min_bytes(&a));
  a.workspace = ws_.data(), a.workspace_bytes = ws_.size();
  a.stream = nullptr;
}

void Problem::set_inputs_read_only(bool ro) {
  for (GuardedBuffer* b : {&q_, &k_, &v_, &cu_, &kvl_}) b->set_read_only(ro);
}

void Problem::draw_queries(Rng& rng) {
  const int64_t D = case_.head_dim;
  own_q_.resize(q_.size() / 2);
  const float q_amp = 3.0f * std::sqrt(3.0f);  // uniform with std 3
  for (size_t row = 0; row < own_q_.size() / D; ++row) {
    const float amp = rng.next() % 8 == 0 ? 12 * q_amp : q_amp;  // large-logit rows
    for (int64_t i = 0; i < D; ++i) own_q_[row * D + i] = f32_to_bf16(amp * rng.uniform());
  }
  q_.set_read_only(false);
  std::memcpy(q_.data(), own_q_.data(), q_.size());
  ref_.clear();
}

void Problem::fill(Rng& rng) {
  set_inputs_read_only(false);
  const int64_t D = case_.head_dim, G = case_.num_kv_heads;
  draw_queries(rng);
  const float kv_amp = std::sqrt(3.0f);
  own_k_.assign(k_.size() / 2, kNanBf16);
  own_v_.assign(v_.size() / 2, kNanBf16);
  for (int s = 0; s < args_.num_seqs; ++s)
    for (int64_t p = 0; p < capacity_; ++p)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t ko = s * args_.k_stride_seq + p * args_.k_stride_pos + g * args_.k_stride_head;
        const int64_t vo = s * args_.v_stride_seq + p * args_.v_stride_pos + g * args_.v_stride_head;
        if (p >= case_.kv_lens[s]) continue;
        for (int64_t i = 0; i < D; ++i) {
          own_k_[ko + i] = f32_to_bf16(kv_amp * rng.uniform());
          own_v_[vo + i] = f32_to_bf16(kv_amp * rng.uniform());
        }
      }
  std::memcpy(k_.data(), own_k_.data(), k_.size());
  std::memcpy(v_.data(), own_v_.data(), v_.size());
  std::memcpy(cu_.data(), own_cu_.data(), cu_.size());
  std::memcpy(kvl_.data(), own_kv_.data(), kvl_.size());
}

void Problem::refill_queries(Rng& rng) {
  draw_queries(rng);
  q_.set_read_only(true);
}

std::string Problem::inputs_changed() const {
  std::string d;
  auto check = [&](const char* what, const GuardedBuffer& b, const void* own) {
    if (std::memcmp(b.data(), own, b.size()) != 0) d += fmt::format("{}{}", d.empty() ? "" : ", ", what);
  };
  check("q", q_, own_q_.data());
  check("k", k_, own_k_.data());
  check("v", v_, own_v_.data());
  check("cu_q_lens", cu_, own_cu_.data());
  check("kv_lens", kvl_, own_kv_.data());
  return d.empty() ? d : "changed its inputs (" + d + ")";
}

void Problem::poison() {
  set_inputs_read_only(true);
  for (GuardedBuffer* o : {&out_, &out2_}) {
    auto* p = o->as<uint16_t>();
    for (size_t i = 0; i < o->size() / 2; ++i) p[i] = kNanBf16;
  }
  std::memset(ws_.data(), 0xFF, ws_.size());
  if (ws2_.data()) std::memset(ws2_.data(), 0xFF, ws2_.size());
}

const gqa_attention_args& Problem::second_args() {
  if (!out2_.data()) {
    out2_ = buffer(out_.size());
    ws2_ = buffer(ws_.size());
    args2_ = args_;
    args2_.out = out2_.as<gqa_bf16>();
    args2_.workspace = ws2_.data();
  }
  return args2_;
}

bool Problem::canaries_intact() const {
  for (const GuardedBuffer* b : {&q_, &k_, &v_, &cu_, &kvl_, &out_, &ws_, &out2_, &ws2_})
    if (!b->canaries_intact()) return false;
  return true;
}

const std::vector<double>& Problem::reference() {
  if (!ref_.empty()) return ref_;
  const gqa_attention_args& a = args_;
  const int64_t D = a.head_dim, H = a.num_q_heads, group = H / a.num_kv_heads;
  ref_.assign(static_cast<size_t>(a.total_q * H * D), 0.0);
  const uint16_t* q = own_q_.data();
  const uint16_t* k = own_k_.data();
  const uint16_t* v = own_v_.data();
  const int32_t* cu = own_cu_.data();
  const int32_t* kvl = own_kv_.data();
  const int64_t rows = static_cast<int64_t>(a.total_q) * H;
  // Plain threads, not OpenMP: in the relay an OpenMP pool would keep spinning after its region, on the
  // cores the candidate's timed calls run on next.
  std::atomic<int64_t> next_row{0};
  auto work = [&] {
    std::vector<double> p(static_cast<size_t>(case_.max_kv_len())), qd(static_cast<size_t>(D)), acc(static_cast<size_t>(D));
    for (int64_t row; (row = next_row.fetch_add(1)) < rows;) {
      const int64_t t = row / H, h = row % H;
      int s = 0;
      while (cu[s + 1] <= t) ++s;
      const int64_t qi = t - cu[s], q_len = cu[s + 1] - cu[s];
      const int64_t last = kvl[s] - q_len + qi, g = h / group;
      for (int64_t i = 0; i < D; ++i) qd[i] = bf16_to_f32(q[row * D + i]);
      double mx = -INFINITY;
      for (int64_t j = 0; j <= last; ++j) {
        const uint16_t* kr = k + s * a.k_stride_seq + j * a.k_stride_pos + g * a.k_stride_head;
        double dot = 0;
        for (int64_t i = 0; i < D; ++i) dot += qd[i] * bf16_to_f32(kr[i]);
        p[j] = dot * a.scale;
        mx = std::max(mx, p[j]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j <= last; ++j) {
        const double w = std::exp(p[j] - mx);
        sum += w;
        const uint16_t* vr = v + s * a.v_stride_seq + j * a.v_stride_pos + g * a.v_stride_head;
        for (int64_t i = 0; i < D; ++i) acc[i] += w * bf16_to_f32(vr[i]);
      }
      for (int64_t i = 0; i < D; ++i) ref_[row * D + i] = acc[i] / sum;
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < std::max(1, threads_); ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return ref_;
}

namespace {

// Row-wise comparison of a bf16 output with a reference given element by element.
template <class Ref>
Comparison compare_rows(const gqa_attention_args& a, const int32_t* cu, const int32_t* kvl, const uint16_t* o,
                        Ref ref, double tolerance) {
  const int64_t D = a.head_dim, H = a.num_q_heads, rows = static_cast<int64_t>(a.total_q) * H;
  Comparison c;
  double err2 = 0, ref2 = 0;
  int64_t worst_row = -1;
  for (int64_t row = 0; row < rows; ++row) {
    double e2 = 0, r2 = 0;
    bool finite = true;
    for (int64_t i = 0; i < D; ++i) {
      const double x = bf16_to_f32(o[row * D + i]), r = ref(row * D + i);
      if (!std::isfinite(x)) {
        ++c.non_finite;
        finite = false;
        continue;
      }
      e2 += (x - r) * (x - r);
      r2 += r * r;
    }
    err2 += e2;
    ref2 += r2;
    const double rel = finite ? std::sqrt(e2) / (std::sqrt(r2) + 1e-6) : INFINITY;
    if (!(rel <= tolerance)) ++c.bad_rows;
    if (rel > c.max_row_error || worst_row < 0) {
      c.max_row_error = std::max(c.max_row_error, rel);
      if (rel >= c.max_row_error) worst_row = row;
    }
  }
  c.global_error = c.non_finite ? INFINITY : std::sqrt(err2) / (std::sqrt(ref2) + 1e-12);
  c.ok = c.non_finite == 0 && c.bad_rows == 0;
  if (worst_row >= 0) {
    const int64_t t = worst_row / H, h = worst_row % H;
    int s = 0;
    while (cu[s + 1] <= t) ++s;
    const int64_t qi = t - cu[s], q_len = cu[s + 1] - cu[s];
    std::string elems;
    for (int64_t i = 0; i < std::min<int64_t>(D, 6); ++i)
      elems += fmt::format(" [{}] out {:.5g} ref {:.5g};", i, bf16_to_f32(o[worst_row * D + i]), ref(worst_row * D + i));
    c.worst = fmt::format("worst row: sequence {} query {} (position {} of kv_len {}) head {}: relative error {:.3g};{}",
                          s, qi, kvl[s] - q_len + qi, kvl[s], h, c.max_row_error, elems);
  }
  return c;
}

}  // namespace

Comparison Problem::compare() {
  const std::vector<double>& ref = reference();
  return compare_rows(args_, own_cu_.data(), own_kv_.data(), out_.as<uint16_t>(),
                      [&](int64_t i) { return ref[i]; }, kRowTolerance);
}

Comparison Problem::compare_with(const uint16_t* other) const {
  return compare_rows(args_, own_cu_.data(), own_kv_.data(), out_.as<uint16_t>(),
                      [&](int64_t i) { return static_cast<double>(bf16_to_f32(other[i])); }, 2 * kRowTolerance);
}

void Problem::protections(std::vector<Protection>& out, bool inputs_read_only) const {
  for (const GuardedBuffer* b : {&q_, &k_, &v_, &cu_, &kvl_}) b->protections(out, inputs_read_only);
  for (const GuardedBuffer* b : {&out_, &ws_, &out2_, &ws2_}) b->protections(out, false);
}

gqa_attention_args Problem::private_args(gqa_bf16* out, void* workspace, int threads) const {
  gqa_attention_args a = args_;
  a.q = reinterpret_cast<const gqa_bf16*>(own_q_.data());
  a.k = reinterpret_cast<const gqa_bf16*>(own_k_.data());
  a.v = reinterpret_cast<const gqa_bf16*>(own_v_.data());
  a.cu_q_lens = own_cu_.data();
  a.kv_lens = own_kv_.data();
  a.out = out;
  a.workspace = workspace;
  a.num_threads = threads;
  return a;
}

Comparison Problem::compare_with_second() const {
  if (!out2_.data()) fail("evaluate", "case {}: no second output to compare with", case_.name);
  return compare_with(out2_.as<uint16_t>());
}

std::string describe_mismatch(const Comparison& c, int64_t rows) {
  return fmt::format("{} of {} rows over the bound {:.4g}, {} non-finite values, global error {:.3g}\n  {}", c.bad_rows,
                     rows, kRowTolerance, c.non_finite, c.global_error, c.worst);
}

std::string describe_match(const Comparison& c) {
  return fmt::format("max row error {:.3g}, global {:.3g}", c.max_row_error, c.global_error);
}

}  // namespace gqa::eval
