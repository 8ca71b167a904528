// When to try again: the back-off schedule and the budget of attempts.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/delivery.h>

#include <vector>

namespace callbackd {

// Where a delivery goes after an attempt.
struct NextStep {
  DeliveryState state = DeliveryState::kPending;  // pending (retry), delivered or dead
  Millis retry_after{0};  // pending: how long after this failure the retry is due
};

class RetryPolicy {
 public:
  // schedule[k] is the delay after the (k+1)-th failed attempt; schedule.size() retries.
  explicit RetryPolicy(std::vector<Millis> schedule) : schedule_(std::move(schedule)) {}

  // Attempts a delivery gets per budget: the first one plus one per schedule entry.
  int max_attempts() const { return static_cast<int>(schedule_.size()) + 1; }

  // `attempt_in_budget` is 1 for the first attempt since creation or redelivery. A success is
  // delivered; any failure — a refused address too, since DNS can change — is retried after
  // its delay while the budget lasts, and is dead after that.
  NextStep after_attempt(AttemptError error, int attempt_in_budget) const;

 private:
  std::vector<Millis> schedule_;
};

}  // namespace callbackd
