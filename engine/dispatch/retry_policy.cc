#include "dispatch/retry_policy.h"

namespace callbackd {

NextStep RetryPolicy::after_attempt(AttemptError error, int attempt_in_budget) const {
  if (error == AttemptError::kNone) return {DeliveryState::kDelivered, Millis(0)};
  if (attempt_in_budget >= max_attempts()) return {DeliveryState::kDead, Millis(0)};
  const auto index = static_cast<std::size_t>(attempt_in_budget < 1 ? 0 : attempt_in_budget - 1);
  return {DeliveryState::kPending, schedule_[index]};
}

}  // namespace callbackd
