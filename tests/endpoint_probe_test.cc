// What endpoint health promises beside the breaker's own logic, in a real engine on SQLite with
// real HTTP: a half-open endpoint's probe is its oldest waiting callback however many new ones
// keep arriving (so callbacks to an endpoint that never recovers still end dead, oldest first),
// and an endpoint whose first attempts are all still in flight is listed.
#include <callbackd/engine.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "receiver.h"
#include "sample_tasks.h"
#include "sqlite_engine.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using testing::Receiver;
using testing::Reply;

EngineOptions options() {
  EngineOptions options;
  options.retry_schedule = {10ms, 10ms, 10ms, 10ms, 10ms};
  options.attempt_timeout = 2s;
  options.poll_interval = 10ms;
  options.allow_networks = {"127.0.0.0/8"};
  options.breaker.min_attempts = 4;
  options.breaker.failure_rate = 0.5;
  options.breaker.cooldown = 100ms;
  options.breaker.max_cooldown = 100ms;
  return options;
}

// The endpoint answers 503 to everything while callbacks to it keep arriving, one every 10 ms.
// Each probe is a real attempt of the oldest waiting callback, so the oldest ones use up their
// six attempts and die, in the order they were handed over; fresh arrivals never take the
// probe's place (they would each get attempt 1 and never a second).
TEST(EndpointProbeTest, TheProbeIsTheOldestWaitingCallbackWhateverKeepsArriving) {
  testing::TempDir dir;
  Receiver receiver([](const testing::ReceivedRequest&) { return Reply{.status = 503}; });
  auto engine = std::move(*testing::open_sqlite_engine(dir / "callbackd.db", options()));
  auto app = engine->create_app("acme");
  engine->start();
  std::vector<std::string> ids;  // in the order they were handed over
  const auto dead = [&](const std::string& id) {
    auto d = engine->delivery(id);
    return d.ok() && d->state == DeliveryState::kDead;
  };
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until && !(ids.size() > 3 && dead(ids[2]))) {
    auto receipt = engine->enqueue(app->app.id, receiver.url(),
                                   testing::completed_task("t" + std::to_string(ids.size())));
    ASSERT_TRUE(receipt.ok()) << receipt.status().to_string();
    ids.push_back(receipt->delivery_id);
    std::this_thread::sleep_for(10ms);
  }
  if (!dead(ids[2])) {
    std::map<std::string, int> per;
    for (const auto& r : receiver.requests()) ++per[r.headers.at("x-callback-id")];
    std::string shown;
    for (std::size_t i = 0; i < ids.size() && shown.size() < 2000; ++i) {
      if (per.contains(ids[i]))
        shown += std::to_string(i) + ":" + std::to_string(per[ids[i]]) + " ";
    }
    FAIL() << "the third-oldest callback did not end dead in 20 s (" << receiver.count()
           << " attempts for " << ids.size() << " callbacks): " << shown;
  }
  engine->stop();
  // Dead in the order handed over: none died while an older one still waited. (The first few
  // had their first attempt before the endpoint opened; later ones may have had one when it
  // closed for a moment... it never does here: every answer is a 503.)
  bool newer_dead_before_older = false;
  std::size_t last_dead = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (dead(ids[i])) {
      newer_dead_before_older = newer_dead_before_older || i != last_dead;
      last_dead = i + 1;
    }
  }
  EXPECT_FALSE(newer_dead_before_older);
  // The callbacks attempted at all: the few before it opened, and those the probes reached,
  // oldest first: not one per arrival.
  std::map<std::string, int> attempts;
  for (const auto& r : receiver.requests()) ++attempts[r.headers.at("x-callback-id")];
  EXPECT_LT(attempts.size(), ids.size() / 2)
      << attempts.size() << " of " << ids.size() << " callbacks were attempted";
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(attempts[ids[i]], 6) << ids[i];
}

// A new host whose attempts have not come back yet is already an endpoint in use: listed,
// closed, nothing counted, its attempts in flight.
TEST(EndpointProbeTest, AnEndpointWithOnlyAttemptsInFlightIsListed) {
  testing::TempDir dir;
  Receiver receiver(
      [](const testing::ReceivedRequest&) { return Reply{.status = 204, .delay = 1s}; });
  auto engine = std::move(*testing::open_sqlite_engine(dir / "callbackd.db", options()));
  auto app = engine->create_app("acme");
  engine->start();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        engine
            ->enqueue(app->app.id, receiver.url(), testing::completed_task("t" + std::to_string(i)))
            .ok());
  }
  ASSERT_TRUE(testing::wait_until([&] { return engine->in_flight() == 2; }, 5s));
  const std::string key = "http://127.0.0.1:" + std::to_string(receiver.port());
  const auto listed = engine->endpoints({});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].endpoint, key);
  EXPECT_EQ(listed[0].state, BreakerState::kClosed);
  EXPECT_EQ(listed[0].in_flight, 2u);
  EXPECT_EQ(listed[0].attempts, 0u) << "none has ended yet";
  EXPECT_TRUE(engine->endpoints({.state = BreakerState::kOpen}).empty());
  ASSERT_TRUE(receiver.wait_for_count(2, 5s));
}

}  // namespace
}  // namespace callbackd
