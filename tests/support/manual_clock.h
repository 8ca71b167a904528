// A clock that moves only when the test moves it.
#pragma once

#include <callbackd/clock.h>

#include <atomic>

namespace callbackd::testing {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = from_unix_ms(1'700'000'000'000))
      : ms_(to_unix_ms(start)) {}
  TimePoint now() const override { return from_unix_ms(ms_.load()); }
  void advance(Millis by) { ms_ += by.count(); }

 private:
  std::atomic<std::int64_t> ms_;
};

}  // namespace callbackd::testing
