// The host scheduler alone: no sockets, no storage, time passed in.
#include "dispatch/host_scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace callbackd {
namespace {

using namespace std::chrono_literals;

const SteadyTime kT0{std::chrono::hours(1)};

AttemptOutcome answered(Millis took = 2ms) { return {true, took}; }
AttemptOutcome timed_out(Millis took = 10s) { return {false, took}; }

class HostSchedulerTest : public ::testing::Test {
 protected:
  HostScheduler make(std::size_t max_in_flight = 256, std::size_t per_host = 32) {
    return HostScheduler({.max_in_flight = max_in_flight, .max_per_host = per_host});
  }
  // Adds `count` jobs to `host`, numbered from `first`; returns how many were taken.
  std::size_t add_jobs(HostScheduler& s, const std::string& host, std::size_t count,
                       HostScheduler::JobId first = 0) {
    std::size_t added = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (s.add(host, first + static_cast<HostScheduler::JobId>(i), false, kT0)) ++added;
    }
    return added;
  }
  // Starts everything that may start; returns the picks.
  std::vector<HostScheduler::Pick> start_all(HostScheduler& s) {
    std::vector<HostScheduler::Pick> picks;
    while (auto pick = s.next(kT0)) picks.push_back(*pick);
    return picks;
  }
  std::map<std::string, std::size_t> per_host(const std::vector<HostScheduler::Pick>& picks) {
    std::map<std::string, std::size_t> counts;
    for (const auto& p : picks) ++counts[p.host];
    return counts;
  }
};

TEST_F(HostSchedulerTest, ANewHostStartsSmallAndGrowsWithQuickAnswers) {
  HostScheduler s = make();
  ASSERT_EQ(add_jobs(s, "a", 16), 16u);
  EXPECT_EQ(start_all(s).size(), 4u) << "a new host's first limit";
  EXPECT_EQ(s.view("a")->pool, HostPool::kUnproven);
  for (int i = 0; i < 4; ++i) s.finished("a", answered(), kT0);
  EXPECT_EQ(s.view("a")->pool, HostPool::kQuick);
  EXPECT_EQ(s.view("a")->limit, 8u);
  // Grows one by one up to the per-host cap, and no further.
  for (int round = 0; round < 40; ++round) {
    add_jobs(s, "a", 64, 1000 + round * 64);
    for (const auto& pick : start_all(s)) s.finished(pick.host, answered(), kT0);
  }
  EXPECT_EQ(s.view("a")->limit, 32u);
}

TEST_F(HostSchedulerTest, FailuresHalveALimitDownToOne) {
  HostScheduler s = make();
  add_jobs(s, "a", 4);
  start_all(s);
  s.finished("a", timed_out(), kT0);
  EXPECT_EQ(s.view("a")->limit, 2u);
  EXPECT_EQ(s.view("a")->pool, HostPool::kSlow) << "its attempt held a slot for 10 s";
  s.finished("a", timed_out(), kT0);
  s.finished("a", timed_out(), kT0);
  s.finished("a", timed_out(), kT0);
  EXPECT_EQ(s.view("a")->limit, 1u);
  // A refused connection is cheap: the host fails, but quickly.
  add_jobs(s, "b", 2);
  start_all(s);
  s.finished("b", AttemptOutcome{false, 1ms}, kT0);
  EXPECT_EQ(s.view("b")->pool, HostPool::kQuick);
  EXPECT_EQ(s.view("b")->limit, 2u);
}

// A host that answers slowly but surely grows its limit too, inside the slow pool's quarter.
TEST_F(HostSchedulerTest, SlowAnswersGrowALimitInsideTheSlowPoolsShare) {
  HostScheduler s = make(/*max_in_flight=*/64, /*per_host=*/32);
  add_jobs(s, "a", 4);
  start_all(s);
  for (int i = 0; i < 4; ++i) s.finished("a", answered(5s), kT0);
  EXPECT_EQ(s.view("a")->limit, 8u);
  EXPECT_EQ(s.view("a")->pool, HostPool::kSlow);
  for (int round = 0; round < 10; ++round) {
    add_jobs(s, "a", 64, 100 + round * 64);
    for (const auto& pick : start_all(s)) s.finished(pick.host, answered(5s), kT0);
  }
  add_jobs(s, "a", 64, 5000);
  EXPECT_EQ(start_all(s).size(), 16u) << "a quarter of 64";
}

// Ten silent hosts cannot take the global cap: unproven hosts hold at most half of it, slow
// ones a quarter, and a quick host keeps finding slots beside them.
TEST_F(HostSchedulerTest, SickHostsNeverFillTheGlobalCap) {
  HostScheduler s = make(/*max_in_flight=*/16, /*per_host=*/8);
  add_jobs(s, "quick", 1, 5000);
  s.finished(s.next(kT0)->host, answered(), kT0);
  ASSERT_EQ(s.view("quick")->pool, HostPool::kQuick);

  for (int h = 0; h < 10; ++h) add_jobs(s, "silent" + std::to_string(h), 8, h * 100);
  const auto first = start_all(s);
  EXPECT_EQ(first.size(), 7u) << "unproven hosts hold half of 16, less the fresh lane's eighth";
  for (const auto& [host, n] : per_host(first)) EXPECT_LE(n, 4u) << host;
  // The ones that ran time out and become slow hosts: a quarter of the cap between them.
  for (const auto& pick : first) s.finished(pick.host, timed_out(), kT0);
  start_all(s);
  std::size_t slow_running = 0, unproven_running = 0;
  for (const auto& v : s.views()) {
    if (v.pool == HostPool::kSlow) slow_running += v.in_flight;
    if (v.pool == HostPool::kUnproven) unproven_running += v.in_flight;
  }
  EXPECT_LE(slow_running, 4u);
  EXPECT_LE(unproven_running, 8u);
  EXPECT_LT(s.running(), 16u);
  // The quick host still starts at once.
  add_jobs(s, "quick", 2, 6000);
  const auto quick = start_all(s);
  ASSERT_EQ(quick.size(), 2u);
  EXPECT_EQ(quick[0].host, "quick");
}

TEST_F(HostSchedulerTest, FreeSlotsGoRoundRobinAcrossHosts) {
  HostScheduler s = make(/*max_in_flight=*/6, /*per_host=*/32);
  // Two quick hosts, each with a long line.
  for (const char* host : {"a", "b"}) {
    add_jobs(s, host, 1, host[0] * 1000);
    s.finished(s.next(kT0)->host, answered(), kT0);
  }
  add_jobs(s, "a", 40, 10000);
  add_jobs(s, "b", 40, 20000);
  const auto picks = start_all(s);
  EXPECT_EQ(picks.size(), 6u);
  const auto counts = per_host(picks);
  EXPECT_EQ(counts.at("a"), 3u);
  EXPECT_EQ(counts.at("b"), 3u);
}

TEST_F(HostSchedulerTest, LinesAreBoundedAndFullHostsAreNamedForClaims) {
  HostScheduler s = make();
  const std::size_t taken = add_jobs(s, "a", 100);
  EXPECT_EQ(taken, 16u) << "four times a new host's limit";
  EXPECT_EQ(s.full_hosts(10), std::vector<std::string>{"a"});
  start_all(s);
  EXPECT_TRUE(s.full_hosts(10).empty());
}

// A flood of never-tried hosts fills the unproven pool's waiting room; a fresh callback to one
// more new host still gets in, pushing another host's waiting job back to the store, and it
// is among the next to start.
TEST_F(HostSchedulerTest, AFreshHostGetsInPastAFloodOfUnprovenOnes) {
  HostScheduler s = make(/*max_in_flight=*/8, /*per_host=*/4);
  std::size_t added = 0;
  for (int h = 0; h < 1000; ++h) added += add_jobs(s, "down" + std::to_string(h), 1, h);
  EXPECT_EQ(added, 64u) << "the unproven pool's waiting room";
  EXPECT_EQ(start_all(s).size(), 4u);
  for (int h = 1000; h < 1004; ++h) add_jobs(s, "down" + std::to_string(h), 1, h);

  std::optional<HostScheduler::Evicted> evicted;
  ASSERT_TRUE(s.try_reserve("healthy", evicted));
  ASSERT_TRUE(evicted.has_value());
  EXPECT_NE(evicted->host, "healthy");
  ASSERT_TRUE(s.add("healthy", 99999, /*reserved=*/true, kT0));
  // Two slots free up: the newest host is among the next two to start.
  s.finished("down0", timed_out(3s), kT0);
  s.finished("down1", timed_out(3s), kT0);
  std::set<std::string> next{s.next(kT0)->host, s.next(kT0)->host};
  EXPECT_TRUE(next.contains("healthy"));
}

// A burst of never-tried hosts from the backlog takes the unproven pool's slots at once and
// frees them only as their attempts run out; its last eighth stays for fresh callbacks, and
// starts there are spaced over an attempt timeout.
TEST_F(HostSchedulerTest, TheFreshLaneIsKeptForFreshCallbacks) {
  HostScheduler s({.max_in_flight = 256, .attempt_timeout = 1600ms});
  // Unproven hosts hold 128 slots, the last 16 for fresh ones, one start per 100 ms.
  for (int h = 0; h < 2000; ++h) add_jobs(s, "down" + std::to_string(h), 1, h);
  EXPECT_EQ(start_all(s).size(), 112u);

  std::optional<HostScheduler::Evicted> evicted;
  ASSERT_TRUE(s.try_reserve("healthy", evicted));
  ASSERT_TRUE(s.add("healthy", 99999, /*reserved=*/true, kT0));
  const auto fresh = s.next(kT0 + 10ms);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->host, "healthy");
  EXPECT_FALSE(s.next(kT0 + 10ms).has_value()) << "backlog jobs stay out of the lane";

  ASSERT_TRUE(s.try_reserve("second", evicted));
  ASSERT_TRUE(s.add("second", 99998, /*reserved=*/true, kT0 + 50ms));
  EXPECT_FALSE(s.next(kT0 + 60ms).has_value()) << "the lane's next start is 100 ms on";
  const auto second = s.next(kT0 + 110ms);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->host, "second");

  // A callback that waited past its freshness gets no lane slot.
  ASSERT_TRUE(s.try_reserve("late", evicted));
  ASSERT_TRUE(s.add("late", 99997, /*reserved=*/true, kT0 + 110ms));
  EXPECT_FALSE(s.next(kT0 + 400ms).has_value());
}

// A host whose deliveries overflowed into the store is named for a claim by host once it is
// quick and has room, with the room it has; an unproven or a full host is not.
TEST_F(HostSchedulerTest, ASpilledQuickHostIsNamedOnceItHasRoom) {
  HostScheduler s = make();
  EXPECT_EQ(add_jobs(s, "a", 20), 16u);
  s.note_spilled("a");
  EXPECT_FALSE(s.take_spilled().has_value()) << "unproven, and its line is full";
  for (const auto& pick : start_all(s)) s.finished(pick.host, answered(), kT0);
  ASSERT_EQ(s.view("a")->pool, HostPool::kQuick);
  // Limit 8 now: a line of 32, of which 12 are taken.
  const auto spilled = s.take_spilled();
  ASSERT_TRUE(spilled.has_value());
  EXPECT_EQ(spilled->host, "a");
  EXPECT_EQ(spilled->room, 32u - 12u);
  EXPECT_FALSE(s.take_spilled().has_value()) << "named once per note_spilled()";
  s.note_spilled("a");
  add_jobs(s, "a", 20, 100);
  EXPECT_FALSE(s.take_spilled().has_value()) << "its line is full again";
  start_all(s);
  EXPECT_TRUE(s.take_spilled().has_value());
}

TEST_F(HostSchedulerTest, ReservationsHoldAPlaceUntilAddedOrCancelled) {
  HostScheduler s = make();
  std::optional<HostScheduler::Evicted> evicted;
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(s.try_reserve("a", evicted));
  EXPECT_FALSE(s.try_reserve("a", evicted)) << "the line is full of reservations";
  EXPECT_FALSE(s.add("a", 1, /*reserved=*/false, kT0));
  EXPECT_TRUE(s.add("a", 1, /*reserved=*/true, kT0));
  s.cancel_reservation("a");
  EXPECT_EQ(s.waiting(), 15u);
  EXPECT_TRUE(s.remove("a", 1));
  EXPECT_FALSE(s.remove("a", 1));
  EXPECT_EQ(s.waiting(), 14u);
}

TEST_F(HostSchedulerTest, IdleHostsAreForgottenAfterAWhile) {
  HostScheduler s(HostSchedulerOptions{.forget_after = 60s});
  add_jobs(s, "a", 1);
  s.finished(s.next(kT0)->host, timed_out(), kT0);
  ASSERT_EQ(s.view("a")->pool, HostPool::kSlow);
  s.forget_idle(kT0 + 59s);
  EXPECT_TRUE(s.view("a").has_value()) << "a slow host is remembered for a while";
  s.forget_idle(kT0 + 61s);
  EXPECT_FALSE(s.view("a").has_value());
  add_jobs(s, "a", 1);
  EXPECT_EQ(s.view("a")->pool, HostPool::kUnproven);
}

TEST_F(HostSchedulerTest, AJobThatNeverRanTeachesNothing) {
  HostScheduler s = make();
  add_jobs(s, "a", 1);
  s.finished(s.next(kT0)->host, std::nullopt, kT0);
  EXPECT_EQ(s.view("a")->pool, HostPool::kUnproven);
  EXPECT_EQ(s.view("a")->limit, 4u);
  EXPECT_EQ(s.running(), 0u);
}

}  // namespace
}  // namespace callbackd
