// At most one log line per interval for an event that can repeat thousands of times a second
// (accept failures, refused connections); the lines skipped are counted and reported with the
// next one, so nothing is hidden and the log cannot flood.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace callbackd {

// Not thread-safe: one per event, used from one thread (the HTTP server's io thread).
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration interval = std::chrono::seconds(1))
      : interval_(interval) {}

  // The number of occurrences skipped since the last line when this one should be logged,
  // nullopt when it should be skipped (and counted).
  std::optional<std::uint64_t> admit(
      std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
    if (logged_once_ && now - last_logged_ < interval_) {
      ++suppressed_;
      return std::nullopt;
    }
    logged_once_ = true;
    last_logged_ = now;
    const std::uint64_t skipped = suppressed_;
    suppressed_ = 0;
    return skipped;
  }

 private:
  const std::chrono::steady_clock::duration interval_;
  bool logged_once_ = false;
  std::chrono::steady_clock::time_point last_logged_{};
  std::uint64_t suppressed_ = 0;
};

}  // namespace callbackd
