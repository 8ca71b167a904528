// The endpoint breaker alone: no sockets, no storage, time passed in.
#include "dispatch/endpoint_breaker.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using Admission = EndpointBreaker::Admission;

const SteadyTime kT0{std::chrono::hours(1)};
const TimePoint kWall0 = from_unix_ms(1'700'000'000'000);
constexpr Millis kPatience = 20s;
const std::string kA = "https://a.example:443";
const std::string kB = "https://b.example:443";

BreakerOptions options(std::size_t min_attempts = 4) {
  BreakerOptions o;
  o.failure_rate = 0.5;
  o.min_attempts = min_attempts;
  o.window = 10s;
  o.cooldown = 1s;
  o.max_cooldown = 3s;
  return o;
}

class EndpointBreakerTest : public ::testing::Test {
 protected:
  std::optional<BreakerTransition> fail(const std::string& host, SteadyTime at,
                                        bool probe = false) {
    return breaker_.record(host, AttemptError::kStatus, 503, probe, at);
  }
  std::optional<BreakerTransition> succeed(const std::string& host, SteadyTime at,
                                           bool probe = false) {
    return breaker_.record(host, AttemptError::kNone, 204, probe, at);
  }
  BreakerState state(const std::string& host) {
    for (const EndpointHealth& e : breaker_.views({}, kT0, kWall0)) {
      if (e.endpoint == host) return e.state;
    }
    return BreakerState::kClosed;
  }
  // Opens kA with four failures at kT0.
  void open_a() {
    for (int i = 0; i < 3; ++i) ASSERT_FALSE(fail(kA, kT0));
    auto opened = fail(kA, kT0);
    ASSERT_TRUE(opened);
    ASSERT_EQ(opened->to, BreakerState::kOpen);
  }
  // Takes kA half-open: its cool-down ends.
  void half_open_a(SteadyTime at) {
    auto changed = breaker_.advance(at);
    ASSERT_EQ(changed.size(), 1u);
    ASSERT_EQ(changed[0].to, BreakerState::kHalfOpen);
  }

  EndpointBreaker breaker_{options(), kPatience};
};

TEST(BreakerVerdict, WhatCountsAgainstAnEndpoint) {
  EXPECT_EQ(judge(AttemptError::kNone, 200), BreakerVerdict::kHealthy);
  for (AttemptError e : {AttemptError::kTimeout, AttemptError::kRefused, AttemptError::kReset,
                         AttemptError::kDns, AttemptError::kTls, AttemptError::kNetwork}) {
    EXPECT_EQ(judge(e, 0), BreakerVerdict::kFailure) << to_string(e);
  }
  for (int status : {500, 502, 503, 504, 408, 429}) {
    EXPECT_EQ(judge(AttemptError::kStatus, status), BreakerVerdict::kFailure) << status;
  }
  // The host answered about one URL: a shared host stays open to its other tenants.
  for (int status : {301, 400, 401, 404, 410}) {
    EXPECT_EQ(judge(AttemptError::kStatus, status), BreakerVerdict::kHealthy) << status;
  }
  EXPECT_EQ(judge(AttemptError::kBlocked, 0), BreakerVerdict::kNotCounted);
}

TEST_F(EndpointBreakerTest, OpensAtTheRateOnlyOnceTheWindowHoldsTheMinimum) {
  // Three failures of three: the rate is there, the count is not.
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(fail(kA, kT0));
  EXPECT_EQ(breaker_.admit(kA, kT0), Admission::kRun);
  // Successes keep a busy endpoint closed below the rate: 3 of 7 failed.
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(succeed(kA, kT0));
  EXPECT_EQ(state(kA), BreakerState::kClosed);
  // 4 of 8 is the rate.
  auto opened = fail(kA, kT0);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->to, BreakerState::kOpen);
  EXPECT_EQ(opened->endpoint, kA);
  EXPECT_EQ(opened->attempts, 8u);
  EXPECT_DOUBLE_EQ(opened->failure_rate, 0.5);
  EXPECT_EQ(opened->cooldown, 1s);
  EXPECT_EQ(state(kA), BreakerState::kOpen);
  EXPECT_EQ(state(kB), BreakerState::kClosed) << "other endpoints are not touched";
  EXPECT_EQ(breaker_.admit(kB, kT0), Admission::kRun);
}

TEST_F(EndpointBreakerTest, OldFailuresSlideOutOfTheWindow) {
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(fail(kA, kT0));
  // A window (10 s) later the three are gone: one more failure is one of one.
  EXPECT_FALSE(fail(kA, kT0 + 10s));
  EXPECT_FALSE(fail(kA, kT0 + 10s));
  EXPECT_FALSE(fail(kA, kT0 + 10s));
  auto view = breaker_.views({}, kT0 + 10s, kWall0);
  ASSERT_EQ(view.size(), 1u);
  EXPECT_EQ(view[0].attempts, 3u);
  // Within the window they add up.
  EXPECT_TRUE(fail(kA, kT0 + 12s));
}

TEST_F(EndpointBreakerTest, OpenHoldsEveryAttemptUntilTheCoolDownEnds) {
  open_a();
  EXPECT_EQ(breaker_.admit(kA, kT0), Admission::kHold);
  EXPECT_FALSE(breaker_.closed(kA)) << "no fresh callback is handed over";
  EXPECT_EQ(breaker_.hold_for(kA, kT0 + 300ms), 700ms);
  EXPECT_EQ(breaker_.unhealthy(10), std::vector<std::string>{kA});
  EXPECT_FALSE(breaker_.closed(kA));
  EXPECT_FALSE(breaker_.take_probe_claim(kT0 + 999ms));
  EXPECT_TRUE(breaker_.advance(kT0 + 999ms).empty());
  EXPECT_EQ(breaker_.admit(kA, kT0 + 999ms), Admission::kHold);
  // Attempts that were running when it opened are counted but change nothing.
  EXPECT_FALSE(succeed(kA, kT0 + 500ms));
  EXPECT_EQ(state(kA), BreakerState::kOpen);
}

TEST_F(EndpointBreakerTest, HalfOpenLetsExactlyOneProbeThrough) {
  open_a();
  half_open_a(kT0 + 1s);
  EXPECT_EQ(breaker_.hold_for(kA, kT0 + 1s), 0ms);
  EXPECT_EQ(breaker_.admit(kA, kT0 + 1s), Admission::kProbe);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(breaker_.admit(kA, kT0 + 1s), Admission::kHold);
  EXPECT_TRUE(breaker_.half_open(kA));
  EXPECT_FALSE(breaker_.take_probe_claim(kT0 + 1s)) << "the probe is running";
  // A straggler's success is not the probe's: still half-open.
  EXPECT_FALSE(succeed(kA, kT0 + 1s));
  EXPECT_EQ(state(kA), BreakerState::kHalfOpen);
}

TEST_F(EndpointBreakerTest, AProbeThatSucceedsClosesWithAFreshWindow) {
  open_a();
  half_open_a(kT0 + 1s);
  ASSERT_EQ(breaker_.admit(kA, kT0 + 1s), Admission::kProbe);
  auto closed = succeed(kA, kT0 + 1100ms, /*probe=*/true);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->to, BreakerState::kClosed);
  EXPECT_TRUE(closed->probe);
  EXPECT_TRUE(breaker_.closed(kA));
  EXPECT_TRUE(breaker_.unhealthy(10).empty());
  EXPECT_EQ(breaker_.admit(kA, kT0 + 1100ms), Admission::kRun);
  // The failures that opened it are gone: it takes the minimum again to reopen.
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(fail(kA, kT0 + 1200ms));
  EXPECT_TRUE(fail(kA, kT0 + 1200ms));
}

TEST_F(EndpointBreakerTest, AProbeThatFailsReopensWithACoolDownThatGrowsToItsCap) {
  open_a();  // a 1 s cool-down from kT0
  SteadyTime now = kT0 + 1s;
  for (Millis expected : {2s, 3s, 3s}) {
    half_open_a(now);
    ASSERT_EQ(breaker_.admit(kA, now), Admission::kProbe);
    auto reopened = fail(kA, now, /*probe=*/true);
    ASSERT_TRUE(reopened);
    EXPECT_EQ(reopened->to, BreakerState::kOpen);
    EXPECT_TRUE(reopened->probe);
    EXPECT_EQ(reopened->cooldown, expected);
    EXPECT_EQ(breaker_.admit(kA, now), Admission::kHold);
    EXPECT_TRUE(breaker_.advance(now + expected - 1ms).empty());
    now += expected;
  }
  // A success after the longest cool-down closes it, and the next opening starts from the base.
  half_open_a(now);
  ASSERT_EQ(breaker_.admit(kA, now), Admission::kProbe);
  ASSERT_TRUE(succeed(kA, now, true));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(fail(kA, now));
  auto opened = fail(kA, now);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->cooldown, 1s);
}

TEST_F(EndpointBreakerTest, TheProbeIsClaimedOnceAndLookedForAgainWhenNothingWasDue) {
  open_a();
  half_open_a(kT0 + 1s);
  EXPECT_EQ(breaker_.take_probe_claim(kT0 + 1s), kA);
  EXPECT_FALSE(breaker_.take_probe_claim(kT0 + 1s)) << "one claim on its way";
  // Nothing of kA was due: the store is asked again 5 s later, not before.
  breaker_.probe_not_found(kA, kT0 + 1s, 5s);
  EXPECT_FALSE(breaker_.take_probe_claim(kT0 + 6s - 1ms));
  EXPECT_EQ(breaker_.take_probe_claim(kT0 + 6s), kA);
  // The claimed probe never arrives: after the patience another may go.
  EXPECT_FALSE(breaker_.take_probe_claim(kT0 + 6s + kPatience - 1ms));
  EXPECT_EQ(breaker_.take_probe_claim(kT0 + 6s + kPatience), kA);
}

TEST_F(EndpointBreakerTest, AProbeRefusedByTheGuardTeachesNothingAndFreesTheProbe) {
  open_a();
  half_open_a(kT0 + 1s);
  ASSERT_EQ(breaker_.admit(kA, kT0 + 1s), Admission::kProbe);
  EXPECT_FALSE(breaker_.record(kA, AttemptError::kBlocked, 0, true, kT0 + 1s));
  EXPECT_EQ(state(kA), BreakerState::kHalfOpen);
  EXPECT_EQ(breaker_.admit(kA, kT0 + 1s), Admission::kProbe);
  // Guard refusals never open an endpoint either.
  for (int i = 0; i < 10; ++i) breaker_.record(kB, AttemptError::kBlocked, 0, false, kT0);
  EXPECT_TRUE(breaker_.closed(kB));
}

TEST_F(EndpointBreakerTest, ShowsCountsAndEndpointsMostFailuresFirst) {
  open_a();
  fail(kB, kT0 + 1ms);
  succeed(kB, kT0 + 1ms);
  succeed("http://c.example:80", kT0 + 2ms);
  EXPECT_EQ(breaker_.counts(), (EndpointCounts{2, 1, 0}));
  auto all = breaker_.views({}, kT0 + 250ms, kWall0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].endpoint, kA);
  EXPECT_EQ(all[0].state, BreakerState::kOpen);
  EXPECT_EQ(all[0].attempts, 4u);
  EXPECT_EQ(all[0].failures, 4u);
  EXPECT_DOUBLE_EQ(all[0].failure_rate, 1.0);
  EXPECT_EQ(all[0].last_error, AttemptError::kStatus);
  EXPECT_EQ(all[0].last_failure_at, kWall0 - 250ms);
  EXPECT_EQ(all[0].opened_at, kWall0 - 250ms);
  EXPECT_EQ(all[0].next_probe_at, kWall0 + 750ms);
  EXPECT_EQ(all[1].endpoint, kB);
  EXPECT_DOUBLE_EQ(all[1].failure_rate, 0.5);
  EXPECT_EQ(all[1].opened_at, std::nullopt);
  EXPECT_EQ(all[2].endpoint, "http://c.example:80");
  EXPECT_EQ(all[2].last_error, std::nullopt);
  EXPECT_EQ(all[2].last_failure_at, std::nullopt);
  auto open = breaker_.views({.state = BreakerState::kOpen}, kT0, kWall0);
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].endpoint, kA);
  EXPECT_EQ(breaker_.views({.state = std::nullopt, .limit = 2}, kT0, kWall0).size(), 2u);
}

TEST_F(EndpointBreakerTest, ForgetsIdleClosedEndpointsAndStaysBounded) {
  open_a();
  succeed(kB, kT0);
  breaker_.forget_idle(kT0 + 29s);
  EXPECT_EQ(breaker_.counts(), (EndpointCounts{1, 1, 0}));
  // Three windows without an attempt: a closed endpoint is forgotten, an open one never is.
  breaker_.forget_idle(kT0 + 30s);
  EXPECT_EQ(breaker_.counts(), (EndpointCounts{0, 1, 0}));

  BreakerOptions small = options();
  small.max_endpoints = 2;
  EndpointBreaker bounded(small, kPatience);
  for (int i = 0; i < 5; ++i) {
    bounded.record("http://h" + std::to_string(i) + ":80", AttemptError::kNone, 200, false, kT0);
  }
  EXPECT_EQ(bounded.counts(), (EndpointCounts{2, 0, 0}));
  // An endpoint past the bound is not tracked: it behaves as closed.
  for (int i = 0; i < 10; ++i) {
    bounded.record("http://h4:80", AttemptError::kTimeout, 0, false, kT0);
  }
  EXPECT_TRUE(bounded.closed("http://h4:80"));
  EXPECT_EQ(bounded.admit("http://h4:80", kT0), Admission::kRun);
}

TEST(EndpointBreakerOff, DisabledShowsHealthButNeverHoldsAnything) {
  BreakerOptions off = options();
  off.enabled = false;
  EndpointBreaker breaker(off, kPatience);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(breaker.record(kA, AttemptError::kTimeout, 0, false, kT0));
  }
  EXPECT_EQ(breaker.admit(kA, kT0), Admission::kRun);
  EXPECT_TRUE(breaker.closed(kA));
  EXPECT_EQ(breaker.counts(), (EndpointCounts{1, 0, 0}));
  auto views = breaker.views({}, kT0, kWall0);
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].state, BreakerState::kClosed);
  EXPECT_EQ(views[0].failures, 100u);
}

}  // namespace
}  // namespace callbackd
