#include "dispatch/attempt_history.h"

namespace callbackd {
namespace {

std::int64_t minute_of(TimePoint t) {
  return std::chrono::floor<std::chrono::minutes>(t).time_since_epoch().count();
}

}  // namespace

void AttemptHistory::add(TimePoint at, bool succeeded) {
  const std::int64_t minute = minute_of(at);
  if (minute < 0) return;
  std::lock_guard lock(mutex_);
  Bucket& bucket = ring_[static_cast<std::size_t>(minute) % kMinutes];
  if (bucket.minute != minute) {
    if (bucket.minute > minute) return;  // older than the hour the ring holds
    bucket = Bucket{minute, 0, 0};
  }
  ++(succeeded ? bucket.succeeded : bucket.failed);
}

std::vector<MinuteCounts> AttemptHistory::last_hour(TimePoint now) const {
  const std::int64_t last = minute_of(now);
  std::vector<MinuteCounts> out;
  out.reserve(kMinutes);
  std::lock_guard lock(mutex_);
  for (std::int64_t minute = last - static_cast<std::int64_t>(kMinutes) + 1; minute <= last;
       ++minute) {
    MinuteCounts counts;
    counts.minute = TimePoint(std::chrono::minutes(minute));
    if (minute >= 0) {
      const Bucket& bucket = ring_[static_cast<std::size_t>(minute) % kMinutes];
      if (bucket.minute == minute) {
        counts.succeeded = bucket.succeeded;
        counts.failed = bucket.failed;
      }
    }
    out.push_back(counts);
  }
  return out;
}

}  // namespace callbackd
