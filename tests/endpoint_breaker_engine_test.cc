// The circuit breaker inside a real engine, on both backends: real HTTP to receivers on
// loopback, a manual clock for the breaker's cool-downs (SQLite runs its due times on it too;
// PostgreSQL keeps its own clock, so there retries fall due in real milliseconds).
#include <callbackd/engine.h>
#include <callbackd/postgres_store.h>
#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "manual_clock.h"
#include "postgres_cluster.h"
#include "receiver.h"
#include "sample_tasks.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using testing::ReceivedRequest;
using testing::Receiver;
using testing::Reply;
using testing::wait_until;

constexpr Millis kCooldown = 30s;

class EndpointBreakerEngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Engine> open() {
    Result<std::unique_ptr<Queue>> queue = Status::Internal("no backend");
    if (GetParam() == "sqlite") {
      queue = open_sqlite_queue({.path = dir_ / "callbackd.db", .clock = clock_});
    } else {
      if (conninfo_.empty()) conninfo_ = testing::fresh_postgres_database();
      queue = open_postgres_queue({.conninfo = conninfo_});
    }
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    if (!queue.ok()) return nullptr;
    EngineOptions options;
    options.queue = std::move(*queue);
    options.clock = clock_;
    options.master_key_file = dir_ / "master.key";
    // On PostgreSQL's clock retries fall due in real time: late enough that none is claimed
    // before the breaker has opened (a claim that came back after it opened would hold its
    // rows for the rest of the cool-down, which on this manual clock is not PostgreSQL's).
    const Millis retry = GetParam() == "sqlite" ? 10ms : 3s;
    options.retry_schedule = {retry, retry, retry, retry, retry};
    options.attempt_timeout = 2s;
    options.poll_interval = 10ms;
    options.allow_networks = {"127.0.0.0/8"};
    options.breaker.min_attempts = 4;
    options.breaker.failure_rate = 0.5;
    options.breaker.window = 60s;
    options.breaker.cooldown = kCooldown;
    options.breaker.max_cooldown = 2 * kCooldown;
    // PostgreSQL's due times run on its own clock, not this manual one: rows deferred to the
    // probe time would fall due in real cool-downs.
    options.breaker.defer_backlog = GetParam() == "sqlite";
    auto engine = Engine::open(std::move(options));
    EXPECT_TRUE(engine.ok()) << engine.status().to_string();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  static std::optional<EndpointHealth> endpoint(const Engine& engine, const std::string& key) {
    for (EndpointHealth& e : engine.endpoints({.state = std::nullopt, .limit = 1000})) {
      if (e.endpoint == key) return std::move(e);
    }
    return std::nullopt;
  }
  static bool in_state(const Engine& engine, const std::string& key, BreakerState state) {
    auto e = endpoint(engine, key);
    return e && e->state == state;
  }
  static std::string key_of(const Receiver& r) {
    return "http://127.0.0.1:" + std::to_string(r.port());
  }
  bool all_in(const Engine& engine, const std::vector<std::string>& ids, DeliveryState state) {
    for (const std::string& id : ids) {
      auto d = engine.delivery(id);
      if (!d.ok() || d->state != state) return false;
    }
    return true;
  }
  // Attempts stored for these deliveries. A retry falls due a delay after its record is
  // stored, on the store's clock: wait for the records before moving the manual clock.
  static std::size_t recorded(const Engine& engine, const std::vector<std::string>& ids) {
    std::size_t n = 0;
    for (const std::string& id : ids) {
      auto d = engine.delivery(id);
      if (d.ok()) n += d->attempts.size();
    }
    return n;
  }
  // Each delivery's state, attempts and next due time (Unix ms), to explain a failure.
  static std::string describe(const Engine& engine, const std::vector<std::string>& ids) {
    std::string out;
    for (const std::string& id : ids) {
      auto d = engine.delivery(id);
      if (!d.ok()) continue;
      out += id + " " + std::string(to_string(d->state)) +
             " attempts=" + std::to_string(d->attempts.size()) + " next_attempt_at=" +
             (d->next_attempt_at ? std::to_string(to_unix_ms(*d->next_attempt_at)) : "-");
      for (const Attempt& a : d->attempts) {
        out += " [" + std::to_string(a.number) + " at " + std::to_string(to_unix_ms(a.started_at)) +
               " " + std::to_string(a.http_status) + " " + std::string(to_string(a.error)) + " " +
               a.error_detail + "]";
      }
      out += "\n";
    }
    return out;
  }

  testing::TempDir dir_;
  std::string conninfo_;
  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
};

// A receiver failing every request opens its endpoint after the minimum; while open nothing
// reaches it and another host keeps flowing; after the cool-down exactly one probe arrives;
// once it answers again every held delivery arrives, its attempts numbered without a gap.
TEST_P(EndpointBreakerEngineTest, HoldsAFailingEndpointProbesItAndLetsEverythingThroughAfter) {
  std::atomic<bool> down_fails = true;
  Receiver down([&](const ReceivedRequest&) { return Reply{.status = down_fails ? 503 : 204}; });
  // The healthy host fails one delivery's first attempt, so its retry goes through a claim.
  Receiver healthy([](const ReceivedRequest& r) {
    const bool first_of_h0 =
        r.body.find("\"h0\"") != std::string::npos && r.headers.at("x-callback-attempt") == "1";
    return Reply{.status = first_of_h0 ? 500 : 204};
  });
  auto engine = open();
  ASSERT_NE(engine, nullptr);
  const std::string app = engine->create_app("acme")->app.id;
  engine->start();
  std::vector<std::string> held;
  auto send = [&](const Receiver& to, const std::string& task) {
    auto receipt = engine->enqueue(app, to.url(), testing::completed_task(task));
    EXPECT_TRUE(receipt.ok()) << receipt.status().to_string();
    return receipt.ok() ? receipt->delivery_id : std::string();
  };

  // 1. Four failures: open.
  for (int i = 0; i < 4; ++i) held.push_back(send(down, "d" + std::to_string(i)));
  ASSERT_TRUE(
      wait_until([&] { return in_state(*engine, key_of(down), BreakerState::kOpen); }, 10s));
  ASSERT_TRUE(wait_until([&] { return engine->in_flight() == 0; }, 10s));
  const std::size_t before_open = down.count();
  EXPECT_GE(before_open, 4u);
  ASSERT_TRUE(wait_until([&] { return recorded(*engine, held) == before_open; }, 10s));
  auto opened = endpoint(*engine, key_of(down));
  EXPECT_EQ(opened->last_error, AttemptError::kStatus);
  EXPECT_EQ(opened->next_probe_at, *opened->opened_at + kCooldown);
  EXPECT_EQ(engine->endpoint_counts()[static_cast<std::size_t>(BreakerState::kOpen)], 1u);

  // 2. While open: fresh callbacks and due retries to it wait; the other host flows, a retry
  //    claimed from the store included.
  for (int i = 4; i < 7; ++i) held.push_back(send(down, "d" + std::to_string(i)));
  std::vector<std::string> flowing;
  for (int i = 0; i < 5; ++i) flowing.push_back(send(healthy, "h" + std::to_string(i)));
  // h0's first attempt is recorded (its retry due 10 ms on): then every retry is due after 1 s,
  // well short of the cool-down.
  ASSERT_TRUE(wait_until([&] { return !engine->delivery(flowing[0])->attempts.empty(); }, 10s));
  clock_->advance(1s);
  ASSERT_TRUE(wait_until([&] { return all_in(*engine, flowing, DeliveryState::kDelivered); }, 20s))
      << describe(*engine, flowing);
  EXPECT_EQ(engine->delivery(flowing[0])->attempts.size(), 2u);
  ASSERT_TRUE(wait_until([&] { return engine->in_flight() == 0; }, 10s));
  EXPECT_EQ(down.count(), before_open) << "nothing reaches an open endpoint";
  for (std::size_t i = 4; i < held.size(); ++i) {
    auto d = engine->delivery(held[i]);
    EXPECT_EQ(d->state, DeliveryState::kPending);
    EXPECT_TRUE(d->attempts.empty()) << "held back without spending an attempt";
  }
  EXPECT_TRUE(in_state(*engine, key_of(healthy), BreakerState::kClosed));

  // 3. The cool-down ends: exactly one probe, which fails and reopens it for twice as long.
  clock_->advance(kCooldown);
  ASSERT_TRUE(wait_until([&] { return down.count() == before_open + 1; }, 10s));
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = endpoint(*engine, key_of(down));
        return e && e->state == BreakerState::kOpen &&
               e->next_probe_at == *e->opened_at + 2 * kCooldown;
      },
      10s));
  ASSERT_TRUE(wait_until([&] { return recorded(*engine, held) == before_open + 1; }, 10s));
  clock_->advance(1s);
  ASSERT_TRUE(wait_until([&] { return engine->in_flight() == 0; }, 10s));
  EXPECT_EQ(down.count(), before_open + 1) << "one probe, no more";

  // 4. It recovers: the next probe succeeds, the endpoint closes, every held delivery arrives
  // (on SQLite, whose due times run on this clock, the rest of the backlog waited out the
  // probe's attempt timeout: let the clock run; PostgreSQL's own clock runs by itself).
  down_fails = false;
  clock_->advance(2 * kCooldown);
  ASSERT_TRUE(wait_until(
      [&] {
        if (GetParam() == "sqlite") clock_->advance(100ms);
        return all_in(*engine, held, DeliveryState::kDelivered);
      },
      30s))
      << describe(*engine, held);
  EXPECT_TRUE(in_state(*engine, key_of(down), BreakerState::kClosed));

  // Every delivery's attempts, at the receiver and in the store, are 1, 2, 3… without a gap.
  std::map<std::string, std::vector<int>> seen;
  for (const ReceivedRequest& r : down.requests()) {
    seen[r.headers.at("x-callback-id")].push_back(std::stoi(r.headers.at("x-callback-attempt")));
  }
  for (const std::string& id : held) {
    const std::vector<int>& numbers = seen[id];
    ASSERT_FALSE(numbers.empty()) << id;
    for (std::size_t k = 0; k < numbers.size(); ++k) EXPECT_EQ(numbers[k], int(k) + 1) << id;
    auto d = engine->delivery(id);
    ASSERT_EQ(d->attempts.size(), numbers.size()) << id;
    for (std::size_t k = 0; k < d->attempts.size(); ++k) {
      EXPECT_EQ(d->attempts[k].number, int(k) + 1) << id;
    }
    EXPECT_EQ(d->attempts.back().error, AttemptError::kNone) << id;
  }
  EXPECT_EQ(engine->endpoint_counts(), (EndpointCounts{2, 0, 0}));
}

// Held deliveries are rows in the store: a restart (the breaker's memory gone) sends them.
TEST_P(EndpointBreakerEngineTest, HeldDeliveriesSurviveARestart) {
  std::atomic<bool> fails = true;
  Receiver down([&](const ReceivedRequest&) { return Reply{.status = fails ? 503 : 204}; });
  std::vector<std::string> ids;
  std::string app;
  {
    auto engine = open();
    ASSERT_NE(engine, nullptr);
    app = engine->create_app("acme")->app.id;
    engine->start();
    for (int i = 0; i < 4; ++i) {
      ids.push_back(
          engine->enqueue(app, down.url(), testing::completed_task("d" + std::to_string(i)))
              ->delivery_id);
    }
    ASSERT_TRUE(
        wait_until([&] { return in_state(*engine, key_of(down), BreakerState::kOpen); }, 10s));
    ids.push_back(engine->enqueue(app, down.url(), testing::completed_task("late"))->delivery_id);
    ASSERT_EQ(engine->delivery(ids.back())->state, DeliveryState::kPending);
  }
  fails = false;
  auto engine = open();
  ASSERT_NE(engine, nullptr);
  engine->start();
  // The retries are due: on SQLite (which runs on this clock) at the end of the cool-down they
  // were deferred to.
  clock_->advance(kCooldown);
  ASSERT_TRUE(wait_until([&] { return all_in(*engine, ids, DeliveryState::kDelivered); }, 20s))
      << describe(*engine, ids);
}

// When it opens, the endpoint's backlog in the store is moved to its probe time, so claims no
// longer walk past it. After the recovery every delivery arrives, its attempts numbered without a
// gap. SQLite only: its store runs on the test's manual clock, so due times compare exactly
// (PostgreSQL's own clock cannot be moved; Queue::defer_host is checked on both backends by
// QueueConformanceTest.DeferringAHost…).
using EndpointBreakerBacklogTest = EndpointBreakerEngineTest;

TEST_P(EndpointBreakerBacklogTest, OpeningMovesTheStoredBacklogToTheProbeTime) {
  constexpr int kBacklog = 300;
  std::atomic<bool> fails = true;
  Receiver down([&](const ReceivedRequest&) { return Reply{.status = fails ? 503 : 204}; });
  auto engine = open();
  ASSERT_NE(engine, nullptr);
  const std::string app = engine->create_app("acme")->app.id;
  std::vector<std::string> ids;
  for (int i = 0; i < kBacklog; ++i) {
    auto receipt =
        engine->enqueue(app, down.url(), testing::completed_task("d" + std::to_string(i)));
    ASSERT_TRUE(receipt.ok()) << receipt.status().to_string();
    ids.push_back(receipt->delivery_id);
  }
  engine->start();
  ASSERT_TRUE(
      wait_until([&] { return in_state(*engine, key_of(down), BreakerState::kOpen); }, 10s));
  ASSERT_TRUE(wait_until([&] { return engine->in_flight() == 0; }, 10s));
  const TimePoint probe_at = *endpoint(*engine, key_of(down))->next_probe_at;
  // Every waiting delivery is due at the probe time: none left due now for a claim to skip.
  auto none_due_before_probe = [&] {
    for (const std::string& id : ids) {
      auto d = engine->delivery(id);
      if (!d.ok() || d->state != DeliveryState::kPending || !d->next_attempt_at ||
          *d->next_attempt_at < probe_at)
        return false;
    }
    return true;
  };
  ASSERT_TRUE(wait_until(none_due_before_probe, 10s)) << describe(*engine, ids);
  std::size_t at_probe = 0;
  for (const std::string& id : ids) at_probe += engine->delivery(id)->next_attempt_at == probe_at;
  EXPECT_GE(at_probe, std::size_t(kBacklog) - down.count()) << "the untried ones: exactly then";
  const std::size_t before_open = down.count();
  EXPECT_LT(before_open, std::size_t(kBacklog) / 2);

  // Callbacks that keep arriving while it is open are stored due now; within a second they
  // join the backlog at the probe time, out of the claims' way.
  std::vector<std::string> arrived_while_open;
  for (int i = 0; i < 20; ++i) {
    auto receipt =
        engine->enqueue(app, down.url(), testing::completed_task("late" + std::to_string(i)));
    ASSERT_TRUE(receipt.ok()) << receipt.status().to_string();
    arrived_while_open.push_back(receipt->delivery_id);
  }
  clock_->advance(1s);
  ASSERT_TRUE(wait_until(
      [&] {
        for (const std::string& id : arrived_while_open) {
          auto d = engine->delivery(id);
          if (!d.ok() || d->next_attempt_at != probe_at) return false;
        }
        return true;
      },
      10s))
      << describe(*engine, arrived_while_open);
  ids.insert(ids.end(), arrived_while_open.begin(), arrived_while_open.end());

  fails = false;
  clock_->advance(kCooldown);
  // Deliveries held back while the probe runs are due again a poll later: let the clock run.
  ASSERT_TRUE(wait_until(
      [&] {
        clock_->advance(100ms);
        return all_in(*engine, ids, DeliveryState::kDelivered);
      },
      30s))
      << describe(*engine, ids);
  EXPECT_TRUE(in_state(*engine, key_of(down), BreakerState::kClosed));
  for (const std::string& id : ids) {
    auto d = engine->delivery(id);
    for (std::size_t k = 0; k < d->attempts.size(); ++k) {
      EXPECT_EQ(d->attempts[k].number, int(k) + 1) << id;
    }
    EXPECT_EQ(d->attempts.back().error, AttemptError::kNone) << id;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, EndpointBreakerEngineTest,
                         ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Sqlite, EndpointBreakerBacklogTest, ::testing::Values("sqlite"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace callbackd
