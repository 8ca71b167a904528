// The range of finish times a bulk redelivery works through, and its cursor, shared by the
// backends. Finished rows keep their finish time in due_at (on the store's clock), so the range
// is a range of due_at.
#pragma once

#include <callbackd/delivery.h>
#include <callbackd/status.h>

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

namespace callbackd {

struct RedeliverRange {
  std::int64_t since_ms = 0;  // inclusive
  std::int64_t until_ms = 0;  // exclusive
};

// The first call ends the range just after the store's `now_ms`: everything finished by the
// time of the call is in it (also in the same millisecond), whatever finishes later, including
// deliveries this run queued that fail again, is outside it. The cursor carries that end to
// later calls. A given finished_until (inclusive) ends it earlier.
inline Result<RedeliverRange> redeliver_range(const RedeliverFilter& filter, std::int64_t now_ms) {
  if (filter.state != DeliveryState::kDead && filter.state != DeliveryState::kDelivered) {
    return Status::InvalidArgument("state: must be dead or delivered");
  }
  if (filter.limit < 1 || filter.limit > 1000) {
    return Status::InvalidArgument("limit: must be a number from 1 to 1000");
  }
  // The bounds are on the caller's clock, as it read at as_of; the store's clock reads now_ms
  // now: the difference moves them onto the store's clock (a few milliseconds of the call itself
  // aside).
  const std::int64_t offset = filter.as_of ? now_ms - to_unix_ms(*filter.as_of) : 0;
  RedeliverRange range;
  range.since_ms = filter.finished_since ? to_unix_ms(*filter.finished_since) + offset
                                         : std::numeric_limits<std::int64_t>::min();
  range.until_ms = now_ms + 1;
  if (!filter.cursor.empty()) {
    const std::string& c = filter.cursor;
    std::int64_t until = 0;
    auto [end, ec] = std::from_chars(c.data() + 1, c.data() + c.size(), until);
    if (c[0] != 't' || ec != std::errc() || end != c.data() + c.size()) {
      return Status::InvalidArgument("cursor: malformed; pass next_cursor back as given");
    }
    range.until_ms = until;
  }
  if (filter.finished_until) {
    const std::int64_t until = to_unix_ms(*filter.finished_until) + offset;
    if (until < range.until_ms) range.until_ms = until + 1;
  }
  return range;
}

inline std::string redeliver_cursor(const RedeliverRange& range) {
  return "t" + std::to_string(range.until_ms);
}

}  // namespace callbackd
