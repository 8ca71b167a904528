// A clock that moves only when the test moves it.
#pragma once

#include <callbackd/clock.h>

#include <atomic>

namespace callbackd::testing {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = from_unix_ms(1'700'000'000'000))
      : wall_ms_(to_unix_ms(start)) {}
  TimePoint now() const override { return from_unix_ms(wall_ms_.load()); }
  SteadyTime steady_now() const override { return SteadyTime(Millis(steady_ms_.load())); }

  // Time passes: both clocks move.
  void advance(Millis by) {
    wall_ms_ += by.count();
    steady_ms_ += by.count();
  }
  // Someone sets the wall clock (NTP, `date -s`): only the wall time jumps.
  void step_wall(Millis by) { wall_ms_ += by.count(); }

 private:
  std::atomic<std::int64_t> wall_ms_;
  // Starts well away from zero so "earlier than start" arithmetic stays positive.
  std::atomic<std::int64_t> steady_ms_{1'000'000'000};
};

}  // namespace callbackd::testing
