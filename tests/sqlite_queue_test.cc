// The SQLite queue on real files: durability settings, group commit, claims, leases, records,
// pruning, listing and redelivery.
#include "sqlite/sqlite_queue.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <set>
#include <thread>

#include "sqlite/schema.h"
#include "temp_dir.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = from_unix_ms(1'700'000'000'000);

class SqliteQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    queue_ = open();
    StoredApp app;
    app.app = App{"app_1", "acme", SignatureScheme::kHex, kT0};
    app.sealed_secret = std::string("sealed\0secret", 13);
    ASSERT_TRUE(queue_->insert_app(app).ok());
  }

  std::unique_ptr<SqliteQueue> open() {
    auto queue = SqliteQueue::open(path(), {});
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    return std::move(*queue);
  }
  std::string path() const { return (dir_ / "q.db").string(); }

  Enqueued enqueue(const std::string& task, TimePoint now = kT0,
                   std::optional<TimePoint> lease = std::nullopt, std::string body = "{}") {
    NewDelivery d{"dlv_" + task,
                  "app_1",
                  task,
                  "https://example.com/" + task,
                  std::make_shared<const std::string>(std::move(body)),
                  now,
                  lease};
    Result<Enqueued> r = queue_->enqueue(d);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : Enqueued{};
  }

  AttemptRecord failure(std::int64_t seq, int number, DeliveryState next, TimePoint due) {
    Attempt a;
    a.number = number;
    a.started_at = kT0;
    a.duration = 12ms;
    a.http_status = 500;
    a.error = AttemptError::kStatus;
    a.response_head = "oops";
    return AttemptRecord{seq, a, next, due};
  }

  testing::TempDir dir_;
  std::unique_ptr<SqliteQueue> queue_;
};

TEST_F(SqliteQueueTest, UsesWalAndSynchronousFull) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  // synchronous is a per-connection setting: check what the queue's connections are
  // configured with (FULL is 2).
  auto writer = sqlite::Connection::open(path(), false);
  ASSERT_TRUE(sqlite::configure_connection(**writer).ok());
  auto sync = (*writer)->prepare("PRAGMA synchronous");
  ASSERT_EQ((*sync)->step(), SQLITE_ROW);
  EXPECT_EQ((*sync)->int64(0), 2);
}

TEST_F(SqliteQueueTest, DataSurvivesReopen) {
  Enqueued e = enqueue("t1", kT0, std::nullopt, std::string("a\0b\xff", 4));
  queue_.reset();
  queue_ = open();
  Result<Delivery> d = queue_->find_delivery("dlv_t1");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->next_attempt_at, kT0);
  auto claimed = queue_->claim(kT0, 10, kT0 + 30s);
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(claimed->at(0).seq, e.seq);
  EXPECT_EQ(*claimed->at(0).body, std::string("a\0b\xff", 4)) << "body bytes must round-trip";
  Result<StoredApp> app = queue_->find_app("app_1");
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->sealed_secret, std::string("sealed\0secret", 13));
}

TEST_F(SqliteQueueTest, RepeatedTaskReturnsTheExistingDelivery) {
  Enqueued first = enqueue("t1");
  NewDelivery again{"dlv_other",
                    "app_1",
                    "t1",
                    "https://example.com/x",
                    std::make_shared<const std::string>("{\"x\":1}"),
                    kT0 + 5s,
                    std::nullopt};
  Result<Enqueued> second = queue_->enqueue(again);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->receipt.created);
  EXPECT_EQ(second->receipt.delivery_id, "dlv_t1");
  EXPECT_EQ(second->seq, first.seq);
  EXPECT_EQ(queue_->find_delivery("dlv_other").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(queue_->list({})->items.size(), 1u);
}

TEST_F(SqliteQueueTest, UnknownAppIsNotFoundAndNothingIsStored) {
  NewDelivery d{
      "dlv_x", "app_nope",  "t", "https://example.com/", std::make_shared<const std::string>("{}"),
      kT0,     std::nullopt};
  Result<Enqueued> r = queue_->enqueue(d);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("app_nope"), std::string::npos);
  EXPECT_TRUE(queue_->list({})->items.empty());
}

// Eight threads enqueueing at once share commits: fewer commits than rows, every row stored
// once, duplicates across threads resolved to one delivery.
TEST_F(SqliteQueueTest, ConcurrentEnqueuesShareCommits) {
  constexpr int kThreads = 8, kEach = 100;
  std::vector<std::thread> threads;
  std::atomic<int> created{0}, existing{0}, failed{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Thread pairs race on the same tasks: one creates, the other gets it back.
        const std::string task = "t" + std::to_string(t / 2) + "-" + std::to_string(i);
        NewDelivery d{"dlv_" + std::to_string(t) + "_" + std::to_string(i),
                      "app_1",
                      task,
                      "https://example.com/",
                      std::make_shared<const std::string>("{}"),
                      kT0,
                      std::nullopt};
        Result<Enqueued> r = queue_->enqueue(d);
        if (!r.ok()) {
          ++failed;
        } else {
          ++(r->receipt.created ? created : existing);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(created.load(), kThreads / 2 * kEach);
  EXPECT_EQ(existing.load(), kThreads / 2 * kEach);
  EXPECT_EQ(queue_->count_by_state()->at(0), static_cast<std::size_t>(kThreads / 2 * kEach));
  EXPECT_EQ(queue_->enqueued_rows(), static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_LT(queue_->enqueue_commits(), queue_->enqueued_rows())
      << "no commit was shared between concurrent enqueues";
}

TEST_F(SqliteQueueTest, ClaimTakesDueRowsOldestFirstUnderALease) {
  enqueue("late", kT0 + 10s);
  enqueue("b", kT0 + 2s);
  enqueue("a", kT0 + 1s);
  enqueue("c", kT0 + 3s);
  enqueue("held", kT0, kT0 + 60s);  // stored already claimed

  auto first = queue_->claim(kT0 + 5s, 2, kT0 + 35s);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 2u);
  std::set<std::string> ids{first->at(0).id, first->at(1).id};
  EXPECT_EQ(ids, (std::set<std::string>{"dlv_a", "dlv_b"}));
  auto second = queue_->claim(kT0 + 5s, 10, kT0 + 35s);
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ(second->at(0).id, "dlv_c");
  EXPECT_TRUE(queue_->claim(kT0 + 5s, 10, kT0 + 35s)->empty());
  EXPECT_EQ(queue_->find_delivery("dlv_a")->state, DeliveryState::kInFlight);
  EXPECT_EQ(queue_->next_due_at()->value(), kT0 + 10s);
}

TEST_F(SqliteQueueTest, ExpiredLeasesGoBackToPending) {
  enqueue("a");
  enqueue("b", kT0, kT0 + 20s);
  ASSERT_EQ(queue_->claim(kT0, 10, kT0 + 30s)->size(), 1u);
  EXPECT_EQ(*queue_->recover_expired_leases(kT0 + 19s), 0u);
  EXPECT_EQ(*queue_->recover_expired_leases(kT0 + 20s), 1u);  // b's lease ended
  EXPECT_EQ(queue_->find_delivery("dlv_b")->state, DeliveryState::kPending);
  EXPECT_EQ(queue_->find_delivery("dlv_a")->state, DeliveryState::kInFlight);
  EXPECT_EQ(*queue_->recover_expired_leases(kT0 + 31s), 1u);
  EXPECT_EQ(queue_->claim(kT0 + 31s, 10, kT0 + 60s)->size(), 2u);
}

TEST_F(SqliteQueueTest, RecordMovesStateAndKeepsEveryAttempt) {
  Enqueued e = enqueue("a");
  ASSERT_EQ(queue_->claim(kT0, 10, kT0 + 30s)->size(), 1u);
  AttemptRecord r = failure(e.seq, 1, DeliveryState::kPending, kT0 + 30s);
  ASSERT_TRUE(queue_->record({&r, 1}).ok());
  Result<Delivery> d = queue_->find_delivery("dlv_a");
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->next_attempt_at, kT0 + 30s);
  ASSERT_EQ(d->attempts.size(), 1u);
  EXPECT_EQ(d->attempts[0].http_status, 500);
  EXPECT_EQ(d->attempts[0].error, AttemptError::kStatus);
  EXPECT_EQ(d->attempts[0].duration, 12ms);
  EXPECT_EQ(d->attempts[0].response_head, "oops");

  // Not due yet; then due, claimed, and delivered.
  EXPECT_TRUE(queue_->claim(kT0 + 29s, 10, kT0 + 60s)->empty());
  auto claimed = queue_->claim(kT0 + 30s, 10, kT0 + 60s);
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(claimed->at(0).attempts_made, 1);
  EXPECT_EQ(claimed->at(0).budget_used, 1);
  AttemptRecord ok = failure(e.seq, 2, DeliveryState::kDelivered, kT0 + 31s);
  ok.attempt.error = AttemptError::kNone;
  ok.attempt.http_status = 204;
  ASSERT_TRUE(queue_->record({&ok, 1}).ok());
  d = queue_->find_delivery("dlv_a");
  EXPECT_EQ(d->state, DeliveryState::kDelivered);
  EXPECT_FALSE(d->next_attempt_at.has_value());
  ASSERT_EQ(d->attempts.size(), 2u);
  EXPECT_EQ(d->attempts[1].error, AttemptError::kNone);

  // A record for a delivery that is no longer in flight is dropped, attempt and all.
  AttemptRecord stale = failure(e.seq, 3, DeliveryState::kDead, kT0 + 40s);
  ASSERT_TRUE(queue_->record({&stale, 1}).ok());
  EXPECT_EQ(queue_->find_delivery("dlv_a")->attempts.size(), 2u);
  EXPECT_EQ(queue_->find_delivery("dlv_a")->state, DeliveryState::kDelivered);
}

TEST_F(SqliteQueueTest, ReleaseReturnsClaimsWithoutAnAttempt) {
  Enqueued e = enqueue("a");
  ASSERT_EQ(queue_->claim(kT0, 10, kT0 + 30s)->size(), 1u);
  const std::int64_t seqs[] = {e.seq};
  ASSERT_TRUE(queue_->release(seqs, kT0 + 1s).ok());
  Result<Delivery> d = queue_->find_delivery("dlv_a");
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->next_attempt_at, kT0 + 1s);
  EXPECT_TRUE(d->attempts.empty());
}

TEST_F(SqliteQueueTest, PruneDeletesOnlyOldDelivered) {
  std::vector<Enqueued> rows;
  for (const char* task : {"old", "new", "dead"}) rows.push_back(enqueue(task));
  ASSERT_EQ(queue_->claim(kT0, 10, kT0 + 30s)->size(), 3u);
  AttemptRecord records[] = {
      failure(rows[0].seq, 1, DeliveryState::kDelivered, kT0 + 1s),
      failure(rows[1].seq, 1, DeliveryState::kDelivered, kT0 + 100s),
      failure(rows[2].seq, 1, DeliveryState::kDead, kT0 + 1s),
  };
  ASSERT_TRUE(queue_->record(records).ok());
  EXPECT_EQ(*queue_->prune_delivered(kT0 + 50s, 100), 1u);
  EXPECT_EQ(queue_->find_delivery("dlv_old").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(queue_->find_delivery("dlv_new").ok());
  EXPECT_TRUE(queue_->find_delivery("dlv_dead").ok()) << "dead deliveries stay queryable";
  // The pruned delivery's attempts went with it: a new delivery reusing nothing sees none.
  EXPECT_EQ(*queue_->prune_delivered(kT0 + 50s, 100), 0u);
}

TEST_F(SqliteQueueTest, ListFiltersAndPagesWithACursor) {
  StoredApp other;
  other.app = App{"app_2", "other", SignatureScheme::kHex, kT0};
  ASSERT_TRUE(queue_->insert_app(other).ok());
  for (int i = 0; i < 7; ++i) enqueue("t" + std::to_string(i));
  NewDelivery d{
      "dlv_o", "app_2",     "o", "https://example.com/", std::make_shared<const std::string>("{}"),
      kT0,     std::nullopt};
  ASSERT_TRUE(queue_->enqueue(d).ok());

  std::vector<std::string> seen;
  DeliveryFilter filter;
  filter.app_id = "app_1";
  filter.limit = 3;
  int pages = 0;
  do {
    Result<DeliveryPage> page = queue_->list(filter);
    ASSERT_TRUE(page.ok());
    for (const auto& item : page->items) seen.push_back(item.id);
    filter.cursor = page->next_cursor;
    ++pages;
  } while (!filter.cursor.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(seen[i], "dlv_t" + std::to_string(i));  // oldest first

  DeliveryFilter by_state;
  by_state.state = DeliveryState::kDelivered;
  EXPECT_TRUE(queue_->list(by_state)->items.empty());
  DeliveryFilter bad;
  bad.cursor = "12abc";
  EXPECT_EQ(queue_->list(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(queue_->list(bad).status().message().find("cursor"), std::string::npos);
}

TEST_F(SqliteQueueTest, RedeliverOnlyFinishedDeliveries) {
  Enqueued e = enqueue("a");
  EXPECT_EQ(queue_->redeliver("dlv_a", kT0).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_EQ(queue_->claim(kT0, 10, kT0 + 30s)->size(), 1u);
  EXPECT_EQ(queue_->redeliver("dlv_a", kT0).status().code(), StatusCode::kFailedPrecondition);
  AttemptRecord dead = failure(e.seq, 1, DeliveryState::kDead, kT0 + 1s);
  ASSERT_TRUE(queue_->record({&dead, 1}).ok());
  Result<Delivery> again = queue_->redeliver("dlv_a", kT0 + 5s);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->state, DeliveryState::kPending);
  EXPECT_EQ(again->next_attempt_at, kT0 + 5s);
  EXPECT_EQ(again->attempts.size(), 1u) << "history is kept";
  auto claimed = queue_->claim(kT0 + 5s, 10, kT0 + 60s);
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(claimed->at(0).budget_used, 0);
  EXPECT_EQ(claimed->at(0).attempts_made, 1);
  EXPECT_EQ(queue_->redeliver("dlv_none", kT0).status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteQueueTest, SettingsAndCounts) {
  EXPECT_FALSE(queue_->get_setting("k")->has_value());
  ASSERT_TRUE(queue_->put_setting("k", "v1").ok());
  ASSERT_TRUE(queue_->put_setting("k", "v2").ok());
  EXPECT_EQ(queue_->get_setting("k")->value(), "v2");
  enqueue("a");
  enqueue("b", kT0, kT0 + 10s);
  auto unfinished = queue_->count_unfinished_by_app();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->at(0), (std::pair<std::string, std::size_t>{"app_1", 2}));
  StateCounts counts = *queue_->count_by_state();
  EXPECT_EQ(counts[0], 1u);
  EXPECT_EQ(counts[1], 1u);
}

TEST_F(SqliteQueueTest, ClaimUsesTheStateDueIndexWithoutSorting) {
  auto c = sqlite::Connection::open(path(), false);
  auto plan = (*c)->prepare(
      "EXPLAIN QUERY PLAN SELECT seq FROM deliveries WHERE state = 0 AND due_at <= 5 "
      "ORDER BY due_at LIMIT 10");
  std::string details;
  while ((*plan)->step() == SQLITE_ROW) details += (*plan)->text(3) + "\n";
  EXPECT_NE(details.find("deliveries_by_state_due"), std::string::npos) << details;
  EXPECT_EQ(details.find("TEMP B-TREE"), std::string::npos) << details;
}

}  // namespace
}  // namespace callbackd
