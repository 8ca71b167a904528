#include "log_throttle.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

using namespace std::chrono_literals;

TEST(LogThrottleTest, OneLinePerIntervalAndTheNextReportsWhatWasSkipped) {
  LogThrottle throttle(1s);
  const auto t0 = std::chrono::steady_clock::time_point() + 1h;
  EXPECT_EQ(throttle.admit(t0), std::optional<std::uint64_t>(0));
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(throttle.admit(t0 + 999ms), std::nullopt);
  EXPECT_EQ(throttle.admit(t0 + 1s), std::optional<std::uint64_t>(1000));
  EXPECT_EQ(throttle.admit(t0 + 1500ms), std::nullopt);
  EXPECT_EQ(throttle.admit(t0 + 5s), std::optional<std::uint64_t>(1));
}

}  // namespace
}  // namespace callbackd
