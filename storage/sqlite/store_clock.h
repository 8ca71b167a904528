// The SQLite store's "now", which every due time and lease is measured from: the process's
// monotonic clock, anchored to the wall clock when the store was opened. A step of the wall
// clock while callbackd runs moves no due time and ends no lease early; only the one process
// holding the store's lock ever compares against it.
#pragma once

#include <callbackd/clock.h>

#include <memory>

namespace callbackd::sqlite {

class StoreClock {
 public:
  explicit StoreClock(std::shared_ptr<const Clock> clock)
      : clock_(std::move(clock)),
        wall_at_open_(clock_->now()),
        steady_at_open_(clock_->steady_now()) {}

  TimePoint now() const {
    return wall_at_open_ +
           std::chrono::duration_cast<Millis>(clock_->steady_now() - steady_at_open_);
  }
  std::int64_t now_ms() const { return to_unix_ms(now()); }

 private:
  std::shared_ptr<const Clock> clock_;
  TimePoint wall_at_open_;
  SteadyTime steady_at_open_;
};

}  // namespace callbackd::sqlite
