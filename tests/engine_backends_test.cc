// The engine end to end on every backend: the same embedding, a real SQLite file or a real
// PostgreSQL database, real HTTP to a receiver on loopback, real time (short schedules).
#include <callbackd/engine.h>
#include <callbackd/postgres_store.h>
#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

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

class EngineBackendsTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Engine> open() {
    Result<std::unique_ptr<Queue>> queue = Status::Internal("no backend");
    if (GetParam() == "sqlite") {
      queue = open_sqlite_queue({.path = dir_ / "callbackd.db"});
    } else {
      if (conninfo_.empty()) conninfo_ = testing::fresh_postgres_database();
      queue = open_postgres_queue({.conninfo = conninfo_});
    }
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    if (!queue.ok()) return nullptr;
    EngineOptions options;
    options.queue = std::move(*queue);
    options.master_key_file = dir_ / "master.key";
    options.retry_schedule = {20ms, 40ms, 60ms, 80ms, 100ms};
    options.attempt_timeout = 2s;
    options.poll_interval = 10ms;
    options.allow_networks = {"127.0.0.0/8"};  // the receiver is on loopback
    auto engine = Engine::open(std::move(options));
    EXPECT_TRUE(engine.ok()) << engine.status().to_string();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  bool wait_for_state(Engine& engine, const std::string& id, DeliveryState state) {
    return testing::wait_until(
        [&] {
          auto d = engine.delivery(id);
          return d.ok() && d->state == state;
        },
        10s);
  }

  testing::TempDir dir_;
  std::string conninfo_;
};

TEST_P(EngineBackendsTest, DeliversOnceAndRecordsTheAttempt) {
  Receiver receiver;
  auto engine = open();
  ASSERT_NE(engine, nullptr);
  auto app = engine->create_app("acme");
  ASSERT_TRUE(app.ok());
  engine->start();
  auto receipt = engine->enqueue(app->app.id, receiver.url(), testing::completed_task("t1"));
  ASSERT_TRUE(receipt.ok()) << receipt.status().to_string();
  ASSERT_TRUE(wait_for_state(*engine, receipt->delivery_id, DeliveryState::kDelivered));
  EXPECT_EQ(receiver.count(), 1u);
  EXPECT_EQ(receiver.requests().at(0).headers.at("x-callback-id"), receipt->delivery_id);
  auto again = engine->enqueue(app->app.id, receiver.url(), testing::completed_task("t1"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->delivery_id, receipt->delivery_id);
  EXPECT_EQ(engine->delivery(receipt->delivery_id)->attempts.size(), 1u);
}

// Six attempts on the schedule, numbered 1 to 6, then dead; a redelivery gets a new budget.
TEST_P(EngineBackendsTest, RetriesOnTheScheduleThenDiesAndCanBeRedelivered) {
  Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 500}; });
  auto engine = open();
  ASSERT_NE(engine, nullptr);
  auto app = engine->create_app("acme");
  engine->start();
  auto receipt = engine->enqueue(app->app.id, receiver.url(), testing::completed_task("r"));
  ASSERT_TRUE(receipt.ok());
  ASSERT_TRUE(wait_for_state(*engine, receipt->delivery_id, DeliveryState::kDead));
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 6u);
  for (std::size_t k = 0; k < requests.size(); ++k) {
    EXPECT_EQ(requests[k].headers.at("x-callback-attempt"), std::to_string(k + 1));
  }
  receiver.set_responder([](const ReceivedRequest&) { return Reply{.status = 204}; });
  ASSERT_TRUE(engine->redeliver(receipt->delivery_id).ok());
  ASSERT_TRUE(wait_for_state(*engine, receipt->delivery_id, DeliveryState::kDelivered));
  // The header is the attempt's number, as attempts[].n: it counts on after a redelivery, which
  // gives a fresh budget of six.
  EXPECT_EQ(receiver.requests().back().headers.at("x-callback-attempt"), "7");
  auto delivery = engine->delivery(receipt->delivery_id);
  ASSERT_EQ(delivery->attempts.size(), 7u);
  EXPECT_EQ(delivery->attempts.back().number, 7);
}

// What was accepted while no dispatcher ran is sent after a restart of the engine.
TEST_P(EngineBackendsTest, AcceptedWorkSurvivesARestart) {
  Receiver receiver;
  std::string app_id, delivery_id;
  {
    auto engine = open();
    ASSERT_NE(engine, nullptr);
    app_id = engine->create_app("acme")->app.id;
    auto receipt = engine->enqueue(app_id, receiver.url(), testing::completed_task("kept"));
    ASSERT_TRUE(receipt.ok());
    delivery_id = receipt->delivery_id;
  }
  EXPECT_EQ(receiver.count(), 0u) << "never started";
  auto engine = open();
  ASSERT_NE(engine, nullptr);
  engine->start();
  ASSERT_TRUE(wait_for_state(*engine, delivery_id, DeliveryState::kDelivered));
  EXPECT_EQ(receiver.count(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, EngineBackendsTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace callbackd
