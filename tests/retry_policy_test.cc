#include "dispatch/retry_policy.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

using namespace std::chrono_literals;

TEST(RetryPolicy, DefaultScheduleGivesSixAttemptsThenDead) {
  RetryPolicy policy({30s, 60s, 120s, 300s, 600s});
  EXPECT_EQ(policy.max_attempts(), 6);
  const Millis expected[] = {30s, 60s, 120s, 300s, 600s};
  for (int attempt = 1; attempt <= 5; ++attempt) {
    NextStep next = policy.after_attempt(AttemptError::kStatus, attempt);
    EXPECT_EQ(next.state, DeliveryState::kPending) << attempt;
    EXPECT_EQ(next.retry_after, expected[attempt - 1]) << attempt;
  }
  EXPECT_EQ(policy.after_attempt(AttemptError::kTimeout, 6).state, DeliveryState::kDead);
}

TEST(RetryPolicy, SuccessIsDeliveredAtAnyAttempt) {
  RetryPolicy policy({1ms, 2ms});
  for (int attempt = 1; attempt <= 3; ++attempt) {
    EXPECT_EQ(policy.after_attempt(AttemptError::kNone, attempt).state, DeliveryState::kDelivered);
  }
}

// DNS can change: a name whose every address was refused is tried again on the schedule.
TEST(RetryPolicy, BlockedFollowsTheScheduleLikeAnyFailure) {
  RetryPolicy policy({1s, 2s});
  NextStep first = policy.after_attempt(AttemptError::kBlocked, 1);
  EXPECT_EQ(first.state, DeliveryState::kPending);
  EXPECT_EQ(first.retry_after, 1s);
  EXPECT_EQ(policy.after_attempt(AttemptError::kBlocked, 3).state, DeliveryState::kDead);
}

TEST(RetryPolicy, EmptyScheduleMeansOneAttempt) {
  RetryPolicy policy({});
  EXPECT_EQ(policy.max_attempts(), 1);
  EXPECT_EQ(policy.after_attempt(AttemptError::kRefused, 1).state, DeliveryState::kDead);
}

}  // namespace
}  // namespace callbackd
