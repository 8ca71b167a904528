// The engine's in-memory count of attempts per minute over the last hour (GET /v1/stats).
#include "dispatch/attempt_history.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

using namespace std::chrono_literals;

const TimePoint kNoon = from_unix_ms(1767268800000);  // 2026-01-01T12:00:00Z

TEST(AttemptHistoryTest, CountsEachMinuteOfTheLastHourOldestFirst) {
  AttemptHistory history;
  history.add(kNoon + 5s, true);
  history.add(kNoon + 59s, false);
  history.add(kNoon + 1min, true);
  history.add(kNoon - 59min, false);  // the oldest minute still shown at 12:01

  const std::vector<MinuteCounts> hour = history.last_hour(kNoon + 1min + 30s);
  ASSERT_EQ(hour.size(), 60u);
  EXPECT_EQ(hour.front().minute, kNoon - 58min);
  EXPECT_EQ(hour.back().minute, kNoon + 1min);
  EXPECT_EQ(hour[58].minute, kNoon);
  EXPECT_EQ(hour[58].succeeded, 1u);
  EXPECT_EQ(hour[58].failed, 1u);
  EXPECT_EQ(hour[59].attempts(), 1u);
  std::size_t total = 0;
  for (const MinuteCounts& m : hour) total += m.attempts();
  EXPECT_EQ(total, 3u) << "the attempt at 11:01 is over an hour old at 12:01:30";
}

TEST(AttemptHistoryTest, AMinuteAnHourLaterStartsItsBucketAfresh) {
  AttemptHistory history;
  history.add(kNoon, false);
  history.add(kNoon + 60min, true);  // same ring slot, one hour on
  history.add(kNoon, false);         // too old for the ring now: dropped

  const std::vector<MinuteCounts> hour = history.last_hour(kNoon + 60min);
  EXPECT_EQ(hour.back().succeeded, 1u);
  EXPECT_EQ(hour.back().failed, 0u);
  std::size_t total = 0;
  for (const MinuteCounts& m : hour) total += m.attempts();
  EXPECT_EQ(total, 1u);
}

TEST(AttemptHistoryTest, StartsEmpty) {
  AttemptHistory history;
  for (const MinuteCounts& m : history.last_hour(kNoon)) EXPECT_EQ(m.attempts(), 0u);
}

}  // namespace
}  // namespace callbackd
