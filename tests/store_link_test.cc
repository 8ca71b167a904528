// The dispatcher's link to a real SQLite queue. A stop finishes once the link is idle, and it
// learns that only from the link's listener calls: every call the link makes must end in one,
// a deferral of an endpoint's backlog included (a deferral that ended silently left a stopping
// daemon waiting forever).
#include "store_link.h"

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

}  // namespace
}  // namespace callbackd
