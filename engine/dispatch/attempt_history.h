// Attempts per minute over the last hour, counted in memory as attempts finish (GET /v1/stats,
// the console's chart). Per process: it starts empty, and a restart forgets it.
#pragma once

#include <callbackd/engine.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <vector>

namespace callbackd {

// Thread-safe.
class AttemptHistory {
 public:
  static constexpr std::size_t kMinutes = 60;

  // Counts one finished attempt in the minute of `at` (wall time).
  void add(TimePoint at, bool succeeded);
  // The kMinutes minutes up to and including the one holding `now`, oldest first; minutes
  // with no attempt are zero.
  std::vector<MinuteCounts> last_hour(TimePoint now) const;

 private:
  struct Bucket {
    std::int64_t minute = -1;  // minutes since the epoch this bucket counts; -1: never used
    std::size_t succeeded = 0;
    std::size_t failed = 0;
  };
  mutable std::mutex mutex_;
  std::array<Bucket, kMinutes> ring_{};  // minute m lives at m % kMinutes
};

}  // namespace callbackd
