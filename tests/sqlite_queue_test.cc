// The SQLite queue on real files: durability settings, group commit, claims and their lease
// tokens, renewals, records, releases, the store's clock, the one-process lock, schema
// upgrades, pruning, listing and redelivery.
#include "sqlite/sqlite_queue.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "manual_clock.h"
#include "sqlite/schema.h"
#include "sqlite/statements.h"
#include "sync_counting_vfs.h"
#include "temp_dir.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using testing::ManualClock;

constexpr const char* kHostA = "https://a.example:443";
constexpr const char* kHostB = "https://b.example:443";

class SqliteQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    queue_ = open();
    ASSERT_TRUE(queue_);
    StoredApp app;
    app.app = App{"app_1", "acme", SignatureScheme::kHex, clock_->now()};
    app.sealed_secret = std::string("sealed\0secret", 13);
    ASSERT_TRUE(queue_->insert_app(app).ok());
  }

  std::unique_ptr<SqliteQueue> open() {
    auto queue = SqliteQueue::open({.path = path(), .clock = clock_});
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    return queue.ok() ? std::move(*queue) : nullptr;
  }
  std::filesystem::path path() const { return dir_ / "q.db"; }

  Enqueued enqueue(const std::string& task, std::string host = kHostA,
                   std::optional<Millis> lease = std::nullopt, std::string body = "{}") {
    NewDelivery d{"dlv_" + task,     "app_1", task,
                  host + "/" + task, host,    std::make_shared<const std::string>(std::move(body)),
                  clock_->now(),     lease};
    Result<Enqueued> r = queue_->enqueue(d);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : Enqueued{};
  }

  std::vector<ClaimedDelivery> claim(std::size_t limit, Millis lease = 30s,
                                     std::vector<std::string> skip = {}) {
    Result<std::vector<ClaimedDelivery>> claimed =
        queue_->claim({.limit = limit, .lease = lease, .skip_hosts = std::move(skip)});
    EXPECT_TRUE(claimed.ok()) << claimed.status().to_string();
    return claimed.ok() ? *claimed : std::vector<ClaimedDelivery>{};
  }

  std::vector<std::string> ids(const std::vector<ClaimedDelivery>& claimed) {
    std::vector<std::string> out;
    for (const auto& d : claimed) out.push_back(d.id);
    return out;
  }

  AttemptRecord failure(LeaseToken token, int number, DeliveryState next,
                        Millis retry_after = 0ms) {
    Attempt a;
    a.number = number;
    a.started_at = clock_->now();
    a.duration = 12ms;
    a.http_status = 500;
    a.error = AttemptError::kStatus;
    a.response_head = "oops";
    return AttemptRecord{token, a, next, retry_after};
  }

  // Recovery as a dispatcher holding `held` asks for it, taking other holders' ended leases.
  std::size_t recover(std::vector<std::int64_t> held = {}) {
    Result<std::size_t> n =
        queue_->recover_expired_leases({.held = std::move(held), .others_after = 0ms});
    EXPECT_TRUE(n.ok()) << n.status().to_string();
    return n.ok() ? *n : 0;
  }

  DeliveryState state(const std::string& id) { return queue_->find_delivery(id)->state; }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  testing::TempDir dir_;
  std::unique_ptr<SqliteQueue> queue_;
};

TEST_F(SqliteQueueTest, UsesWal) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

// What the writer itself does, seen at the file system: an acknowledged enqueue (and an app,
// and a redelivery) has fsynced the WAL; a claim, which may be repeated after a power cut,
// need not.
TEST_F(SqliteQueueTest, AnAcknowledgedEnqueueHasSyncedTheWal) {
  queue_.reset();
  testing::SyncCountingVfs vfs;
  queue_ = open();
  ASSERT_TRUE(queue_);

  // The first frame of a new WAL syncs its header in any mode: measure a later commit.
  enqueue("first");
  std::uint64_t before = vfs.wal_syncs();
  enqueue("durable");
  EXPECT_GE(vfs.wal_syncs(), before + 1) << "enqueue returned before its commit was on disk";

  before = vfs.wal_syncs();
  ASSERT_EQ(claim(2).size(), 2u);
  EXPECT_EQ(vfs.wal_syncs(), before) << "the counter does not tell FULL from NORMAL commits";

  before = vfs.wal_syncs();
  StoredApp app;
  app.app = App{"app_2", "beta", SignatureScheme::kHex, clock_->now()};
  app.sealed_secret = "sealed";
  ASSERT_TRUE(queue_->insert_app(app).ok());
  EXPECT_GE(vfs.wal_syncs(), before + 1) << "an app (its sealed secret) was not synced";
  queue_.reset();  // its connections close before the VFS goes
}

// A statement inside a bigger transaction (each insert of an enqueue batch, a claim of many
// rows) keeps the pages it changes in a statement journal, which SQLite moves to a temporary file
// past 64 KiB: an inode created and deleted per batch, and a failed write where no temporary
// directory is writable. The writer keeps such data in memory, so no write creates a file.
TEST_F(SqliteQueueTest, WritesCreateNoTemporaryFiles) {
  queue_.reset();
  testing::SyncCountingVfs vfs;
  queue_ = open();
  ASSERT_TRUE(queue_);
  const std::uint64_t before = vfs.temp_files_opened();
  constexpr int kRows = 300;
  std::atomic<int> stored = 0;
  for (int i = 0; i < kRows; ++i) {
    const std::string task = "t" + std::to_string(i);
    queue_->enqueue_async(NewDelivery{"dlv_" + task, "app_1", task, "https://a.example/" + task,
                                      i % 2 ? kHostA : kHostB,
                                      std::make_shared<const std::string>(std::string(1500, 'b')),
                                      clock_->now(), std::nullopt},
                          [&](Result<Enqueued> r) {
                            EXPECT_TRUE(r.ok()) << r.status().to_string();
                            ++stored;
                          });
  }
  while (stored.load() < kRows) std::this_thread::sleep_for(1ms);
  EXPECT_LT(queue_->enqueue_commits(), static_cast<std::uint64_t>(kRows)) << "no batch formed";

  std::vector<ClaimedDelivery> claimed = claim(128);
  ASSERT_EQ(claimed.size(), 128u);
  std::vector<AttemptRecord> records;
  for (std::size_t i = 0; i < 100; ++i) {
    records.push_back(failure(claimed[i].lease, 1, DeliveryState::kPending, 30s));
  }
  ASSERT_TRUE(queue_->record(records)->empty());
  std::vector<LeaseToken> released;
  for (std::size_t i = 100; i < claimed.size(); ++i) released.push_back(claimed[i].lease);
  ASSERT_TRUE(queue_->release(released, 0ms)->empty());
  EXPECT_EQ(vfs.temp_files_opened(), before);
  queue_.reset();  // its connections close before the VFS goes
}

TEST_F(SqliteQueueTest, DataSurvivesReopen) {
  enqueue("t1", kHostA, std::nullopt, std::string("a\0b\xff", 4));
  queue_.reset();
  queue_ = open();
  Result<Delivery> d = queue_->find_delivery("dlv_t1");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->next_attempt_at, clock_->now());
  auto claimed = claim(10);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(*claimed[0].body, std::string("a\0b\xff", 4));
  EXPECT_EQ(claimed[0].host_key, kHostA);
  Result<StoredApp> app = queue_->find_app("app_1");
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->sealed_secret, std::string("sealed\0secret", 13));
}

TEST_F(SqliteQueueTest, RepeatedTaskReturnsTheExistingDelivery) {
  Enqueued first = enqueue("t1");
  NewDelivery again{"dlv_other", "app_1", "t1",          "https://example.com/else",
                    kHostA,      nullptr, clock_->now(), 30s};
  Result<Enqueued> second = queue_->enqueue(again);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->receipt.created);
  EXPECT_EQ(second->receipt.delivery_id, first.receipt.delivery_id);
  EXPECT_FALSE(second->lease.has_value()) << "nothing was claimed for the repeat";
  EXPECT_EQ(queue_->find_delivery("dlv_other").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(queue_->list({})->items.size(), 1u);
}

TEST_F(SqliteQueueTest, UnknownAppIsNotFoundAndNothingIsStored) {
  NewDelivery d{"dlv_x",       "app_missing",
                "t",           "https://example.com/",
                kHostA,        std::make_shared<const std::string>("{}"),
                clock_->now(), std::nullopt};
  Result<Enqueued> r = queue_->enqueue(d);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("app_missing"), std::string::npos);
  EXPECT_TRUE(queue_->list({})->items.empty());
}

// Many threads enqueueing at once share commits (group commit) and every row is stored once.
TEST_F(SqliteQueueTest, ConcurrentEnqueuesShareCommits) {
  constexpr int kThreads = 16, kEach = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string task = std::to_string(t) + "-" + std::to_string(i);
        NewDelivery d{"dlv_" + task, "app_1",
                      task,          "https://example.com/",
                      kHostA,        std::make_shared<const std::string>("{}"),
                      clock_->now(), t % 2 == 0 ? std::optional<Millis>(30s) : std::nullopt};
        Result<Enqueued> r = queue_->enqueue(d);
        if (!r.ok() || !r->receipt.created || r->lease.has_value() != (t % 2 == 0)) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(queue_->count_by_state()->at(0), static_cast<std::size_t>(kThreads / 2 * kEach));
  EXPECT_EQ(queue_->enqueued_rows(), static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_LT(queue_->enqueue_commits(), queue_->enqueued_rows())
      << "no two concurrent enqueues shared a commit";
}

TEST_F(SqliteQueueTest, ClaimTakesDueRowsOldestFirstWithTokens) {
  enqueue("a");
  clock_->advance(1s);
  enqueue("b");
  const Enqueued held = enqueue("held", kHostA, 60s);  // stored already claimed
  ASSERT_TRUE(held.lease.has_value());
  EXPECT_EQ(held.lease->owner, queue_->owner());
  EXPECT_EQ(held.lease->generation, 1);

  auto first = claim(1);
  ASSERT_EQ(ids(first), std::vector<std::string>{"dlv_a"});
  EXPECT_EQ(first[0].lease.owner, queue_->owner());
  EXPECT_EQ(first[0].lease.generation, 1);
  EXPECT_EQ(ids(claim(10)), std::vector<std::string>{"dlv_b"});
  EXPECT_TRUE(claim(10).empty());
  EXPECT_EQ(state("dlv_a"), DeliveryState::kInFlight);
  EXPECT_EQ(queue_->scheduling_hints()->next_due_in({})->has_value(), false) << "nothing is pending";
}

TEST_F(SqliteQueueTest, NothingIsClaimedBeforeItIsDue) {
  const Enqueued e = enqueue("a");
  auto claimed = claim(10);
  ASSERT_EQ(claimed.size(), 1u);
  AttemptRecord retry = failure(claimed[0].lease, 1, DeliveryState::kPending, 30s);
  ASSERT_TRUE(queue_->record({&retry, 1}).ok());
  EXPECT_EQ(queue_->scheduling_hints()->next_due_in({})->value(), 30s);
  clock_->advance(29999ms);
  EXPECT_TRUE(claim(10).empty());
  EXPECT_EQ(queue_->scheduling_hints()->next_due_in({})->value(), 1ms);
  clock_->advance(1ms);
  ASSERT_EQ(ids(claim(10)), std::vector<std::string>{e.receipt.delivery_id});
}

TEST_F(SqliteQueueTest, ClaimSkipsTheListedEndpoints) {
  enqueue("a1", kHostA);
  enqueue("a2", kHostA);
  enqueue("b1", kHostB);
  EXPECT_EQ(ids(claim(10, 30s, {kHostA})), std::vector<std::string>{"dlv_b1"});
  EXPECT_EQ(ids(claim(10, 30s, {kHostA, kHostB})), std::vector<std::string>{});
  EXPECT_EQ(ids(claim(10, 30s, {"https://a.example:4"})),
            (std::vector<std::string>{"dlv_a1", "dlv_a2"}))
      << "a prefix of a listed endpoint is a different endpoint";
}

// A host that keeps up takes its own backlog past older rows of other hosts, oldest first,
// and only what is due.
TEST_F(SqliteQueueTest, AClaimForOneHostTakesOnlyItsDueRows) {
  for (int i = 0; i < 5; ++i) enqueue("b" + std::to_string(i), kHostB);
  enqueue("a1", kHostA);
  clock_->advance(1ms);
  enqueue("a2", kHostA);
  const auto held = claim(10, 30s, {kHostB});
  ASSERT_EQ(ids(held), (std::vector<std::string>{"dlv_a1", "dlv_a2"}));
  ASSERT_TRUE(queue_->release(std::span(&held[0].lease, 1), 1min).ok());  // a1: due in 1 min
  auto only_a = [&](std::size_t limit) {
    auto claimed = queue_->claim({.limit = limit, .lease = 30s, .only_host = kHostA});
    EXPECT_TRUE(claimed.ok()) << claimed.status().to_string();
    return claimed.ok() ? ids(*claimed) : std::vector<std::string>{};
  };
  EXPECT_EQ(only_a(10), std::vector<std::string>{}) << "a1 is not due, a2 is held";
  enqueue("a4", kHostA);
  enqueue("a5", kHostA);
  EXPECT_EQ(only_a(1), std::vector<std::string>{"dlv_a4"});
  EXPECT_EQ(only_a(10), std::vector<std::string>{"dlv_a5"});
  EXPECT_EQ(ids(claim(10)).size(), 5u) << "host b's rows were left alone";
}

// The fence: a process claims, dies, and the next one to open the store claims the delivery
// again. Every write under the old token is refused and reported; the new holder's go through.
TEST_F(SqliteQueueTest, WritesUnderAStaleTokenAreRefusedAndReported) {
  enqueue("a");
  const LeaseToken first = claim(1, 5s).at(0).lease;
  queue_.reset();
  queue_ = open();
  const LeaseToken second = claim(1, 5s).at(0).lease;
  EXPECT_EQ(second.seq, first.seq);
  EXPECT_GT(second.generation, first.generation);
  EXPECT_NE(second.owner, first.owner);

  AttemptRecord late = failure(first, 1, DeliveryState::kPending, 10s);
  Result<StaleTokens> refused = queue_->record({&late, 1});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(*refused, StaleTokens{first});
  EXPECT_TRUE(queue_->find_delivery("dlv_a")->attempts.empty()) << "a stale record was stored";
  EXPECT_EQ(*queue_->release({&first, 1}, 0ms), StaleTokens{first});
  EXPECT_EQ(*queue_->renew({&first, 1}, 5s), StaleTokens{first});
  EXPECT_EQ(state("dlv_a"), DeliveryState::kInFlight) << "a stale release moved the delivery";

  AttemptRecord current = failure(second, 1, DeliveryState::kDead);
  EXPECT_TRUE(queue_->record({&current, 1})->empty());
  EXPECT_EQ(state("dlv_a"), DeliveryState::kDead);
  EXPECT_EQ(queue_->find_delivery("dlv_a")->attempts.size(), 1u);
}

// Gives the delivery's lease to another owner, as a second process sharing the store would
// hold it (SQLite allows one process; the rule is the backends' common one).
void lease_to_other_owner(const std::filesystem::path& db, std::int64_t seq) {
  auto c = sqlite::Connection::open(db.string(), false);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(
      (*c)->exec("UPDATE deliveries SET lease_owner = 42 WHERE seq = " + std::to_string(seq)).ok());
}

// Recovery takes back leases that ended, but never one this instance still holds: it renews
// what it holds.
TEST_F(SqliteQueueTest, RecoveryTakesOnlyEndedLeasesNobodyHolds) {
  enqueue("mine");
  enqueue("theirs");
  auto claimed = claim(2, 5s);
  ASSERT_EQ(claimed.size(), 2u);
  lease_to_other_owner(path(), claimed[1].lease.seq);
  clock_->advance(4999ms);
  EXPECT_EQ(recover({claimed[0].lease.seq}), 0u) << "a live lease was recovered";
  clock_->advance(1h);
  EXPECT_EQ(recover({claimed[0].lease.seq}), 1u);
  EXPECT_EQ(state("dlv_theirs"), DeliveryState::kPending);
  EXPECT_EQ(state("dlv_mine"), DeliveryState::kInFlight) << "an instance took back its own lease";
  AttemptRecord done = failure(claimed[0].lease, 1, DeliveryState::kDelivered);
  EXPECT_TRUE(queue_->record({&done, 1})->empty()) << "the holder's record was refused";
}

TEST_F(SqliteQueueTest, RenewalKeepsALeaseFromOtherProcessesRecovery) {
  enqueue("a");
  const LeaseToken token = claim(1, 5s).at(0).lease;
  lease_to_other_owner(path(), token.seq);  // as if another process held it
  LeaseToken theirs = token;
  theirs.owner = 42;
  EXPECT_EQ(*queue_->renew({&theirs, 1}, 5s), StaleTokens{theirs})
      << "renewals are the holder's own";
  EXPECT_EQ(*queue_->renew({&token, 1}, 5s), StaleTokens{token});
  // Back to this queue: renewing moves the end of the lease.
  {
    auto c = sqlite::Connection::open(path().string(), false);
    ASSERT_TRUE(
        (*c)->exec("UPDATE deliveries SET lease_owner = " + std::to_string(queue_->owner())).ok());
  }
  clock_->advance(4s);
  EXPECT_TRUE(queue_->renew({&token, 1}, 5s)->empty());
  lease_to_other_owner(path(), token.seq);
  clock_->advance(4s);  // 8 s after the claim, 4 s after the renewal
  EXPECT_EQ(recover(), 0u);
  clock_->advance(1s);
  EXPECT_EQ(recover(), 1u);
}

TEST_F(SqliteQueueTest, ReleaseReturnsAClaimWithoutAnAttempt) {
  enqueue("a");
  const LeaseToken token = claim(10).at(0).lease;
  ASSERT_TRUE(queue_->release({&token, 1}, 1s)->empty());
  Result<Delivery> d = queue_->find_delivery("dlv_a");
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->next_attempt_at, clock_->now() + 1s);
  EXPECT_TRUE(d->attempts.empty());
  EXPECT_TRUE(claim(10).empty());
  clock_->advance(1s);
  EXPECT_EQ(claim(10).size(), 1u);
}

TEST_F(SqliteQueueTest, RecordMovesStateAndKeepsEveryAttempt) {
  enqueue("a");
  LeaseToken token = claim(10).at(0).lease;
  AttemptRecord r = failure(token, 1, DeliveryState::kPending, 30s);
  ASSERT_TRUE(queue_->record({&r, 1})->empty());
  Result<Delivery> d = queue_->find_delivery("dlv_a");
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->next_attempt_at, clock_->now() + 30s);
  ASSERT_EQ(d->attempts.size(), 1u);
  EXPECT_EQ(d->attempts[0].http_status, 500);
  EXPECT_EQ(d->attempts[0].response_head, "oops");

  clock_->advance(30s);
  auto again = claim(10);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempts_made, 1);
  EXPECT_EQ(again[0].budget_used, 1);
  AttemptRecord ok = failure(again[0].lease, 2, DeliveryState::kDelivered);
  ok.attempt.http_status = 204;
  ok.attempt.error = AttemptError::kNone;
  ASSERT_TRUE(queue_->record({&ok, 1})->empty());
  d = queue_->find_delivery("dlv_a");
  EXPECT_EQ(d->state, DeliveryState::kDelivered);
  ASSERT_EQ(d->attempts.size(), 2u);
  EXPECT_EQ(d->attempts[1].number, 2);
  EXPECT_FALSE(d->next_attempt_at.has_value());
}

// Due times and leases are measured on the monotonic clock: setting the wall clock an hour
// forward or back neither brings a retry forward nor ends (or stretches) a lease.
TEST_F(SqliteQueueTest, AWallClockStepMovesNoDueTimeAndNoLease) {
  enqueue("retry");
  auto claimed = claim(10);
  AttemptRecord r = failure(claimed.at(0).lease, 1, DeliveryState::kPending, 30s);
  ASSERT_TRUE(queue_->record({&r, 1})->empty());
  const Enqueued leased = enqueue("leased", kHostA, 10s);
  lease_to_other_owner(path(), leased.lease->seq);  // so recovery may take it once it ends

  clock_->step_wall(1h);
  EXPECT_TRUE(claim(10).empty()) << "a retry came an hour early";
  EXPECT_EQ(recover(), 0u) << "a live lease ended at a wall-clock step";
  clock_->step_wall(-2h);
  clock_->advance(10s);
  EXPECT_EQ(recover(), 1u) << "a lease was stretched by a wall-clock step";
  clock_->advance(20s);
  EXPECT_EQ(claim(10).size(), 2u);
}

TEST_F(SqliteQueueTest, PruneDeletesOnlyOldDelivered) {
  for (const char* task : {"old", "new", "dead"}) enqueue(task);
  auto claimed = claim(10);
  ASSERT_EQ(claimed.size(), 3u);
  AttemptRecord old_one = failure(claimed[0].lease, 1, DeliveryState::kDelivered);
  AttemptRecord dead = failure(claimed[2].lease, 1, DeliveryState::kDead);
  ASSERT_TRUE(queue_->record({&old_one, 1})->empty());
  ASSERT_TRUE(queue_->record({&dead, 1})->empty());
  clock_->advance(100s);
  AttemptRecord new_one = failure(claimed[1].lease, 1, DeliveryState::kDelivered);
  ASSERT_TRUE(queue_->record({&new_one, 1})->empty());
  clock_->advance(10s);
  EXPECT_EQ(*queue_->prune_delivered(50s, 100), 1u);
  EXPECT_EQ(queue_->find_delivery("dlv_old").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(queue_->find_delivery("dlv_new").ok());
  EXPECT_TRUE(queue_->find_delivery("dlv_dead").ok()) << "dead deliveries stay queryable";
  EXPECT_EQ(*queue_->prune_delivered(50s, 100), 0u);
}

TEST_F(SqliteQueueTest, ListFiltersAndPagesWithACursor) {
  StoredApp other;
  other.app = App{"app_2", "other", SignatureScheme::kHex, clock_->now()};
  ASSERT_TRUE(queue_->insert_app(other).ok());
  for (int i = 0; i < 7; ++i) enqueue("t" + std::to_string(i));
  NewDelivery d{"dlv_o",       "app_2",
                "o",           "https://example.com/",
                kHostA,        std::make_shared<const std::string>("{}"),
                clock_->now(), std::nullopt};
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
  enqueue("a");
  EXPECT_EQ(queue_->redeliver("dlv_a").status().code(), StatusCode::kFailedPrecondition);
  const LeaseToken token = claim(10).at(0).lease;
  EXPECT_EQ(queue_->redeliver("dlv_a").status().code(), StatusCode::kFailedPrecondition);
  AttemptRecord dead = failure(token, 1, DeliveryState::kDead);
  ASSERT_TRUE(queue_->record({&dead, 1})->empty());
  clock_->advance(5s);
  Result<Delivery> again = queue_->redeliver("dlv_a");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->state, DeliveryState::kPending);
  EXPECT_EQ(again->next_attempt_at, clock_->now());
  EXPECT_EQ(again->attempts.size(), 1u) << "history is kept";
  auto claimed = claim(10);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].budget_used, 0);
  EXPECT_EQ(claimed[0].attempts_made, 1);
  EXPECT_GT(claimed[0].lease.generation, token.generation);
  EXPECT_EQ(queue_->redeliver("dlv_none").status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteQueueTest, SettingsAndCounts) {
  EXPECT_FALSE(queue_->get_setting("k")->has_value());
  ASSERT_TRUE(queue_->put_setting("k", "v1").ok());
  ASSERT_TRUE(queue_->put_setting("k", "v2").ok());
  EXPECT_EQ(queue_->get_setting("k")->value(), "v2");
  enqueue("a");
  enqueue("b", kHostA, 10s);
  auto unfinished = queue_->count_unfinished_by_app();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->at(0), (std::pair<std::string, std::size_t>{"app_1", 2}));
  DeliveryCounts counts = *queue_->count_by_state();
  EXPECT_EQ(counts[0], 1u);
  EXPECT_EQ(counts[1], 1u);
}

std::string query_plan(sqlite::Connection& c, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(
      sqlite3_prepare_v2(c.handle(), ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &stmt, nullptr),
      SQLITE_OK)
      << sqlite3_errmsg(c.handle());
  std::string details;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    details += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
    details += "\n";
  }
  sqlite3_finalize(stmt);
  return details;
}

// The statements the queue runs (not copies of them): a claim walks the (state, due_at,
// host_key) index in order, and a renewal looks each row up by its key.
TEST_F(SqliteQueueTest, ClaimAndRenewUseTheirIndexesWithoutSortingOrScanning) {
  auto c = sqlite::Connection::open(path().string(), false);
  ASSERT_TRUE(c.ok());
  const std::string claim_plan = query_plan(**c, sqlite::statements::kClaim);
  EXPECT_NE(claim_plan.find("deliveries_by_state_due"), std::string::npos) << claim_plan;
  EXPECT_EQ(claim_plan.find("TEMP B-TREE"), std::string::npos) << claim_plan;
  // The host statements reach the partial index of pending rows through their literal state = 0.
  for (const char* sql : {sqlite::statements::kClaimForHost, sqlite::statements::kDeferHost,
                          sqlite::statements::kPendingForHost}) {
    const std::string host_plan = query_plan(**c, sql);
    EXPECT_NE(host_plan.find("deliveries_by_host (host_key=?"), std::string::npos) << host_plan;
    EXPECT_EQ(host_plan.find("TEMP B-TREE"), std::string::npos) << host_plan;
    EXPECT_EQ(host_plan.find("SCAN"), std::string::npos) << host_plan;
  }
  const std::string renew_plan = query_plan(**c, sqlite::statements::kRenew);
  EXPECT_NE(renew_plan.find("INTEGER PRIMARY KEY"), std::string::npos) << renew_plan;
  EXPECT_EQ(renew_plan.find("SCAN deliveries"), std::string::npos) << renew_plan;
}

// Listing stays fast with a million rows stored: every mix of filters (state, app, task) is a
// SEARCH on an index made for it, paged by seq without sorting, never a walk over all rows in
// seq order; a bulk redelivery takes the oldest finished rows off the (state, due_at) index.
// The state indexes are partial (no in-flight rows), so listing in_flight searches the (state,
// due_at) index and sorts by seq: a sort is fine there, the rows in flight are bounded by the
// leases held (a few batches per dispatcher), never the backlog.
TEST_F(SqliteQueueTest, EveryListingAndBulkRedeliverySearchesAnIndexWithoutSorting) {
  auto c = sqlite::Connection::open(path().string(), false);
  ASSERT_TRUE(c.ok());
  using sqlite::statements::kList;
  using sqlite::statements::list_index;
  const std::string all_plan = query_plan(**c, kList[list_index(false, false, false)]);
  EXPECT_NE(all_plan.find("INTEGER PRIMARY KEY (rowid>?)"), std::string::npos) << all_plan;
  const struct {
    bool state, app, task;
    const char* index;
  } cases[] = {{true, false, false, "deliveries_by_state_seq (state=? AND seq>?)"},
               {false, true, false, "deliveries_by_app_seq (app_id=? AND seq>?)"},
               {true, true, false, "deliveries_by_app_state_seq (app_id=? AND state=? AND seq>?)"},
               {false, false, true, "deliveries_by_task (task_id=? AND seq>?)"},
               {true, false, true, "deliveries_by_task"},
               {false, true, true, "INDEX"},  // (app_id, task_id) is unique: one row at most
               {true, true, true, "INDEX"}};
  for (const auto& c_ : cases) {
    const std::string plan = query_plan(**c, kList[list_index(c_.state, c_.app, c_.task)]);
    EXPECT_NE(plan.find(std::string("SEARCH deliveries USING ")), std::string::npos) << plan;
    EXPECT_NE(plan.find(c_.index), std::string::npos) << plan;
    EXPECT_EQ(plan.find("SCAN"), std::string::npos) << plan;
    EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  }
  // With a task, in flight or not is the same text: the task index narrows to a row per app.
  EXPECT_EQ(list_index(true, false, true, true), list_index(true, false, true));
  EXPECT_EQ(list_index(true, true, true, true), list_index(true, true, true));
  for (const bool app : {false, true}) {
    const std::string plan = query_plan(**c, kList[list_index(true, app, false, true)]);
    EXPECT_NE(plan.find("SEARCH deliveries USING INDEX deliveries_by_state_due (state=?)"),
              std::string::npos)
        << plan;
    EXPECT_EQ(plan.find("SCAN"), std::string::npos) << plan;
    EXPECT_NE(plan.find("USE TEMP B-TREE FOR ORDER BY"), std::string::npos)
        << "in flight: the (small) set of leased rows sorted by seq\n"
        << plan;
  }
  for (const char* sql : sqlite::statements::kRedeliverMatching) {
    const std::string plan = query_plan(**c, sql);
    EXPECT_EQ(plan.find("SCAN"), std::string::npos) << plan;
    EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  }
  // Counting by state (GET /v1/stats) reads the small partial (state, seq) index, plus the rows
  // in flight off (state, due_at), rather than all of (state, due_at, host_key).
  const std::string count_plan = query_plan(**c, sqlite::statements::kCountByState);
  EXPECT_NE(count_plan.find("COVERING INDEX deliveries_by_state_seq"), std::string::npos)
      << count_plan;
  EXPECT_NE(count_plan.find("deliveries_by_state_due (state=?)"), std::string::npos) << count_plan;
  const std::string bulk_plan = query_plan(**c, sqlite::statements::kRedeliverMatching[0]);
  EXPECT_NE(bulk_plan.find("deliveries_by_state_due (state=? AND due_at>? AND due_at<?)"),
            std::string::npos)
      << bulk_plan;
}

TEST_F(SqliteQueueTest, ASecondOpenerIsRefusedNamingTheHolder) {
  Result<std::unique_ptr<SqliteQueue>> second =
      SqliteQueue::open({.path = path(), .clock = clock_});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(getpid())), std::string::npos)
      << second.status().message();
  queue_.reset();
  EXPECT_TRUE(SqliteQueue::open({.path = path(), .clock = clock_}).ok())
      << "the lock outlived the queue that held it";
}

// A process that dies holds no lock, so whatever it had in flight is pending again as soon as
// the store is opened, under new tokens.
TEST_F(SqliteQueueTest, InFlightDeliveriesArePendingAgainAtOpen) {
  const Enqueued e = enqueue("a", kHostA, 1h);
  queue_.reset();
  queue_ = open();
  EXPECT_EQ(queue_->recovered_at_open(), 1u);
  EXPECT_EQ(state("dlv_a"), DeliveryState::kPending);
  auto claimed = claim(10);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_NE(claimed[0].lease, *e.lease);
}

TEST_F(SqliteQueueTest, DataFilesArePrivate) {
  queue_.reset();
  testing::TempDir fresh;
  const auto db = fresh / "sub" / "callbackd.db";
  auto queue = SqliteQueue::open({.path = db, .clock = clock_});
  ASSERT_TRUE(queue.ok());
  struct stat info {};
  ASSERT_EQ(stat(db.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((fresh / "sub").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((db.string() + "-wal").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0077, 0u) << "the WAL holds callback bodies too";
  ASSERT_EQ(stat((db.string() + "-shm").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0077, 0u) << "the shared-memory index maps WAL pages";
  ASSERT_EQ(stat((db.string() + ".lock").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0077, 0u) << "the lock file names the holder's pid";
}

// A store written by the first release (schema version 1) opens and keeps every delivery,
// bodies included (version 3 moved them into delivery_bodies).
TEST_F(SqliteQueueTest, AVersionOneStoreIsUpgradedInPlace) {
  queue_.reset();
  testing::TempDir old_dir;
  const auto db = old_dir / "v1.db";
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  const char* v1 = R"sql(
    CREATE TABLE settings (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE apps (id TEXT PRIMARY KEY, name TEXT NOT NULL, scheme INTEGER NOT NULL,
      secret BLOB NOT NULL, previous_secret BLOB NOT NULL, previous_until INTEGER,
      created_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
      app_id TEXT NOT NULL, task_id TEXT NOT NULL, callback_url TEXT NOT NULL,
      body BLOB NOT NULL, state INTEGER NOT NULL, due_at INTEGER NOT NULL,
      attempts_made INTEGER NOT NULL, budget_used INTEGER NOT NULL,
      created_at INTEGER NOT NULL, UNIQUE (app_id, task_id));
    CREATE INDEX deliveries_by_state_due ON deliveries (state, due_at);
    CREATE TABLE attempts (delivery_seq INTEGER NOT NULL, n INTEGER NOT NULL,
      started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, http_status INTEGER NOT NULL,
      error TEXT NOT NULL, error_detail TEXT NOT NULL, response_head BLOB NOT NULL,
      PRIMARY KEY (delivery_seq, n)) WITHOUT ROWID;
    INSERT INTO apps VALUES ('app_1', 'acme', 0, x'00', x'', NULL, 1);
    INSERT INTO deliveries VALUES (1, 'dlv_old', 'app_1', 't', 'https://old.example/h',
      '{"task_id":"t"}', 0, 1, 0, 0, 1);
    INSERT INTO deliveries VALUES (2, 'dlv_flight', 'app_1', 'u', 'https://old.example/h',
      '{"task_id":"u"}', 1, 99999999999999, 1, 1, 1);
    INSERT INTO attempts VALUES (2, 1, 1, 5, 500, 'status', '', x'');
    PRAGMA user_version = 1;
  )sql";
  ASSERT_EQ(sqlite3_exec(raw, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  auto queue = SqliteQueue::open({.path = db, .clock = clock_});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  EXPECT_EQ((*queue)->recovered_at_open(), 1u);
  EXPECT_EQ((*queue)->find_delivery("dlv_flight")->attempts.size(), 1u);
  auto claimed = (*queue)->claim({.limit = 10, .lease = 30s});
  ASSERT_TRUE(claimed.ok()) << claimed.status().to_string();
  ASSERT_EQ(claimed->size(), 2u);
  EXPECT_EQ(claimed->at(0).host_key, "https://old.example/h") << "the URL stands in";
  EXPECT_EQ(claimed->at(1).attempts_made, 1);
  EXPECT_EQ(*claimed->at(0).body, R"({"task_id":"t"})");
  EXPECT_EQ(*claimed->at(1).body, R"({"task_id":"u"})");

  auto c = sqlite::Connection::open(db.string(), false);
  auto version = (*c)->prepare("PRAGMA user_version");
  ASSERT_EQ((*version)->step(), SQLITE_ROW);
  EXPECT_EQ((*version)->int64(0), sqlite::kSchemaVersion);
  // The upgrade brought the listing indexes too: a state listing no longer walks every row.
  const std::string plan = query_plan(
      **c, sqlite::statements::kList[sqlite::statements::list_index(true, false, false)]);
  EXPECT_NE(plan.find("deliveries_by_state_seq"), std::string::npos) << plan;
}

// The index definitions of a store, by name, as SQLite keeps them.
std::map<std::string, std::string> index_sql(const std::filesystem::path& db) {
  auto c = sqlite::Connection::open(db.string(), false);
  EXPECT_TRUE(c.ok());
  std::map<std::string, std::string> out;
  if (!c.ok()) return out;
  auto rows =
      (*c)->prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL");
  while ((*rows)->step() == SQLITE_ROW) out[(*rows)->text(0)] = (*rows)->text(1);
  return out;
}

// A store of schema version 4 (full host and state indexes) opens with the partial indexes of a
// new store, keeps its rows, and lists and claims them as before.
TEST_F(SqliteQueueTest, AVersionFourStoreGetsThePartialIndexes) {
  queue_.reset();
  testing::TempDir old_dir;
  const auto db = old_dir / "v4.db";
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  const char* v4 = R"sql(
    CREATE TABLE settings (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE apps (id TEXT PRIMARY KEY, name TEXT NOT NULL, scheme INTEGER NOT NULL,
      secret BLOB NOT NULL, previous_secret BLOB NOT NULL, previous_until INTEGER,
      created_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
      app_id TEXT NOT NULL, task_id TEXT NOT NULL, callback_url TEXT NOT NULL,
      state INTEGER NOT NULL, due_at INTEGER NOT NULL, attempts_made INTEGER NOT NULL,
      budget_used INTEGER NOT NULL, created_at INTEGER NOT NULL, host_key TEXT NOT NULL,
      lease_owner INTEGER NOT NULL DEFAULT 0, lease_gen INTEGER NOT NULL DEFAULT 0,
      UNIQUE (app_id, task_id));
    CREATE INDEX deliveries_by_state_due ON deliveries (state, due_at, host_key);
    CREATE INDEX deliveries_by_host ON deliveries (host_key, state, due_at);
    CREATE INDEX deliveries_by_state_seq ON deliveries (state, seq);
    CREATE INDEX deliveries_by_app_seq ON deliveries (app_id, seq);
    CREATE INDEX deliveries_by_app_state_seq ON deliveries (app_id, state, seq);
    CREATE INDEX deliveries_by_task ON deliveries (task_id, seq);
    CREATE TABLE delivery_bodies (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
    CREATE TABLE attempts (delivery_seq INTEGER NOT NULL, n INTEGER NOT NULL,
      started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, http_status INTEGER NOT NULL,
      error TEXT NOT NULL, error_detail TEXT NOT NULL, response_head BLOB NOT NULL,
      PRIMARY KEY (delivery_seq, n)) WITHOUT ROWID;
    INSERT INTO apps VALUES ('app_1', 'acme', 0, x'00', x'', NULL, 1);
    INSERT INTO apps VALUES ('app_2', 'other', 0, x'00', x'', NULL, 1);
    INSERT INTO deliveries VALUES
      (1, 'dlv_done', 'app_1', 'a', 'https://h.example/a', 2, 1, 1, 1, 1, 'https://h.example:443', 0, 1),
      (2, 'dlv_wait', 'app_1', 'b', 'https://h.example/b', 0, 1, 0, 0, 1, 'https://h.example:443', 0, 0),
      (3, 'dlv_dead', 'app_2', 'c', 'https://h.example/c', 3, 1, 2, 2, 1, 'https://h.example:443', 0, 2),
      (4, 'dlv_flight', 'app_2', 'd', 'https://h.example/d', 1, 99999999999999, 0, 0, 1,
       'https://h.example:443', 7, 1),
      (5, 'dlv_retry', 'app_2', 'e', 'https://h.example/e', 0, 1, 1, 1, 1, 'https://h.example:443', 0, 1);
    INSERT INTO delivery_bodies SELECT seq, '{"task_id":"' || task_id || '"}' FROM deliveries;
    INSERT INTO attempts VALUES (1, 1, 1, 5, 204, 'none', '', x'');
    PRAGMA user_version = 4;
  )sql";
  ASSERT_EQ(sqlite3_exec(raw, v4, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  auto queue = SqliteQueue::open({.path = db, .clock = clock_});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  EXPECT_EQ((*queue)->recovered_at_open(), 1u) << "the in-flight row of the old process";
  const auto listed = [&](DeliveryFilter filter) {
    std::vector<std::string> ids;
    auto page = (*queue)->list(filter);
    EXPECT_TRUE(page.ok()) << page.status().to_string();
    if (page.ok()) {
      for (const Delivery& d : page->items) ids.push_back(d.id);
    }
    return ids;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(listed({}), (V{"dlv_done", "dlv_wait", "dlv_dead", "dlv_flight", "dlv_retry"}));
  EXPECT_EQ(listed({.state = DeliveryState::kPending}), (V{"dlv_wait", "dlv_flight", "dlv_retry"}));
  EXPECT_EQ(listed({.state = DeliveryState::kDelivered}), V{"dlv_done"});
  EXPECT_EQ(listed({.state = DeliveryState::kDead, .app_id = "app_2"}), V{"dlv_dead"});
  EXPECT_EQ((*queue)->find_delivery("dlv_done")->attempts.size(), 1u);
  EXPECT_EQ(*(*queue)->count_pending_for_host("https://h.example:443"), 3u);
  auto claimed = (*queue)->claim({.limit = 10, .lease = 30s});
  ASSERT_TRUE(claimed.ok()) << claimed.status().to_string();
  ASSERT_EQ(claimed->size(), 3u);
  EXPECT_EQ(*claimed->at(0).body, R"({"task_id":"b"})");
  EXPECT_EQ(listed({.state = DeliveryState::kInFlight, .app_id = "app_2"}),
            (V{"dlv_flight", "dlv_retry"}));
  EXPECT_TRUE(listed({.state = DeliveryState::kPending}).empty());
  queue->reset();

  // The same indexes as a store created new (opened by the fixture at path()).
  const auto upgraded = index_sql(db);
  EXPECT_EQ(upgraded, index_sql(path()));
  EXPECT_NE(upgraded.at("deliveries_by_host").find("WHERE state = 0"), std::string::npos);
  EXPECT_NE(upgraded.at("deliveries_by_state_seq").find("WHERE state <> 1"), std::string::npos);
  EXPECT_NE(upgraded.at("deliveries_by_app_state_seq").find("WHERE state <> 1"), std::string::npos);
}

TEST_F(SqliteQueueTest, AStoreFromANewerVersionIsRefused) {
  queue_.reset();
  {
    auto c = sqlite::Connection::open(path().string(), false);
    ASSERT_TRUE((*c)->exec("PRAGMA user_version = 99").ok());
  }
  Result<std::unique_ptr<SqliteQueue>> opened =
      SqliteQueue::open({.path = path(), .clock = clock_});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("schema version 99 is newer"), std::string::npos)
      << opened.status().message();
}

}  // namespace
}  // namespace callbackd
