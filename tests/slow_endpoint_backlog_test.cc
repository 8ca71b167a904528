// A slow endpoint with a stored backlog, inside a real engine on both backends (real clock,
// real HTTP to a loopback receiver answering each request after a delay). While the endpoint
// is full, only the rows its line takes next stay due; the rest of its backlog waits a few
// attempt durations later, so claims for everyone else stop walking past it. Every delivery
// still arrives, once, with one attempt: moving a row spends nothing.
#include <callbackd/engine.h>
#include <callbackd/postgres_store.h>
#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

#include <set>

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

class SlowEndpointBacklogTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Engine> open() {
    Result<std::unique_ptr<Queue>> queue = Status::Internal("no backend");
    if (GetParam() == "sqlite") {
      queue = open_sqlite_queue({.path = dir_ / "callbackd.db"});
    } else {
      queue = open_postgres_queue({.conninfo = testing::fresh_postgres_database()});
    }
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    if (!queue.ok()) return nullptr;
    EngineOptions options;
    options.queue = std::move(*queue);
    options.master_key_file = dir_ / "master.key";
    // A tenth of the bound makes an attempt slow: 100 ms. The receiver takes 150 ms.
    options.attempt_timeout = 1s;
    options.max_in_flight_per_host = 2;
    options.poll_interval = 50ms;
    options.allow_networks = {"127.0.0.0/8"};
    options.breaker.enabled = false;  // slow is not failing; keep the breaker out of it
    auto engine = Engine::open(std::move(options));
    EXPECT_TRUE(engine.ok()) << engine.status().to_string();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  // Pending deliveries of `ids`: how many, and how many of them wait clearly longer than a
  // claim that found no room would put them back for (a 50 ms poll interval).
  struct Pending {
    std::size_t total = 0;
    std::size_t moved_later = 0;
  };
  static Pending pending(const Engine& engine, const std::vector<std::string>& ids) {
    Pending p;
    const TimePoint now = std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
    for (const std::string& id : ids) {
      auto d = engine.delivery(id);
      if (!d.ok() || d->state != DeliveryState::kPending) continue;
      ++p.total;
      if (d->next_attempt_at && *d->next_attempt_at > now + 250ms) ++p.moved_later;
    }
    return p;
  }

  testing::TempDir dir_;
};

TEST_P(SlowEndpointBacklogTest, OnlyWhatTheEndpointTakesNextStaysDue) {
  constexpr int kBacklog = 60;
  Receiver slow([](const ReceivedRequest&) { return Reply{.delay = 150ms}; });
  Receiver quick;
  auto engine = open();
  ASSERT_NE(engine, nullptr);
  const std::string app = engine->create_app("acme")->app.id;
  std::vector<std::string> ids;
  for (int i = 0; i < kBacklog; ++i) {
    auto receipt =
        engine->enqueue(app, slow.url(), testing::completed_task("s" + std::to_string(i)));
    ASSERT_TRUE(receipt.ok()) << receipt.status().to_string();
    ids.push_back(receipt->delivery_id);
  }
  engine->start();

  // Once the endpoint is known slow and full: a few rows stay due (its line's next), the rest
  // wait a second or more (four attempt durations, at least 1 s). With two slots and a 150 ms
  // answer the backlog takes 4.5 s, so this is seen well before it is gone.
  Pending seen;
  ASSERT_TRUE(wait_until(
      [&] {
        seen = pending(*engine, ids);
        return seen.total >= 30 && seen.moved_later + 8 >= seen.total;
      },
      10s))
      << "pending " << seen.total << ", moved later " << seen.moved_later;

  // Meanwhile another endpoint's callback goes straight through.
  auto other = engine->enqueue(app, quick.url(), testing::completed_task("q"));
  ASSERT_TRUE(other.ok()) << other.status().to_string();
  ASSERT_TRUE(quick.wait_for_count(1, 5s));

  // Everything arrives, each once, with its one attempt.
  ASSERT_TRUE(wait_until(
      [&] {
        for (const std::string& id : ids) {
          auto d = engine->delivery(id);
          if (!d.ok() || d->state != DeliveryState::kDelivered) return false;
        }
        return true;
      },
      30s));
  std::set<std::string> arrived;
  for (const ReceivedRequest& r : slow.requests()) arrived.insert(r.headers.at("x-callback-id"));
  EXPECT_EQ(arrived.size(), std::size_t(kBacklog));
  EXPECT_EQ(slow.count(), std::size_t(kBacklog)) << "no delivery sent twice";
  for (const std::string& id : ids) {
    auto d = engine->delivery(id);
    ASSERT_EQ(d->attempts.size(), 1u) << id;
    EXPECT_EQ(d->attempts[0].number, 1) << id;
  }
  engine->stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, SlowEndpointBacklogTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace callbackd
