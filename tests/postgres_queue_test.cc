// What only a shared store does: two queue instances (as two processes would) on one
// PostgreSQL database. The contract both backends keep is in queue_conformance_test.cc.
#include <callbackd/postgres_store.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <set>
#include <thread>

#include "postgres_cluster.h"
#include "thread_names.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

class PostgresQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = open();
    b_ = open();
    ASSERT_TRUE(a_ && b_);
    StoredApp app;
    app.app.id = "app_1";
    app.app.name = "acme";
    app.sealed_secret = "sealed";
    ASSERT_TRUE(a_->insert_app(app).ok());
  }
  std::unique_ptr<Queue> open() {
    auto queue = open_postgres_queue({.conninfo = conninfo_});
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    return queue.ok() ? std::move(*queue) : nullptr;
  }
  Result<Enqueued> enqueue(Queue& q, const std::string& task,
                           std::optional<Millis> lease = std::nullopt) {
    return q.enqueue(NewDelivery{"dlv_" + task, "app_1", task, "https://a.example/" + task,
                                 "https://a.example:443", std::make_shared<const std::string>("{}"),
                                 system_clock()->now(), lease});
  }

  std::string conninfo_ = testing::fresh_postgres_database();
  std::unique_ptr<Queue> a_, b_;
};

// Claims from two processes at once never hand one delivery to both.
TEST_F(PostgresQueueTest, ConcurrentClaimsNeverShareADelivery) {
  std::vector<std::thread> enqueuers;
  for (int i = 0; i < 600; ++i) {
    a_->enqueue_async(
        NewDelivery{"dlv_" + std::to_string(i), "app_1", std::to_string(i), "https://a.example/",
                    "https://a.example:443", std::make_shared<const std::string>("{}"),
                    system_clock()->now(), std::nullopt},
        [](Result<Enqueued> r) { EXPECT_TRUE(r.ok()); });
  }
  a_->drain();
  std::vector<std::string> by_a, by_b;
  auto claimer = [](Queue& q, std::vector<std::string>& out) {
    for (;;) {
      auto claimed = q.claim({.limit = 7, .lease = 30s});
      ASSERT_TRUE(claimed.ok()) << claimed.status().to_string();
      if (claimed->empty()) return;
      for (const auto& d : *claimed) out.push_back(d.id);
    }
  };
  std::thread ta(claimer, std::ref(*a_), std::ref(by_a));
  std::thread tb(claimer, std::ref(*b_), std::ref(by_b));
  ta.join();
  tb.join();
  std::set<std::string> all(by_a.begin(), by_a.end());
  all.insert(by_b.begin(), by_b.end());
  EXPECT_EQ(all.size(), 600u);
  EXPECT_EQ(by_a.size() + by_b.size(), 600u) << "a delivery was claimed twice";
  EXPECT_FALSE(by_a.empty() || by_b.empty()) << "both processes took a share";
}

// A lease held by one process is recovered by another only once it ended at least the grace
// ago (its holder, back from an outage, renews first), and the first process's writes under it
// are then refused.
TEST_F(PostgresQueueTest, AnotherProcessRecoversALeaseOnlyOnceItEndedAGraceAgo) {
  auto held = enqueue(*b_, "t", 400ms);
  ASSERT_TRUE(held.ok() && held->lease);
  const auto recover = [&](std::optional<Millis> grace) {
    return *a_->recover_expired_leases({.others_after = grace});
  };
  const auto ends = std::chrono::steady_clock::now() + 400ms;
  EXPECT_EQ(recover(0ms), 0u) << "the lease is live";
  std::this_thread::sleep_until(ends + 100ms);
  EXPECT_EQ(recover(1s), 0u) << "the lease ended less than the grace ago";
  EXPECT_EQ(recover(std::nullopt), 0u) << "told to leave other processes' leases alone";
  ASSERT_TRUE(testing::wait_until([&] { return recover(1s) == 1u; }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now(), ends + 1s - 50ms);
  auto claimed = a_->claim({.limit = 1, .lease = 30s});
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(*b_->renew(std::span(&*held->lease, 1), 30s), StaleTokens{*held->lease});
}

// Work stored pending by one process wakes the others at once (LISTEN/NOTIFY); a process is
// not woken by its own.
TEST_F(PostgresQueueTest, PendingWorkStoredElsewhereWakesTheOtherProcesses) {
  std::mutex mutex;
  std::condition_variable woken;
  int a_wakes = 0, b_wakes = 0;
  a_->scheduling_hints()->on_due_elsewhere([&] {
    std::lock_guard lock(mutex);
    ++a_wakes;
    woken.notify_all();
  });
  b_->scheduling_hints()->on_due_elsewhere([&] {
    std::lock_guard lock(mutex);
    ++b_wakes;
    woken.notify_all();
  });
  // The listeners connect in the background: keep storing until the first wake arrives.
  std::unique_lock lock(mutex);
  for (int i = 0; i < 50 && b_wakes == 0; ++i) {
    lock.unlock();
    ASSERT_TRUE(enqueue(*a_, "w" + std::to_string(i)).ok());
    lock.lock();
    woken.wait_for(lock, 100ms, [&] { return b_wakes > 0; });
  }
  EXPECT_GT(b_wakes, 0);
  EXPECT_EQ(a_wakes, 0);
  lock.unlock();
  a_->scheduling_hints()->on_due_elsewhere(nullptr);
  b_->scheduling_hints()->on_due_elsewhere(nullptr);
}

// PostgreSQL text holds only UTF-8: a row that is not is refused alone, its batch stored.
TEST_F(PostgresQueueTest, TextThatIsNotUtf8IsRefusedAloneInItsBatch) {
  std::mutex mutex;
  std::map<std::string, StatusCode> answers;
  int n = 0;
  for (const std::string& task : std::vector<std::string>{"good-1", "bad-\xff", "good-2"}) {
    a_->enqueue_async(
        NewDelivery{"dlv_" + std::to_string(n++), "app_1", task, "https://a.example/",
                    "https://a.example:443", std::make_shared<const std::string>("{}"),
                    system_clock()->now(), std::nullopt},
        [&, task](Result<Enqueued> r) {
          std::lock_guard lock(mutex);
          answers[task] = r.ok() ? StatusCode::kOk : r.status().code();
        });
  }
  a_->drain();
  EXPECT_EQ(answers["good-1"], StatusCode::kOk);
  EXPECT_EQ(answers["good-2"], StatusCode::kOk);
  EXPECT_EQ(answers[std::string("bad-\xff")], StatusCode::kInvalidArgument);
  EXPECT_EQ(a_->count_by_state()->at(0), 2u);
}

// The database's schema version is checked: a newer one stops the queue from opening.
TEST_F(PostgresQueueTest, ANewerSchemaIsRefusedWithAClearMessage) {
  testing::run_postgres_sql(conninfo_, "UPDATE callbackd_schema SET version = 99");
  auto queue = open_postgres_queue({.conninfo = conninfo_});
  ASSERT_FALSE(queue.ok());
  EXPECT_EQ(queue.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(queue.status().message().find("schema version 99"), std::string::npos)
      << queue.status().message();
}

// A database of schema version 1 gets the listing indexes when a newer callbackd opens it.
TEST_F(PostgresQueueTest, AVersionOneDatabaseIsUpgradedWithTheListingIndexes) {
  a_.reset();
  b_.reset();
  const std::string count_listing_indexes =
      "(SELECT count(*) FROM pg_indexes WHERE tablename = 'deliveries' AND indexname IN "
      "('deliveries_by_state_seq', 'deliveries_by_app_seq', 'deliveries_by_app_state_seq', "
      "'deliveries_by_task'))";
  const auto expect_indexes = [&](int n) {
    return "DO $$ BEGIN IF " + count_listing_indexes + " <> " + std::to_string(n) +
           " THEN RAISE EXCEPTION 'listing indexes: not " + std::to_string(n) + "'; END IF; END $$";
  };
  testing::run_postgres_sql(conninfo_,
                            "DROP INDEX deliveries_by_state_seq, deliveries_by_app_seq, "
                            "deliveries_by_app_state_seq, deliveries_by_task; "
                            "UPDATE callbackd_schema SET version = 1");
  ASSERT_NO_THROW(testing::run_postgres_sql(conninfo_, expect_indexes(0)));
  a_ = open();
  ASSERT_NE(a_, nullptr);
  EXPECT_NO_THROW(testing::run_postgres_sql(conninfo_, expect_indexes(4)));
  EXPECT_NO_THROW(testing::run_postgres_sql(
      conninfo_,
      "DO $$ BEGIN IF (SELECT max(version) FROM callbackd_schema) <> 3 OR "
      "(SELECT count(*) FROM callbackd_schema) <> 1 THEN RAISE EXCEPTION 'version'; END IF; "
      "END $$"));
  EXPECT_TRUE(a_->list({.state = DeliveryState::kDead}).ok());
}

// A database of schema version 2 (full host and state indexes) gets the partial ones, keeps its
// rows, and lists and claims them as before.
TEST_F(PostgresQueueTest, AVersionTwoDatabaseGetsThePartialIndexes) {
  for (const char* task : {"done", "wait", "flight"}) ASSERT_TRUE(enqueue(*a_, task).ok());
  auto claimed = a_->claim({.limit = 10, .lease = 1h});
  ASSERT_TRUE(claimed.ok() && claimed->size() == 3u);
  std::vector<AttemptRecord> records;
  std::vector<LeaseToken> back;
  for (const ClaimedDelivery& d : *claimed) {
    if (d.task_id == "done") {
      records.push_back(
          {d.lease, {.number = 1, .http_status = 204}, DeliveryState::kDelivered, 0ms});
    } else if (d.task_id == "wait") {
      back.push_back(d.lease);
    }
  }
  ASSERT_TRUE(a_->record(records).ok());
  ASSERT_TRUE(a_->release(back, 0ms).ok());
  a_.reset();
  b_.reset();
  // What version 2 had: the same indexes, whole.
  testing::run_postgres_sql(
      conninfo_,
      "DROP INDEX deliveries_by_host, deliveries_by_state_seq, deliveries_by_app_state_seq; "
      "CREATE INDEX deliveries_by_host ON deliveries (host_key, state, due_at); "
      "CREATE INDEX deliveries_by_state_seq ON deliveries (state, seq); "
      "CREATE INDEX deliveries_by_app_state_seq ON deliveries (app_id, state, seq); "
      "UPDATE callbackd_schema SET version = 2");
  const std::string count_partial =
      "(SELECT count(*) FROM pg_indexes WHERE tablename = 'deliveries' AND "
      "((indexname = 'deliveries_by_host' AND indexdef LIKE '%(host_key, state, due_at) WHERE "
      "(state = 0)') OR (indexname IN ('deliveries_by_state_seq', 'deliveries_by_app_state_seq') "
      "AND indexdef LIKE '% WHERE (state <> 1)')))";
  const auto expect_partial = [&](int n) {
    return "DO $$ BEGIN IF " + count_partial + " <> " + std::to_string(n) +
           " THEN RAISE EXCEPTION 'partial indexes: not " + std::to_string(n) + "'; END IF; END $$";
  };
  ASSERT_NO_THROW(testing::run_postgres_sql(conninfo_, expect_partial(0)));
  a_ = open();
  ASSERT_NE(a_, nullptr);
  EXPECT_NO_THROW(testing::run_postgres_sql(conninfo_, expect_partial(3)));
  EXPECT_NO_THROW(testing::run_postgres_sql(
      conninfo_,
      "DO $$ BEGIN IF (SELECT max(version) FROM callbackd_schema) <> 3 THEN "
      "RAISE EXCEPTION 'version'; END IF; END $$"));

  const auto listed = [&](DeliveryFilter filter) {
    std::vector<std::string> ids;
    auto page = a_->list(filter);
    EXPECT_TRUE(page.ok()) << page.status().to_string();
    if (page.ok()) {
      for (const Delivery& d : page->items) ids.push_back(d.id);
    }
    return ids;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(listed({.state = DeliveryState::kDelivered}), V{"dlv_done"});
  EXPECT_EQ(listed({.state = DeliveryState::kPending, .app_id = "app_1"}), V{"dlv_wait"});
  EXPECT_EQ(listed({.state = DeliveryState::kInFlight}), V{"dlv_flight"});
  EXPECT_EQ(*a_->count_pending_for_host("https://a.example:443"), 1u);
  auto again = a_->claim({.limit = 10, .lease = 30s});
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->size(), 1u) << "the waiting one; the other is still under its lease";
  EXPECT_EQ(listed({.state = DeliveryState::kInFlight, .app_id = "app_1"}),
            (V{"dlv_wait", "dlv_flight"}));
}

TEST_F(PostgresQueueTest, AnUnreachableDatabaseIsUnavailableAndNamesNoPassword) {
  auto queue = open_postgres_queue(
      {.conninfo = "postgres://callbackd:s3cret-pw@127.0.0.1:1/callbackd?connect_timeout=2"});
  ASSERT_FALSE(queue.ok());
  EXPECT_EQ(queue.status().code(), StatusCode::kStorageUnavailable);
  EXPECT_EQ(queue.status().message().find("s3cret-pw"), std::string::npos)
      << queue.status().message();
}

// Its threads are named for top -H and perf: the enqueue commits, the LISTEN for due work.
TEST_F(PostgresQueueTest, ItsThreadsAreNamedForWhatTheyDo) {
  // One of each per queue (this test opened two); each thread names itself once it runs.
  for (const char* name : {"callbackd-enq", "callbackd-pg"}) {
    EXPECT_TRUE(testing::wait_until([&] { return testing::thread_names().count(name) == 2; }, 10s))
        << name;
  }
}

}  // namespace
}  // namespace callbackd
