// Time is injected: the engine reads "now" only through a Clock, so tests can drive retries
// with a manual clock and a millisecond schedule.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace callbackd {

using Millis = std::chrono::milliseconds;
// Wall-clock time at millisecond resolution: what is stored, shown and scheduled.
using TimePoint = std::chrono::sys_time<Millis>;

inline std::int64_t to_unix_ms(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint from_unix_ms(std::int64_t ms) { return TimePoint(Millis(ms)); }

// Thread-safe: now() may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

// The real clock (std::chrono::system_clock).
class SystemClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
  }
};

inline std::shared_ptr<const Clock> system_clock() {
  static const auto clock = std::make_shared<const SystemClock>();
  return clock;
}

}  // namespace callbackd
