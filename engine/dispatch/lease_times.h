// How long a dispatcher's leases last and when it renews them. A lease must outlive any attempt
// started under it, with room to store the attempt's record, so an attempt is never sent a
// second time in parallel by whoever would claim the delivery next.
#pragma once

#include <callbackd/clock.h>

#include <algorithm>

namespace callbackd {

struct LeaseTimes {
  Millis lease;          // a claim or renewal lasts this long
  Millis renew_below;    // a held lease with less than this left is renewed at the next tick
  Millis start_minimum;  // an attempt starts only with at least this much of its lease left
};

inline LeaseTimes lease_times(Millis attempt_timeout, Millis poll_interval) {
  // Time to store the record once the attempt's bound has run out.
  constexpr Millis kRecordMargin{1000};
  const Millis ticks = std::max(2 * poll_interval, Millis(1000));
  LeaseTimes t;
  t.start_minimum = attempt_timeout + kRecordMargin;
  // Renewed a couple of ticks before an attempt could no longer start under it.
  t.renew_below = t.start_minimum + ticks;
  t.lease = t.renew_below + std::max(attempt_timeout, ticks);
  return t;
}

}  // namespace callbackd
