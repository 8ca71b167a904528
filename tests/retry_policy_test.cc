#include "retry_policy.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

using namespace std::chrono_literals;

TEST(RetryPolicy, DefaultScheduleGivesSixAttemptsThenDead) {
  RetryPolicy policy({30s, 60s, 120s, 300s, 600s});
  EXPECT_EQ(policy.max_attempts(), 6);
  const TimePoint t0 = from_unix_ms(1'700'000'000'000);
  const Millis expected[] = {30s, 60s, 120s, 300s, 600s};
  for (int attempt = 1; attempt <= 5; ++attempt) {
    NextStep next = policy.after_attempt(AttemptError::kStatus, attempt, t0);
    EXPECT_EQ(next.state, DeliveryState::kPending) << attempt;
    EXPECT_EQ(next.at - t0, expected[attempt - 1]) << attempt;
  }
  NextStep last = policy.after_attempt(AttemptError::kTimeout, 6, t0);
  EXPECT_EQ(last.state, DeliveryState::kDead);
  EXPECT_EQ(last.at, t0);
}

TEST(RetryPolicy, SuccessIsDeliveredAtAnyAttempt) {
  RetryPolicy policy({1ms, 2ms});
  const TimePoint t0 = from_unix_ms(5);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    EXPECT_EQ(policy.after_attempt(AttemptError::kNone, attempt, t0).state,
              DeliveryState::kDelivered);
  }
}

TEST(RetryPolicy, BlockedIsDeadAtOnce) {
  RetryPolicy policy({1s});
  EXPECT_EQ(policy.after_attempt(AttemptError::kBlocked, 1, TimePoint()).state,
            DeliveryState::kDead);
}

TEST(RetryPolicy, EmptyScheduleMeansOneAttempt) {
  RetryPolicy policy({});
  EXPECT_EQ(policy.max_attempts(), 1);
  EXPECT_EQ(policy.after_attempt(AttemptError::kRefused, 1, TimePoint()).state,
            DeliveryState::kDead);
}

}  // namespace
}  // namespace callbackd
