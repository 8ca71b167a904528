// When to try again: the back-off schedule and the budget of attempts.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/delivery.h>

#include <vector>

namespace callbackd {

// Where a delivery goes after an attempt.
struct NextStep {
  DeliveryState state = DeliveryState::kPending;  // pending (retry), delivered or dead
  TimePoint at;  // pending: when the retry is due; otherwise when it finished
};

class RetryPolicy {
 public:
  // schedule[k] is the delay after the (k+1)-th failed attempt; schedule.size() retries.
  explicit RetryPolicy(std::vector<Millis> schedule) : schedule_(std::move(schedule)) {}

  // Attempts a delivery gets per budget: the first one plus one per schedule entry.
  int max_attempts() const { return static_cast<int>(schedule_.size()) + 1; }

  // `attempt_in_budget` is 1 for the first attempt since creation or redelivery.
  // A success is delivered; a failure is retried after its delay while the budget lasts and is
  // dead after that; a blocked address is dead at once (it would stay blocked).
  NextStep after_attempt(AttemptError error, int attempt_in_budget, TimePoint finished_at) const;

 private:
  std::vector<Millis> schedule_;
};

}  // namespace callbackd
