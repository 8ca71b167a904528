// A delivery's lease as this process knows it: its token, and how long the store, as far as it
// last confirmed, keeps it ours. An attempt is sent only while that confirmed end leaves room
// for the whole attempt and its record, so a delivery is never sent by two holders at once;
// a lease that cannot be confirmed in time is given up, never sent on.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/queue.h>

#include <algorithm>

namespace callbackd {

// How long a dispatcher's leases last and when it renews them.
struct LeaseTimes {
  Millis lease;          // a claim or renewal lasts this long
  Millis renew_below;    // a lease with less than this left is renewed
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

class Lease {
 public:
  // `confirmed_until`: the end the store gave it, measured from before the store was asked
  // (the earliest the store can have started counting).
  Lease(LeaseToken token, SteadyTime confirmed_until)
      : token_(token), confirmed_until_(confirmed_until) {}

  const LeaseToken& token() const { return token_; }
  SteadyTime confirmed_until() const { return confirmed_until_; }

  // Whether, as last confirmed, it is still ours for at least `need` from `now`.
  bool outlives(SteadyTime now, Millis need) const { return confirmed_until_ - now >= need; }
  // Past its confirmed end: the store may have given it to someone else.
  bool ended(SteadyTime now) const { return now >= confirmed_until_; }

  // A renewal is on its way (the store worker sends it again until it is answered).
  bool renewing() const { return renewing_; }
  void renewal_sent() { renewing_ = true; }
  // The store renewed it with a call sent at `sent_at`, for `length`.
  void confirm(SteadyTime sent_at, Millis length) {
    confirmed_until_ = std::max(confirmed_until_, sent_at + length);
    renewing_ = false;
  }

 private:
  LeaseToken token_;
  SteadyTime confirmed_until_;
  bool renewing_ = false;
};

}  // namespace callbackd
