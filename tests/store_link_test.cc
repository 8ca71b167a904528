// The dispatcher's link to a real SQLite queue. A stop finishes once the link is idle, and it
// learns that only from the link's listener calls: every call the link makes must end in one,
// a deferral of an endpoint's backlog included (a deferral that ended silently left a stopping
// daemon waiting forever).
#include "dispatch/store_link.h"

#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

#include "temp_dir.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

struct CountingListener : StoreLink::Listener {
  void on_claimed(Result<std::vector<ClaimedDelivery>>, std::optional<Millis>,
                  SteadyTime) override {}
  void on_recorded(const std::vector<AttemptRecord>&, const StaleTokens&) override {}
  void on_released(const StaleTokens&) override {}
  void on_renewed(const std::vector<LeaseToken>&, const StaleTokens&, SteadyTime) override {}
  void on_maintained(bool) override {}
  void on_deferred() override { ++deferred; }
  int deferred = 0;
};

TEST(StoreLinkTest, TheListenerHearsWhenADeferralEndsAndTheLinkIsIdleThen) {
  testing::TempDir dir;
  auto queue = open_sqlite_queue({.path = dir / "callbackd.db"});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  boost::asio::io_context io;
  CountingListener listener;
  StoreLink link(io, **queue, system_clock(), listener);

  link.defer_host("https://slow.example:443", system_clock()->steady_now() + 5s);
  EXPECT_FALSE(link.idle());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (listener.deferred == 0 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
    io.restart();
  }
  EXPECT_EQ(listener.deferred, 1);
  EXPECT_TRUE(link.idle());
}

TEST(StoreLinkTest, DroppedDeferralsAreNotRun) {
  testing::TempDir dir;
  auto queue = open_sqlite_queue({.path = dir / "callbackd.db"});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  boost::asio::io_context io;
  CountingListener listener;
  StoreLink link(io, **queue, system_clock(), listener);

  // The first goes to the storage thread at once; the second waits for it and is dropped.
  link.defer_host("https://a.example:443", system_clock()->steady_now() + 5s);
  link.defer_host("https://b.example:443", system_clock()->steady_now() + 5s);
  link.drop_deferrals();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!link.idle() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
    io.restart();
  }
  EXPECT_TRUE(link.idle());
  io.run_for(100ms);
  EXPECT_EQ(listener.deferred, 1) << "only the one already running";
}

TEST(StoreLinkTest, ABacklogLargerThanABatchIsMovedWholeBatchByBatch) {
  testing::TempDir dir;
  auto queue = open_sqlite_queue({.path = dir / "callbackd.db"});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  StoredApp app;
  app.app.id = "app_1";
  app.app.name = "acme";
  app.app.created_at = system_clock()->now();
  app.sealed_secret = "sealed";
  ASSERT_TRUE((*queue)->insert_app(app).ok());
  const std::string host = "https://slow.example:443";
  const std::size_t backlog = 2 * StoreLink::kDeferBatch + 5;
  for (std::size_t i = 0; i < backlog; ++i) {
    const std::string task = "t" + std::to_string(i);
    (*queue)->enqueue_async(
        NewDelivery{"dlv_" + task, "app_1", task, host + "/hook", host,
                    std::make_shared<const std::string>("{}"), system_clock()->now(), std::nullopt},
        [](Result<Enqueued> r) { ASSERT_TRUE(r.ok()); });
  }
  (*queue)->drain();
  boost::asio::io_context io;
  CountingListener listener;
  StoreLink link(io, **queue, system_clock(), listener);

  const SteadyTime until = system_clock()->steady_now() + 1h;
  link.defer_host(host, until, /*keep_oldest=*/2);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!link.idle() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
    io.restart();
  }
  ASSERT_TRUE(link.idle());
  EXPECT_EQ(listener.deferred, 3) << "two full batches and the rest";
  auto due = (*queue)->claim({.limit = backlog, .lease = 1min, .only_host = host});
  ASSERT_TRUE(due.ok()) << due.status().to_string();
  EXPECT_EQ(due->size(), 2u) << "only the two oldest stay due";
  auto last = (*queue)->find_delivery("dlv_t" + std::to_string(backlog - 1));
  ASSERT_TRUE(last.ok());
  EXPECT_GT(*last->next_attempt_at, system_clock()->now() + 59min) << "the newest moved too";
}

}  // namespace
}  // namespace callbackd
