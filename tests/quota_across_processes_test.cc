// The per-app quota with two processes on one PostgreSQL database: the process that takes an
// app's callbacks is not the one that delivers them, so its count of the app's unfinished
// deliveries goes stale. It refuses the app only on a fresh count of the store, never for what
// another process has finished since.
#include <callbackd/engine.h>
#include <callbackd/postgres_store.h>
#include <gtest/gtest.h>

#include "postgres_cluster.h"
#include "receiver.h"
#include "sample_tasks.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kQuota = 5;

std::unique_ptr<Engine> engine_on(const std::string& conninfo) {
  auto queue = open_postgres_queue({.conninfo = conninfo});
  EXPECT_TRUE(queue.ok()) << queue.status().to_string();
  EngineOptions options;
  options.queue = std::move(*queue);
  options.master_key = std::string(64, 'a');  // every process on one database shares it
  options.max_pending_per_app = kQuota;
  options.poll_interval = 20ms;
  options.allow_networks = {"127.0.0.0/8"};
  auto engine = Engine::open(std::move(options));
  EXPECT_TRUE(engine.ok()) << engine.status().to_string();
  return std::move(*engine);
}

TEST(QuotaAcrossProcessesTest, AnAppIsRefusedOnlyOnAFreshCount) {
  const std::string database = testing::fresh_postgres_database();
  testing::Receiver receiver;
  auto taker = engine_on(database);      // takes the pipeline's callbacks; never dispatches
  auto deliverer = engine_on(database);  // delivers them
  auto app = taker->create_app("acme");
  ASSERT_TRUE(app.ok());
  const auto enqueue = [&](const std::string& task) {
    return taker->enqueue(app->app.id, receiver.url(), testing::completed_task(task));
  };
  for (std::size_t i = 0; i < kQuota; ++i) {
    ASSERT_TRUE(enqueue("t" + std::to_string(i)).ok());
  }
  auto full = enqueue("over");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted) << "five are unfinished";

  deliverer->start();
  ASSERT_TRUE(receiver.wait_for_count(kQuota, 10s));
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto counts = deliverer->count_by_state();
        return counts.ok() && (*counts)[static_cast<int>(DeliveryState::kDelivered)] == kQuota;
      },
      10s));
  // The taker still counts five; the store says none. A second later (its recount's pace) the
  // app is taken again.
  ASSERT_TRUE(testing::wait_until([&] { return enqueue("after").ok(); }, 3s))
      << "refused for deliveries another process finished";
  deliverer->stop();
}

}  // namespace
}  // namespace callbackd
