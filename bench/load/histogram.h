// A latency histogram with logarithmic buckets (HDR-style: 32 linear sub-buckets per power of
// two, so any value is kept within 3 %), in microseconds. Not thread-safe.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace callbackd::load {

class Histogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr std::uint64_t kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSub;

  static int index(std::uint64_t v) {
    if (v < kSub) return static_cast<int>(v);
    const int msb = 63 - std::countl_zero(v);
    return (msb - kSubBits + 1) * static_cast<int>(kSub) +
           static_cast<int>((v >> (msb - kSubBits)) - kSub);
  }
  static std::uint64_t lower(int i) {
    if (i < static_cast<int>(kSub)) return static_cast<std::uint64_t>(i);
    const int msb = i / static_cast<int>(kSub) + kSubBits - 1;
    return (kSub + static_cast<std::uint64_t>(i % kSub)) << (msb - kSubBits);
  }
  static std::uint64_t upper(int i) {  // inclusive
    return i + 1 < kBuckets ? lower(i + 1) - 1 : UINT64_MAX;
  }

  void record(std::uint64_t micros) {
    ++counts_[index(micros)];
    ++total_;
    max_ = std::max(max_, micros);
    min_ = std::min(min_, micros);
  }
  void merge(const Histogram& other) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
    min_ = std::min(min_, other.min_);
  }
  void reset() { *this = Histogram{}; }

  std::uint64_t total() const { return total_; }
  std::uint64_t max() const { return total_ ? max_ : 0; }
  std::uint64_t count(int i) const { return counts_[i]; }

  // The smallest recorded bucket bound at or above fraction q of the values (0 < q <= 1).
  std::uint64_t percentile(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.999999);
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= std::max<std::uint64_t>(rank, 1)) return std::clamp(upper(i), min_, max_);
    }
    return max_;
  }

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
};

}  // namespace callbackd::load
