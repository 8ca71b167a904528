// The Queue contract (engine/include/callbackd/queue.h), the same tests on every backend:
// SQLite in a temporary file and PostgreSQL in a fresh database of a real cluster. Time is the
// backend's own (SQLite: this process's clock; PostgreSQL: the server's now()), so waits here
// are short real ones.
#include <callbackd/postgres_store.h>
#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "postgres_cluster.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

constexpr const char* kHostA = "https://a.example:443";
constexpr const char* kHostB = "https://b.example:443";

class QueueConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    queue_ = open();
    ASSERT_NE(queue_, nullptr);
    StoredApp app;
    app.app.id = "app_1";
    app.app.name = "acme";
    app.app.created_at = system_clock()->now();
    app.sealed_secret = std::string("sealed\0secret", 13);
    ASSERT_TRUE(queue_->insert_app(app).ok());
  }

  std::unique_ptr<Queue> open() {
    Result<std::unique_ptr<Queue>> queue = Status::Internal("no backend");
    if (GetParam() == "sqlite") {
      queue = open_sqlite_queue({.path = dir_ / "q.db"});
    } else {
      if (conninfo_.empty()) conninfo_ = testing::fresh_postgres_database();
      queue = open_postgres_queue({.conninfo = conninfo_});
    }
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    return queue.ok() ? std::move(*queue) : nullptr;
  }

  NewDelivery delivery(const std::string& task, const std::string& host = kHostA,
                       std::optional<Millis> lease = std::nullopt) {
    return NewDelivery{"dlv_" + task,
                       "app_1",
                       task,
                       host + "/" + task,
                       host,
                       std::make_shared<const std::string>("{\"task_id\":\"" + task + "\"}"),
                       system_clock()->now(),
                       lease};
  }
  Enqueued enqueue(const std::string& task, const std::string& host = kHostA,
                   std::optional<Millis> lease = std::nullopt) {
    Result<Enqueued> r = queue_->enqueue(delivery(task, host, lease));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : Enqueued{};
  }
  std::vector<ClaimedDelivery> claim(std::size_t limit, Millis lease = 30s,
                                     std::vector<std::string> skip = {}) {
    auto claimed = queue_->claim({.limit = limit, .lease = lease, .skip_hosts = std::move(skip)});
    EXPECT_TRUE(claimed.ok()) << claimed.status().to_string();
    return claimed.ok() ? *claimed : std::vector<ClaimedDelivery>{};
  }
  static std::vector<std::string> ids(const std::vector<ClaimedDelivery>& claimed) {
    std::vector<std::string> out;
    for (const auto& d : claimed) out.push_back(d.id);
    return out;
  }
  AttemptRecord record_of(LeaseToken token, int number, DeliveryState next,
                          Millis retry_after = 0ms) {
    Attempt a;
    a.number = number;
    a.started_at = system_clock()->now();
    a.duration = 12ms;
    a.http_status = next == DeliveryState::kDelivered ? 204 : 503;
    a.error = next == DeliveryState::kDelivered ? AttemptError::kNone : AttemptError::kStatus;
    a.response_head = std::string("busy\0!", 6);
    return AttemptRecord{token, a, next, retry_after};
  }
  DeliveryState state(const std::string& id) {
    auto d = queue_->find_delivery(id);
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    return d.ok() ? d->state : DeliveryState::kPending;
  }

  testing::TempDir dir_;
  std::string conninfo_;
  std::unique_ptr<Queue> queue_;
};

TEST_P(QueueConformanceTest, AppsAreStoredWithTheirSealedSecretsAsGiven) {
  auto app = queue_->find_app("app_1");
  ASSERT_TRUE(app.ok()) << app.status().to_string();
  EXPECT_EQ(app->app.name, "acme");
  EXPECT_EQ(app->sealed_secret, std::string("sealed\0secret", 13));
  EXPECT_FALSE(app->previous_secret_until.has_value());

  StoredApp again = *app;
  EXPECT_EQ(queue_->insert_app(again).code(), StatusCode::kInvalidArgument);
  again.sealed_previous_secret = again.sealed_secret;
  again.sealed_secret = "new";
  again.previous_secret_until = system_clock()->now() + 1h;
  ASSERT_TRUE(queue_->update_app_secrets(again).ok());
  auto rotated = queue_->find_app("app_1");
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(rotated->sealed_secret, "new");
  EXPECT_EQ(rotated->sealed_previous_secret, std::string("sealed\0secret", 13));
  EXPECT_EQ(rotated->previous_secret_until, again.previous_secret_until);

  EXPECT_EQ(queue_->find_app("app_nope").status().code(), StatusCode::kNotFound);
  again.app.id = "app_nope";
  EXPECT_EQ(queue_->update_app_secrets(again).code(), StatusCode::kNotFound);
}

TEST_P(QueueConformanceTest, AppsAreListedByIdInPagesWithoutSecrets) {
  for (const char* id : {"app_3", "app_2"}) {
    StoredApp app;
    app.app.id = id;
    app.app.name = std::string("name of ") + id;
    app.app.scheme = SignatureScheme::kStandard;
    app.app.created_at = from_unix_ms(1767225600123);
    app.sealed_secret = "sealed";
    ASSERT_TRUE(queue_->insert_app(app).ok());
  }
  auto first = queue_->list_apps(2, "");
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  ASSERT_EQ(first->items.size(), 2u);
  EXPECT_EQ(first->items[0].id, "app_1");
  EXPECT_EQ(first->items[0].name, "acme");
  EXPECT_EQ(first->items[1].id, "app_2");
  EXPECT_EQ(first->items[1].name, "name of app_2");
  EXPECT_EQ(first->items[1].scheme, SignatureScheme::kStandard);
  EXPECT_EQ(first->items[1].created_at, from_unix_ms(1767225600123));
  EXPECT_EQ(first->next_cursor, "app_2");

  auto second = queue_->list_apps(2, first->next_cursor);
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_EQ(second->items[0].id, "app_3");
  EXPECT_EQ(second->next_cursor, "");
}

TEST_P(QueueConformanceTest, SettingsRoundTripAnyBytes) {
  EXPECT_FALSE(queue_->get_setting("k")->has_value());
  ASSERT_TRUE(queue_->put_setting("k", std::string("a\0b", 3)).ok());
  ASSERT_TRUE(queue_->put_setting("k", std::string("c\0d", 3)).ok());
  EXPECT_EQ(queue_->get_setting("k")->value(), std::string("c\0d", 3));
}

TEST_P(QueueConformanceTest, AnEnqueuedTaskIsStoredOnceAndAnUnknownAppIsRefused) {
  const Enqueued first = enqueue("t1");
  EXPECT_TRUE(first.receipt.created);
  EXPECT_EQ(first.receipt.state, DeliveryState::kPending);
  NewDelivery again = delivery("t1");
  again.id = "dlv_other";
  auto second = queue_->enqueue(again);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->receipt.created);
  EXPECT_EQ(second->receipt.delivery_id, "dlv_t1");
  EXPECT_EQ(queue_->find_by_task("app_1", "t1")->value().delivery_id, "dlv_t1");
  EXPECT_FALSE(queue_->find_by_task("app_1", "t2")->has_value());

  NewDelivery stranger = delivery("t3");
  stranger.app_id = "app_nope";
  EXPECT_EQ(queue_->enqueue(stranger).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(queue_->count_by_state()->at(0), 1u) << "nothing of the refused one stored";
}

// Many callers at once share commits; the same task twice in one batch is stored once.
TEST_P(QueueConformanceTest, ConcurrentEnqueuesAreAllAnsweredAndStoredOnce) {
  std::mutex mutex;
  std::vector<Result<Enqueued>> answers;
  for (int i = 0; i < 200; ++i) {
    NewDelivery d = delivery("c" + std::to_string(i % 150));
    d.id = "dlv_c" + std::to_string(i);
    queue_->enqueue_async(std::move(d), [&](Result<Enqueued> r) {
      std::lock_guard lock(mutex);
      answers.push_back(std::move(r));
    });
  }
  queue_->drain();
  ASSERT_EQ(answers.size(), 200u);
  std::size_t created = 0;
  std::set<std::string> delivery_ids;
  for (const auto& a : answers) {
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    if (a->receipt.created) ++created;
    delivery_ids.insert(a->receipt.delivery_id);
  }
  EXPECT_EQ(created, 150u);
  EXPECT_EQ(delivery_ids.size(), 150u);
  EXPECT_EQ(queue_->count_by_state()->at(0), 150u);
}

TEST_P(QueueConformanceTest, ClaimsTakeDueRowsOldestFirstSkippingListedHosts) {
  enqueue("a1", kHostA);
  enqueue("b1", kHostB);
  enqueue("a2", kHostA);
  EXPECT_EQ(ids(claim(10, 30s, {kHostA})), std::vector<std::string>{"dlv_b1"});
  auto only_a = queue_->claim({.limit = 1, .lease = 30s, .only_host = kHostA});
  ASSERT_TRUE(only_a.ok());
  EXPECT_EQ(ids(*only_a), std::vector<std::string>{"dlv_a1"});
  const auto rest = claim(10);
  ASSERT_EQ(ids(rest), std::vector<std::string>{"dlv_a2"});
  EXPECT_EQ(rest[0].host_key, kHostA);
  EXPECT_EQ(*rest[0].body, "{\"task_id\":\"a2\"}");
  EXPECT_EQ(rest[0].attempts_made, 0);
  EXPECT_TRUE(claim(10).empty()) << "everything is leased";
  EXPECT_EQ(state("dlv_a2"), DeliveryState::kInFlight);
}

// The endpoints a claim skipped (full, or open) do not count as due: the dispatcher asks when to
// claim next, and rows it would skip again must not make the answer "now".
TEST_P(QueueConformanceTest, NextDueLeavesOutTheSkippedEndpoints) {
  enqueue("a1", kHostA);
  enqueue("b1", kHostB);
  ASSERT_TRUE(queue_->scheduling_hints()->defer_host({.host_key = kHostB, .delay = 1h, .limit = 10}).ok());
  EXPECT_EQ(queue_->scheduling_hints()->next_due_in({})->value(), Millis(0)) << "a1 is due";
  auto without_a = queue_->scheduling_hints()->next_due_in({kHostA});
  ASSERT_TRUE(without_a.ok()) << without_a.status().to_string();
  ASSERT_TRUE(without_a->has_value()) << "b1 is pending";
  EXPECT_GT(**without_a, 59min) << "b1 is due in an hour";
  EXPECT_LE(**without_a, 1h);
  EXPECT_FALSE(queue_->scheduling_hints()->next_due_in({kHostA, kHostB})->has_value()) << "nothing else is pending";
}

// A retry is due after its delay on the store's clock, not before.
TEST_P(QueueConformanceTest, AFailedAttemptIsStoredAndItsRetryFallsDueLater) {
  enqueue("r");
  const LeaseToken token = claim(1).at(0).lease;
  auto stale = queue_->record(std::vector{record_of(token, 1, DeliveryState::kPending, 300ms)});
  ASSERT_TRUE(stale.ok()) << stale.status().to_string();
  EXPECT_TRUE(stale->empty());
  EXPECT_TRUE(claim(1).empty()) << "not due yet";
  auto due_in = queue_->scheduling_hints()->next_due_in({});
  ASSERT_TRUE(due_in.ok() && due_in->has_value());
  EXPECT_LE(**due_in, 300ms);
  ASSERT_TRUE(testing::wait_until([&] { return !claim(1).empty(); }, 5s));

  auto d = queue_->find_delivery("dlv_r");
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->attempts.size(), 1u);
  EXPECT_EQ(d->attempts[0].number, 1);
  EXPECT_EQ(d->attempts[0].http_status, 503);
  EXPECT_EQ(d->attempts[0].error, AttemptError::kStatus);
  EXPECT_EQ(d->attempts[0].response_head, std::string("busy\0!", 6));
  EXPECT_EQ(d->state, DeliveryState::kInFlight);
}

// The fence: once a lease was given back and the delivery claimed again, every write under
// the old token is refused and reported; the new holder's go through.
TEST_P(QueueConformanceTest, WritesUnderAStaleTokenAreRefusedAndReported) {
  enqueue("f");
  const LeaseToken first = claim(1).at(0).lease;
  ASSERT_TRUE(queue_->release(std::span(&first, 1), 0ms)->empty());
  const LeaseToken second = claim(1).at(0).lease;
  EXPECT_EQ(second.seq, first.seq);
  EXPECT_GT(second.generation, first.generation);

  EXPECT_EQ(*queue_->renew(std::span(&first, 1), 30s), StaleTokens{first});
  EXPECT_EQ(*queue_->record(std::vector{record_of(first, 1, DeliveryState::kDelivered)}),
            StaleTokens{first});
  EXPECT_EQ(*queue_->release(std::span(&first, 1), 0ms), StaleTokens{first});
  EXPECT_EQ(state("dlv_f"), DeliveryState::kInFlight) << "the stale writes changed nothing";
  EXPECT_TRUE(queue_->find_delivery("dlv_f")->attempts.empty());

  EXPECT_TRUE(queue_->renew(std::span(&second, 1), 30s)->empty());
  EXPECT_TRUE(
      queue_->record(std::vector{record_of(second, 1, DeliveryState::kDelivered)})->empty());
  EXPECT_EQ(state("dlv_f"), DeliveryState::kDelivered);
}

// A queue instance never takes back a lease its dispatcher still holds, however old (it renews
// what it holds, and a renewal after the end still counts while nobody took it); one it no
// longer holds (an orphan: a hand-off or claim whose answer was lost) it takes back once ended.
TEST_P(QueueConformanceTest, RecoveryLeavesHeldLeasesAndTakesBackOrphans) {
  const Enqueued held = enqueue("held", kHostA, 50ms);
  const Enqueued orphan = enqueue("orphan", kHostA, 50ms);
  ASSERT_TRUE(held.lease && orphan.lease);
  EXPECT_EQ(*queue_->recover_expired_leases({.held = {held.lease->seq}}), 0u)
      << "the orphan's lease is still live";
  std::this_thread::sleep_for(100ms);  // both leases have ended: nothing to wait for but time
  EXPECT_EQ(*queue_->recover_expired_leases({.held = {held.lease->seq}}), 1u);
  EXPECT_EQ(state("dlv_held"), DeliveryState::kInFlight);
  EXPECT_EQ(state("dlv_orphan"), DeliveryState::kPending);
  EXPECT_TRUE(queue_->renew(std::span(&*held.lease, 1), 30s)->empty())
      << "an ended lease nobody took is renewed";
  EXPECT_TRUE(
      queue_->record(std::vector{record_of(*held.lease, 1, DeliveryState::kDead)})->empty());
  EXPECT_EQ(state("dlv_held"), DeliveryState::kDead);
}

// A write sent again because its answer was lost is applied once and answered as applied.
TEST_P(QueueConformanceTest, ARepeatedRecordOrReleaseIsAnsweredAsDoneAndAppliedOnce) {
  enqueue("r");
  enqueue("l");
  const auto claimed = claim(2);
  ASSERT_EQ(claimed.size(), 2u);
  const LeaseToken r = claimed[0].lease, l = claimed[1].lease;
  const std::vector records{record_of(r, 1, DeliveryState::kPending, 1h)};
  EXPECT_TRUE(queue_->record(records)->empty());
  EXPECT_TRUE(queue_->record(records)->empty()) << "a repeat was answered as stale";
  auto d = queue_->find_delivery("dlv_r");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->attempts.size(), 1u);
  EXPECT_TRUE(queue_->release(std::span(&l, 1), 1h)->empty());
  EXPECT_TRUE(queue_->release(std::span(&l, 1), 1h)->empty()) << "a repeat was answered as stale";
  EXPECT_EQ(state("dlv_l"), DeliveryState::kPending);
}

// A half-open endpoint's probe is its oldest waiting callback, whatever is due earlier.
TEST_P(QueueConformanceTest, AProbeClaimTakesTheFirstHandedOverDueDelivery) {
  enqueue("old");
  enqueue("new");
  const auto first = claim(1);
  ASSERT_EQ(ids(first), std::vector<std::string>{"dlv_old"});
  // Back, due a moment after the newer one: by due time the newer comes first now.
  ASSERT_TRUE(queue_->release(std::span(&first[0].lease, 1), 30ms)->empty());
  std::this_thread::sleep_for(60ms);
  auto probe =
      queue_->claim({.limit = 1, .lease = 30s, .only_host = kHostA, .first_handed_over = true});
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  EXPECT_EQ(ids(*probe), std::vector<std::string>{"dlv_old"});
  auto by_due = queue_->claim({.limit = 1, .lease = 30s, .only_host = kHostA});
  ASSERT_TRUE(by_due.ok());
  EXPECT_EQ(ids(*by_due), std::vector<std::string>{"dlv_new"});
}

TEST_P(QueueConformanceTest, AnAppsUnfinishedDeliveriesAreCountedUpToALimit) {
  for (const char* task : {"a", "b", "c", "d"}) enqueue(task);
  const auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(*queue_->count_unfinished("app_1", 100), 4u) << "three pending, one in flight";
  EXPECT_LE(*queue_->count_unfinished("app_1", 2), 3u) << "the count stops near the limit";
  EXPECT_GE(*queue_->count_unfinished("app_1", 2), 2u);
  ASSERT_TRUE(
      queue_->record(std::vector{record_of(claimed[0].lease, 1, DeliveryState::kDelivered)}).ok());
  EXPECT_EQ(*queue_->count_unfinished("app_1", 100), 3u);
  EXPECT_EQ(*queue_->count_unfinished("app_nope", 100), 0u);
}

TEST_P(QueueConformanceTest, RedeliveryRestartsTheBudgetOfAFinishedDeliveryOnly) {
  enqueue("x");
  const LeaseToken token = claim(1).at(0).lease;
  ASSERT_TRUE(queue_->record(std::vector{record_of(token, 1, DeliveryState::kDead)}).ok());
  auto again = queue_->redeliver("dlv_x");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->state, DeliveryState::kPending);
  EXPECT_EQ(queue_->redeliver("dlv_x").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue_->redeliver("dlv_nope").status().code(), StatusCode::kNotFound);
  const auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].attempts_made, 1) << "the next attempt is number 2";
  EXPECT_EQ(claimed[0].budget_used, 0);
}

TEST_P(QueueConformanceTest, ListsPageInOrderAndCountsByStateAndApp) {
  for (int i = 0; i < 5; ++i) enqueue("l" + std::to_string(i));
  const LeaseToken token = claim(1).at(0).lease;
  ASSERT_TRUE(queue_->record(std::vector{record_of(token, 1, DeliveryState::kDelivered)}).ok());

  auto page = queue_->list({.limit = 3});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 3u);
  EXPECT_EQ(page->items[0].id, "dlv_l0");
  EXPECT_EQ(page->items[0].attempts.size(), 1u);
  auto next = queue_->list({.limit = 3, .cursor = page->next_cursor});
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->items.size(), 2u);
  EXPECT_EQ(next->items[1].id, "dlv_l4");
  EXPECT_TRUE(next->next_cursor.empty());
  EXPECT_EQ(queue_->list({.state = DeliveryState::kDelivered})->items.size(), 1u);
  EXPECT_EQ(queue_->list({.cursor = "x"}).status().code(), StatusCode::kInvalidArgument);

  const DeliveryCounts counts = *queue_->count_by_state();
  EXPECT_EQ(counts[static_cast<int>(DeliveryState::kPending)], 4u);
  EXPECT_EQ(counts[static_cast<int>(DeliveryState::kDelivered)], 1u);
  const auto unfinished = *queue_->count_unfinished_by_app();
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished[0], (std::pair<std::string, std::size_t>{"app_1", 4}));
}

TEST_P(QueueConformanceTest, CountsThePendingDeliveriesOfOneEndpoint) {
  enqueue("a1", kHostA);
  enqueue("a2", kHostA);
  enqueue("a3", kHostA);
  enqueue("b1", kHostB);
  // One of A's in flight, then delivered: neither counts as waiting.
  const std::vector<ClaimedDelivery> claimed = claim(1, 30s, {kHostB});
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(*queue_->count_pending_for_host(kHostA), 2u);
  ASSERT_TRUE(
      queue_->record(std::vector{record_of(claimed[0].lease, 1, DeliveryState::kDelivered)}).ok());
  EXPECT_EQ(*queue_->count_pending_for_host(kHostA), 2u);
  EXPECT_EQ(*queue_->count_pending_for_host(kHostB), 1u);
  EXPECT_EQ(*queue_->count_pending_for_host("https://unknown.example:443"), 0u);
}

// Filters for the listing and bulk tests: a second app and finished deliveries.
class QueueFilterTest : public QueueConformanceTest {
 protected:
  void SetUp() override {
    QueueConformanceTest::SetUp();
    StoredApp app;
    app.app.id = "app_2";
    app.app.name = "other";
    app.app.created_at = system_clock()->now();
    app.sealed_secret = "s";
    ASSERT_TRUE(queue_->insert_app(app).ok());
  }
  void enqueue_for(const std::string& app_id, const std::string& task) {
    NewDelivery d = delivery(task);
    d.id = "dlv_" + app_id + "_" + task;
    d.app_id = app_id;
    ASSERT_TRUE(queue_->enqueue(d).ok());
  }
  // Claims every due delivery and records one more attempt moving it to `next`.
  void finish_due(DeliveryState next) {
    std::vector<AttemptRecord> records;
    for (const ClaimedDelivery& d : claim(1000)) {
      records.push_back(record_of(d.lease, d.attempts_made + 1, next));
    }
    ASSERT_TRUE(queue_->record(records).ok());
  }
  // Finish times are kept to the millisecond: let one pass so "before" and "after" differ.
  static TimePoint next_millisecond() {
    const TimePoint start = system_clock()->now();
    EXPECT_TRUE(testing::wait_until([&] { return system_clock()->now() > start + 1ms; }, 1s));
    return system_clock()->now();
  }
  std::vector<std::string> listed(DeliveryFilter filter) {
    std::vector<std::string> out;
    for (int page = 0; page < 100; ++page) {
      auto got = queue_->list(filter);
      EXPECT_TRUE(got.ok()) << got.status().to_string();
      if (!got.ok()) break;
      EXPECT_LE(got->items.size(), filter.limit);
      for (const Delivery& d : got->items) out.push_back(d.id);
      if (got->next_cursor.empty()) break;
      filter.cursor = got->next_cursor;
    }
    return out;
  }
  std::vector<std::string> in_state(DeliveryState s) { return listed({.state = s, .limit = 1000}); }
  RedeliverBatch redeliver(const RedeliverFilter& filter) {
    auto batch = queue_->redeliver_matching(filter);
    EXPECT_TRUE(batch.ok()) << batch.status().to_string();
    return batch.ok() ? *batch : RedeliverBatch{};
  }
};

TEST_P(QueueFilterTest, ListsFilterByTaskAndEveryMixOfFiltersPageByPage) {
  for (int i = 0; i < 5; ++i) {
    enqueue_for("app_1", "t" + std::to_string(i));
    enqueue_for("app_2", "t" + std::to_string(i));
  }
  // t0 and t1 of both apps end delivered; the others go back to waiting.
  std::vector<AttemptRecord> records;
  std::vector<LeaseToken> others;
  for (const ClaimedDelivery& d : claim(100)) {
    if (d.task_id == "t0" || d.task_id == "t1") {
      records.push_back(record_of(d.lease, 1, DeliveryState::kDelivered));
    } else {
      others.push_back(d.lease);
    }
  }
  ASSERT_EQ(records.size(), 4u);
  ASSERT_TRUE(queue_->record(records).ok());
  ASSERT_TRUE(queue_->release(others, 0ms).ok());

  using V = std::vector<std::string>;
  EXPECT_EQ(listed({.task_id = "t1", .limit = 1}), (V{"dlv_app_1_t1", "dlv_app_2_t1"}));
  EXPECT_EQ(listed({.app_id = "app_2", .task_id = "t3", .limit = 1}), (V{"dlv_app_2_t3"}));
  EXPECT_EQ(listed({.state = DeliveryState::kDelivered, .task_id = "t0", .limit = 1}),
            (V{"dlv_app_1_t0", "dlv_app_2_t0"}));
  EXPECT_EQ(listed({.state = DeliveryState::kPending, .app_id = "app_1", .task_id = "t0"}), V{});
  EXPECT_EQ(listed({.task_id = "nope"}), V{});
  EXPECT_EQ(listed({.state = DeliveryState::kPending, .app_id = "app_1", .limit = 2}),
            (V{"dlv_app_1_t2", "dlv_app_1_t3", "dlv_app_1_t4"}));
  EXPECT_EQ(listed({.app_id = "app_2", .limit = 2}),
            (V{"dlv_app_2_t0", "dlv_app_2_t1", "dlv_app_2_t2", "dlv_app_2_t3", "dlv_app_2_t4"}));
  EXPECT_EQ(listed({.state = DeliveryState::kDelivered, .limit = 3}),
            (V{"dlv_app_1_t0", "dlv_app_2_t0", "dlv_app_1_t1", "dlv_app_2_t1"}));
  EXPECT_EQ(listed({.state = DeliveryState::kDelivered, .app_id = "app_2", .limit = 1}),
            (V{"dlv_app_2_t0", "dlv_app_2_t1"}));
}

// Listing by each state, with and without an app, gives exactly that state's rows in seq order,
// page by page: in flight (held under lease) and pending retries included, whatever indexes the
// backend keeps for each state.
TEST_P(QueueFilterTest, ListsByEachStateAndAppExactlyTheirRowsInOrder) {
  for (int i = 0; i < 4; ++i) {
    enqueue_for("app_1", "t" + std::to_string(i));
    enqueue_for("app_2", "t" + std::to_string(i));
  }
  const std::map<std::string, DeliveryState> next = {
      {"dlv_app_1_t0", DeliveryState::kDelivered}, {"dlv_app_2_t0", DeliveryState::kPending},
      {"dlv_app_1_t1", DeliveryState::kDead},      {"dlv_app_2_t1", DeliveryState::kDead},
      {"dlv_app_1_t2", DeliveryState::kPending},   {"dlv_app_2_t2", DeliveryState::kDelivered}};
  std::vector<AttemptRecord> records;
  for (const ClaimedDelivery& d : claim(100)) {  // t3 of both apps stays in flight
    if (auto it = next.find(d.id); it != next.end()) {
      records.push_back(record_of(d.lease, 1, it->second, 1h));  // pending: a retry, later
    }
  }
  ASSERT_EQ(records.size(), next.size());
  ASSERT_TRUE(queue_->record(records).ok());
  enqueue_for("app_1", "t4");  // new, pending

  using V = std::vector<std::string>;
  const struct {
    DeliveryState state;
    V all, app_1, app_2;
  } cases[] = {
      {DeliveryState::kPending,
       {"dlv_app_2_t0", "dlv_app_1_t2", "dlv_app_1_t4"},
       {"dlv_app_1_t2", "dlv_app_1_t4"},
       {"dlv_app_2_t0"}},
      {DeliveryState::kInFlight,
       {"dlv_app_1_t3", "dlv_app_2_t3"},
       {"dlv_app_1_t3"},
       {"dlv_app_2_t3"}},
      {DeliveryState::kDelivered,
       {"dlv_app_1_t0", "dlv_app_2_t2"},
       {"dlv_app_1_t0"},
       {"dlv_app_2_t2"}},
      {DeliveryState::kDead, {"dlv_app_1_t1", "dlv_app_2_t1"}, {"dlv_app_1_t1"}, {"dlv_app_2_t1"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(to_string(c.state));
    EXPECT_EQ(listed({.state = c.state, .limit = 1}), c.all);
    EXPECT_EQ(listed({.state = c.state, .limit = 1000}), c.all);
    EXPECT_EQ(listed({.state = c.state, .app_id = "app_1", .limit = 1}), c.app_1);
    EXPECT_EQ(listed({.state = c.state, .app_id = "app_2", .limit = 1}), c.app_2);
  }
}

TEST_P(QueueFilterTest, BulkRedeliveryQueuesTheMatchingDeadInBoundedBatchesAndNeverTwice) {
  for (int i = 0; i < 5; ++i) enqueue_for("app_1", "d" + std::to_string(i));
  enqueue_for("app_2", "other");
  finish_due(DeliveryState::kDead);
  enqueue_for("app_1", "ok");
  finish_due(DeliveryState::kDelivered);
  enqueue_for("app_1", "waiting");
  next_millisecond();

  RedeliverBatch first = redeliver({.app_id = "app_1", .limit = 2});
  ASSERT_EQ(first.app_ids, (std::vector<std::string>{"app_1", "app_1"}));
  ASSERT_FALSE(first.next_cursor.empty());
  // Queued exactly as a single redelivery: pending, fresh budget, attempts numbered on.
  const auto claimed = claim(10);
  ASSERT_EQ(claimed.size(), 3u);  // the two queued and "waiting"
  for (const ClaimedDelivery& d : claimed) {
    if (d.task_id == "waiting") continue;
    EXPECT_EQ(d.attempts_made, 1) << d.id;
    EXPECT_EQ(d.budget_used, 0) << d.id;
  }
  // They fail again: dead again, but after the run began, so never queued twice. The run's
  // range takes in the millisecond it began (everything dead by the call); a real re-death
  // follows a whole retry schedule, so it lands in a later one, as it does here.
  next_millisecond();
  std::vector<AttemptRecord> again;
  for (const ClaimedDelivery& d : claimed) {
    if (d.task_id != "waiting") {
      again.push_back(record_of(d.lease, 2, DeliveryState::kDead));
    } else {  // back to waiting, not due soon, so every backend reopens with it pending
      ASSERT_TRUE(queue_->release(std::vector{d.lease}, 1h).ok());
    }
  }
  ASSERT_TRUE(queue_->record(again).ok());

  // A crash between calls loses nothing: a new instance goes on with the cursor.
  queue_.reset();
  queue_ = open();
  ASSERT_NE(queue_, nullptr);
  RedeliverBatch second = redeliver({.app_id = "app_1", .limit = 2, .cursor = first.next_cursor});
  EXPECT_EQ(second.app_ids.size(), 2u);
  ASSERT_FALSE(second.next_cursor.empty());
  RedeliverBatch third = redeliver({.app_id = "app_1", .limit = 2, .cursor = second.next_cursor});
  EXPECT_EQ(third.app_ids.size(), 1u);
  EXPECT_TRUE(third.next_cursor.empty()) << "nothing left to queue";

  // The two re-dead ones are the only dead of app_1 left; app_2's and the delivered one are
  // untouched.
  using V = std::vector<std::string>;
  EXPECT_EQ(listed({.state = DeliveryState::kDead, .app_id = "app_1"}).size(), 2u);
  EXPECT_EQ(listed({.state = DeliveryState::kDead, .app_id = "app_2"}), V{"dlv_app_2_other"});
  EXPECT_EQ(in_state(DeliveryState::kDelivered), V{"dlv_app_1_ok"});
  EXPECT_EQ(listed({.state = DeliveryState::kPending, .app_id = "app_1"}).size(), 4u)
      << "the three queued and \"waiting\"";

  // Delivered ones may be sent again too; a new run (no cursor) sees the re-dead ones.
  next_millisecond();
  EXPECT_EQ(redeliver({.state = DeliveryState::kDelivered}).app_ids, V{"app_1"});
  EXPECT_EQ(redeliver({}).app_ids.size(), 3u) << "app_1's two re-dead and app_2's";
  EXPECT_TRUE(in_state(DeliveryState::kDead).empty());
  EXPECT_EQ(redeliver({}).app_ids.size(), 0u);
}

TEST_P(QueueFilterTest, BulkRedeliveryKeepsToTheFinishTimeRangeAndRefusesBadFilters) {
  enqueue_for("app_1", "early");
  finish_due(DeliveryState::kDead);
  const TimePoint middle = next_millisecond();
  next_millisecond();
  enqueue_for("app_1", "late");
  finish_due(DeliveryState::kDead);
  next_millisecond();

  using V = std::vector<std::string>;
  EXPECT_EQ(redeliver({.finished_since = middle, .finished_until = middle}).app_ids, V{});
  EXPECT_EQ(redeliver({.finished_until = middle}).app_ids, V{"app_1"});
  EXPECT_EQ(in_state(DeliveryState::kDead), V{"dlv_app_1_late"});
  EXPECT_EQ(redeliver({.finished_since = middle}).app_ids, V{"app_1"});
  EXPECT_TRUE(in_state(DeliveryState::kDead).empty());

  const auto code = [&](const RedeliverFilter& f) {
    return queue_->redeliver_matching(f).status().code();
  };
  EXPECT_EQ(code({.state = DeliveryState::kPending}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({.limit = 0}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({.limit = 1001}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({.cursor = "x"}), StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Backends, QueueFilterTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// An open endpoint's backlog is moved out of the claims' way: only its pending rows due before
// the new time move, to exactly that time, a bounded batch per call; never earlier.
TEST_P(QueueConformanceTest, DeferringAHostMovesOnlyItsEarlierPendingRowsAndNeverEarlier) {
  for (const char* task : {"late", "flight", "dead", "done"}) enqueue(task, kHostA);
  const auto held = queue_->claim({.limit = 4, .lease = 30s, .only_host = kHostA});
  ASSERT_TRUE(held.ok() && held->size() == 4u);
  ASSERT_TRUE(queue_
                  ->record(std::vector{record_of(held->at(0).lease, 1, DeliveryState::kPending, 2h),
                                       record_of(held->at(2).lease, 1, DeliveryState::kDead),
                                       record_of(held->at(3).lease, 1, DeliveryState::kDelivered)})
                  ->empty());
  for (const char* task : {"a1", "a2", "a3"}) enqueue(task, kHostA);
  enqueue("b1", kHostB);
  auto due_at = [&](const std::string& id) {
    auto d = queue_->find_delivery(id);
    EXPECT_TRUE(d.ok() && d->next_attempt_at) << id;
    return d.ok() && d->next_attempt_at ? *d->next_attempt_at : TimePoint{};
  };
  const TimePoint late_due = due_at("dlv_late");
  const TimePoint b1_due = due_at("dlv_b1");

  const TimePoint before = system_clock()->now();
  auto first = queue_->scheduling_hints()->defer_host({.host_key = kHostA, .delay = 1h, .limit = 2});
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(first->moved, 2u) << "a full batch";
  const TimePoint after = system_clock()->now();
  EXPECT_GE(first->until, before + 1h - 2s);
  EXPECT_LE(first->until, after + 1h + 2s);
  // The next batch names the same time: the rows already moved are not taken again.
  auto second = queue_->scheduling_hints()->defer_host({.host_key = kHostA, .until = first->until, .limit = 2});
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_EQ(second->moved, 1u) << "the rest: not the in-flight, dead, delivered or later rows";
  EXPECT_EQ(second->until, first->until);
  EXPECT_EQ(queue_->scheduling_hints()->defer_host({.host_key = kHostA, .until = first->until, .limit = 2})->moved, 0u);
  EXPECT_EQ(queue_->scheduling_hints()->defer_host({.host_key = kHostA, .delay = 30min, .limit = 100})->moved, 0u)
      << "never earlier";

  for (const char* id : {"dlv_a1", "dlv_a2", "dlv_a3"}) {
    EXPECT_EQ(state(id), DeliveryState::kPending) << id;
    EXPECT_EQ(due_at(id), first->until) << id;
    EXPECT_TRUE(queue_->find_delivery(id)->attempts.empty()) << id;
  }
  EXPECT_EQ(due_at("dlv_late"), late_due) << "due after the new time: left alone";
  EXPECT_EQ(queue_->find_delivery("dlv_late")->attempts.size(), 1u);
  EXPECT_EQ(due_at("dlv_b1"), b1_due) << "another host";
  EXPECT_EQ(state("dlv_flight"), DeliveryState::kInFlight);
  EXPECT_EQ(state("dlv_dead"), DeliveryState::kDead);
  EXPECT_EQ(state("dlv_done"), DeliveryState::kDelivered);
  EXPECT_EQ(ids(claim(10)), std::vector<std::string>{"dlv_b1"}) << "the deferred rows are not due";
  EXPECT_EQ(
      queue_->scheduling_hints()->defer_host({.host_key = "https://none.example:443", .delay = 1h, .limit = 10})->moved,
      0u);
}

// A slow endpoint's backlog: its oldest due rows (what its line takes next) stay due, the rest
// move later, oldest first, a batch at a time.
TEST_P(QueueConformanceTest, DeferringAHostCanKeepItsOldestDueRows) {
  for (const char* task : {"a1", "a2", "a3", "a4", "a5"}) {
    enqueue(task, kHostA);
    std::this_thread::sleep_for(3ms);  // distinct due times: "oldest" is unambiguous
  }
  enqueue("b1", kHostB);
  auto due_at = [&](const std::string& id) { return *queue_->find_delivery(id)->next_attempt_at; };
  const TimePoint a1_due = due_at("dlv_a1"), a2_due = due_at("dlv_a2");

  auto first = queue_->scheduling_hints()->defer_host({.host_key = kHostA, .delay = 1h, .limit = 2, .keep_oldest = 2});
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(first->moved, 2u);
  EXPECT_EQ(due_at("dlv_a3"), first->until) << "oldest first after the kept ones";
  EXPECT_EQ(due_at("dlv_a4"), first->until);
  EXPECT_LT(due_at("dlv_a5"), first->until) << "not in the first batch";
  auto second =
      queue_->scheduling_hints()->defer_host({.host_key = kHostA, .until = first->until, .limit = 2, .keep_oldest = 2});
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_EQ(second->moved, 1u) << "the next batch keeps the same two and moves the last";
  EXPECT_EQ(due_at("dlv_a5"), first->until);
  EXPECT_EQ(due_at("dlv_a1"), a1_due) << "kept";
  EXPECT_EQ(due_at("dlv_a2"), a2_due) << "kept";
  EXPECT_EQ(ids(claim(10)), (std::vector<std::string>{"dlv_a1", "dlv_a2", "dlv_b1"}));
}

TEST_P(QueueConformanceTest, DeliveredRowsArePrunedWithTheirAttempts) {
  enqueue("p");
  const LeaseToken token = claim(1).at(0).lease;
  ASSERT_TRUE(queue_->record(std::vector{record_of(token, 1, DeliveryState::kDelivered)}).ok());
  EXPECT_EQ(*queue_->prune_delivered(1h, 10), 0u) << "too recent";
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(*queue_->prune_delivered(1ms, 10), 1u);
  EXPECT_EQ(queue_->find_delivery("dlv_p").status().code(), StatusCode::kNotFound);
}

TEST_P(QueueConformanceTest, DataOutlivesTheQueueInstance) {
  enqueue("kept");
  queue_.reset();
  queue_ = open();
  ASSERT_NE(queue_, nullptr);
  EXPECT_EQ(queue_->find_by_task("app_1", "kept")->value().delivery_id, "dlv_kept");
  EXPECT_NE(queue_->describe().find(GetParam()), std::string::npos) << queue_->describe();
}

INSTANTIATE_TEST_SUITE_P(Backends, QueueConformanceTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace callbackd
