// The dispatcher's store worker on a real SQLite queue. A stop finishes once the worker is idle,
// and it learns that only from the worker's listener calls: every call the worker makes must end
// in one, a deferral of an endpoint's backlog included (a deferral that ended silently left a
// stopping daemon waiting forever).
#include "dispatch/store_worker.h"

#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

#include "faulty_queue.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

struct CountingListener : StoreWorker::Listener {
  void on_claimed(Result<std::vector<ClaimedDelivery>>, std::optional<Millis>,
                  SteadyTime) override {}
  void on_recorded(const std::vector<AttemptRecord>& records, const StaleTokens&) override {
    recorded += records.size();
  }
  void on_released(const StaleTokens&) override {}
  void on_renewed(const std::vector<LeaseToken>& tokens, const StaleTokens&, SteadyTime) override {
    renewed += tokens.size();
  }
  void on_maintained(bool) override {}
  void on_deferred() override { ++deferred; }
  int deferred = 0;
  std::size_t recorded = 0;
  std::size_t renewed = 0;
};

// A worker on its own io_context, the keyring it warms, and the listener it answers.
struct Worker {
  explicit Worker(std::shared_ptr<Queue> q)
      : queue(std::move(q)),
        keys(std::make_shared<AppKeyring>(queue,
                                          std::make_shared<const SecretBox>(std::string(32, 'k')))),
        worker(io, queue, keys, system_clock(), listener) {}
  // Runs the io_context until `done` or 10 s.
  template <class Done>
  bool run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(10ms);
      io.restart();
    }
    return done();
  }
  boost::asio::io_context io;
  std::shared_ptr<Queue> queue;
  std::shared_ptr<AppKeyring> keys;
  CountingListener listener;
  StoreWorker worker;
};

std::shared_ptr<Queue> sqlite_queue(const testing::TempDir& dir) {
  auto queue = open_sqlite_queue({.path = dir / "callbackd.db"});
  EXPECT_TRUE(queue.ok()) << queue.status().to_string();
  return queue.ok() ? std::shared_ptr<Queue>(std::move(*queue)) : nullptr;
}

std::shared_ptr<testing::FaultyQueue> faulty_sqlite(const testing::TempDir& dir) {
  auto queue = open_sqlite_queue({.path = dir / "q.db"});
  EXPECT_TRUE(queue.ok()) << queue.status().to_string();
  return std::make_shared<testing::FaultyQueue>(std::move(*queue));
}

void add_app(Queue& queue) {
  StoredApp app;
  app.app.id = "app_1";
  app.app.name = "acme";
  app.app.created_at = system_clock()->now();
  app.sealed_secret = "sealed";
  ASSERT_TRUE(queue.insert_app(app).ok());
}

void enqueue(Queue& queue, const std::string& host, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const std::string task = "t" + std::to_string(i);
    queue.enqueue_async(
        NewDelivery{"dlv_" + task, "app_1", task, host + "/hook", host,
                    std::make_shared<const std::string>("{}"), system_clock()->now(), std::nullopt},
        [](Result<Enqueued> r) { ASSERT_TRUE(r.ok()); });
  }
  queue.drain();
}

// A store with `count` deliveries claimed (1 min leases): their tokens.
std::vector<LeaseToken> claimed_deliveries(testing::FaultyQueue& queue, std::size_t count) {
  add_app(queue);
  enqueue(queue, "https://a.example:443", count);
  auto claimed = queue.claim({.limit = count, .lease = 1min});
  EXPECT_TRUE(claimed.ok() && claimed->size() == count);
  std::vector<LeaseToken> tokens;
  if (claimed.ok()) {
    for (const ClaimedDelivery& d : *claimed) tokens.push_back(d.lease);
  }
  return tokens;
}

AttemptRecord delivered(const LeaseToken& token) {
  AttemptRecord r;
  r.lease = token;
  r.attempt.number = 1;
  r.attempt.started_at = system_clock()->now();
  r.attempt.http_status = 204;
  r.next_state = DeliveryState::kDelivered;
  return r;
}

TEST(StoreWorkerTest, TheListenerHearsWhenADeferralEndsAndTheWorkerIsIdleThen) {
  testing::TempDir dir;
  Worker w(sqlite_queue(dir));
  w.worker.defer({"https://slow.example:443", system_clock()->steady_now() + 5s});
  EXPECT_FALSE(w.worker.idle());
  EXPECT_TRUE(w.run_until([&] { return w.listener.deferred == 1; }));
  EXPECT_TRUE(w.worker.idle());
}

TEST(StoreWorkerTest, DroppedDeferralsAreNotRun) {
  testing::TempDir dir;
  Worker w(sqlite_queue(dir));
  // The first goes to the store's lane at once; the second waits for it and is dropped.
  w.worker.defer({"https://a.example:443", system_clock()->steady_now() + 5s});
  w.worker.defer({"https://b.example:443", system_clock()->steady_now() + 5s});
  w.worker.drop_deferrals();
  EXPECT_TRUE(w.run_until([&] { return w.worker.idle(); }));
  w.io.run_for(100ms);
  EXPECT_EQ(w.listener.deferred, 1) << "only the one already running";
}

TEST(StoreWorkerTest, ABacklogLargerThanABatchIsMovedWholeBatchByBatch) {
  testing::TempDir dir;
  auto queue = sqlite_queue(dir);
  add_app(*queue);
  const std::string host = "https://slow.example:443";
  const std::size_t backlog = 2 * StoreWorker::kDeferBatch + 5;
  enqueue(*queue, host, backlog);
  Worker w(queue);

  const SteadyTime until = system_clock()->steady_now() + 1h;
  w.worker.defer({host, until, /*keep_oldest=*/2});
  ASSERT_TRUE(w.run_until([&] { return w.worker.idle(); }));
  EXPECT_EQ(w.listener.deferred, 3) << "two full batches and the rest";
  auto due = queue->claim({.limit = backlog, .lease = 1min, .only_host = host});
  ASSERT_TRUE(due.ok()) << due.status().to_string();
  EXPECT_EQ(due->size(), 2u) << "only the two oldest stay due";
  auto last = queue->find_delivery("dlv_t" + std::to_string(backlog - 1));
  ASSERT_TRUE(last.ok());
  EXPECT_GT(*last->next_attempt_at, system_clock()->now() + 59min) << "the newest moved too";
}

// A write that fails is kept and sent again on the worker's own timer until the store takes it;
// the listener hears once, when it is stored.
TEST(StoreWorkerTest, AFailedRecordIsSentAgainUntilStoredAndAnsweredOnce) {
  testing::TempDir dir;
  auto faulty = faulty_sqlite(dir);
  const std::vector<LeaseToken> claimed = claimed_deliveries(*faulty, 1);
  ASSERT_EQ(claimed.size(), 1u);
  faulty->inject(testing::QueueCall::kRecord,
                 {.kind = testing::QueueFault::Kind::kFail, .times = 3});
  Worker w(faulty);
  w.worker.record(delivered(claimed[0]), system_clock()->steady_now());
  ASSERT_TRUE(w.run_until([&] { return w.listener.recorded > 0; }));
  EXPECT_EQ(w.listener.recorded, 1u);
  EXPECT_EQ(faulty->calls(testing::QueueCall::kRecord), 4u) << "three failures, then stored";
  EXPECT_EQ(faulty->find_delivery("dlv_t0")->state, DeliveryState::kDelivered);
  EXPECT_TRUE(w.worker.idle());
}

// A record whose answer was lost is sent again and answered as stored: the store applied it
// once, and the worker does not report it stale.
TEST(StoreWorkerTest, ARecordWhoseAnswerWasLostIsStoredOnce) {
  testing::TempDir dir;
  auto faulty = faulty_sqlite(dir);
  const std::vector<LeaseToken> claimed = claimed_deliveries(*faulty, 1);
  ASSERT_EQ(claimed.size(), 1u);
  faulty->inject(testing::QueueCall::kRecord, {.kind = testing::QueueFault::Kind::kLoseAnswer});
  Worker w(faulty);
  w.worker.record(delivered(claimed[0]), system_clock()->steady_now());
  ASSERT_TRUE(w.run_until([&] { return w.listener.recorded > 0; }));
  auto d = faulty->find_delivery("dlv_t0");
  EXPECT_EQ(d->state, DeliveryState::kDelivered);
  EXPECT_EQ(d->attempts.size(), 1u);
}

// Renewals have a lane of their own: a record batch that takes long never holds them up.
TEST(StoreWorkerTest, RenewalsDoNotWaitBehindASlowRecord) {
  testing::TempDir dir;
  auto faulty = faulty_sqlite(dir);
  const std::vector<LeaseToken> claimed = claimed_deliveries(*faulty, 2);
  ASSERT_EQ(claimed.size(), 2u);
  faulty->inject(testing::QueueCall::kRecord,
                 {.kind = testing::QueueFault::Kind::kHang, .hang = 3s});
  Worker w(faulty);
  w.worker.record(delivered(claimed[0]), system_clock()->steady_now());
  w.worker.claim({.limit = 10, .lease = 1min});  // queued behind the record
  const auto asked = std::chrono::steady_clock::now();
  w.worker.renew({claimed[1]}, 1min);
  ASSERT_TRUE(w.run_until([&] { return w.listener.renewed > 0; }));
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 2s) << "the renewal waited for the record";
  EXPECT_EQ(w.listener.recorded, 0u) << "the record is still hanging";
  EXPECT_TRUE(w.run_until([&] { return w.listener.recorded > 0; }));
}

// A stop past its deadline lets go of a lane stuck in a call at once; the call, when it ends,
// answers no one.
TEST(StoreWorkerTest, AbandoningLetsGoOfAHangingCall) {
  testing::TempDir dir;
  auto faulty = faulty_sqlite(dir);
  faulty->inject(testing::QueueCall::kClaim,
                 {.kind = testing::QueueFault::Kind::kHang, .hang = 2s});
  auto w = std::make_unique<Worker>(faulty);
  w->worker.claim({.limit = 10, .lease = 1min});
  ASSERT_TRUE(
      testing::wait_until([&] { return faulty->calls(testing::QueueCall::kClaim) == 1u; }, 5s));
  const auto before = std::chrono::steady_clock::now();
  w->worker.abandon();
  w.reset();  // the worker, its lanes and the io_context go; the hanging lane detaches
  EXPECT_LT(std::chrono::steady_clock::now() - before, 500ms);
  std::this_thread::sleep_for(2500ms);  // the call returns into nothing, and nothing breaks
  EXPECT_EQ(faulty->calls(testing::QueueCall::kClaim), 1u);
}

}  // namespace
}  // namespace callbackd
