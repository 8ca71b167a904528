// Time is injected: the engine reads time only through a Clock, so tests can drive retries
// with a manual clock and a millisecond schedule.
//
// Two kinds of time, never mixed: wall time is only stored and shown (created_at, started_at);
// deadlines, timers and lease arithmetic inside a process use the monotonic time, so a step of
// the wall clock (NTP, an operator's `date -s`) changes timestamps and nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace callbackd {

using Millis = std::chrono::milliseconds;
// Wall-clock time at millisecond resolution: what is stored and shown.
using TimePoint = std::chrono::sys_time<Millis>;
// Monotonic time: what deadlines and leases inside one process are measured in.
using SteadyTime = std::chrono::steady_clock::time_point;

inline std::int64_t to_unix_ms(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint from_unix_ms(std::int64_t ms) { return TimePoint(Millis(ms)); }

// Thread-safe: both may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;          // wall time
  virtual SteadyTime steady_now() const = 0;  // never goes back, whatever the wall clock does
};

// The real clocks (std::chrono::system_clock and steady_clock).
class SystemClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
  }
  SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
};

inline std::shared_ptr<const Clock> system_clock() {
  static const auto clock = std::make_shared<const SystemClock>();
  return clock;
}

}  // namespace callbackd
