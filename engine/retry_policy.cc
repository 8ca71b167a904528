#include "retry_policy.h"

namespace callbackd {

NextStep RetryPolicy::after_attempt(AttemptError error, int attempt_in_budget,
                                    TimePoint finished_at) const {
  if (error == AttemptError::kNone) return {DeliveryState::kDelivered, finished_at};
  if (error == AttemptError::kBlocked || attempt_in_budget >= max_attempts()) {
    return {DeliveryState::kDead, finished_at};
  }
  const auto index = static_cast<std::size_t>(attempt_in_budget < 1 ? 0 : attempt_in_budget - 1);
  return {DeliveryState::kPending, finished_at + schedule_[index]};
}

}  // namespace callbackd
