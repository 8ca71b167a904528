#include "postgres_queue.h"

#include <algorithm>
#include <future>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "../common/owner_id.h"
#include "../common/redeliver_range.h"
#include "../common/rows.h"
#include "pg_schema.h"
#include "pg_statements.h"

namespace callbackd {

using postgres::array_param;
using postgres::bytea_param;
using postgres::Connection;
using postgres::Params;
using postgres::Rows;
using namespace postgres::statements;

namespace {

// Rows per enqueue transaction at most, so one commit never holds a connection for long.
constexpr std::size_t kMaxBatch = 2048;

// A statement that failed this fast found its link dead (not frozen): worth one more try.
constexpr std::chrono::milliseconds kQuickFailure{1000};

std::string number(std::int64_t n) { return std::to_string(n); }

std::optional<std::string> optional_ms(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return number(to_unix_ms(*t));
}

// One row of a result, as the shared row mappers (../common/rows.h) read it.
struct RowAt {
  const Rows& rows;
  int row;
  std::string text(int column) const { return rows.text(row, column); }
  std::int64_t int64(int column) const { return rows.int64(row, column); }
  std::string bytes(int column) const { return rows.bytes(row, column); }
};

}  // namespace

Result<std::unique_ptr<Queue>> open_postgres_queue(PostgresQueueOptions options) {
  auto queue = PostgresQueue::open(std::move(options));
  if (!queue.ok()) return queue.status();
  return std::unique_ptr<Queue>(std::move(*queue));
}

// --------------------------------------------------------------------- lifecycle

Result<std::unique_ptr<PostgresQueue>> PostgresQueue::open(PostgresQueueOptions options) {
  if (options.conninfo.empty()) return Status::InvalidArgument("store: empty connection string");
  std::unique_ptr<PostgresQueue> queue(new PostgresQueue());
  auto enqueue_connection = Connection::open(options.conninfo, options.bounds);
  if (!enqueue_connection.ok()) return enqueue_connection.status();
  queue->enqueue_connection_ = std::move(*enqueue_connection);
  if (Status s = postgres::create_or_upgrade_schema(*queue->enqueue_connection_); !s.ok()) {
    return s;
  }
  for (auto [pool, size] : {std::pair{&queue->api_pool_, options.api_connections},
                            std::pair{&queue->dispatch_pool_, options.dispatch_connections},
                            std::pair{&queue->lease_pool_, std::size_t{1}}}) {
    auto opened = postgres::Pool::open(options.conninfo, size, options.bounds);
    if (!opened.ok()) return opened.status();
    *pool = std::move(*opened);
  }
  queue->description_ = "postgres:" + queue->enqueue_connection_->describe();
  queue->owner_ = new_owner_id();
  queue->listener_ = std::make_unique<postgres::Listener>(options.conninfo, options.bounds,
                                                          "callbackd_due", number(queue->owner_));
  queue->commits_ = std::make_unique<GroupCommit<PendingEnqueue>>(
      "callbackd-enq", kMaxBatch,
      [q = queue.get()](std::vector<PendingEnqueue>& batch) { q->run_enqueue_batch(batch); });
  return queue;
}

PostgresQueue::~PostgresQueue() { commits_.reset(); }

void PostgresQueue::on_due_elsewhere(std::function<void()> wake) {
  listener_->set_callback(std::move(wake));
}

// Reachable, and not a read-only standby (after a failover the old primary may be one).
Status PostgresQueue::check_writable() {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  const auto started = std::chrono::steady_clock::now();
  auto rows = c->run("check the database", "SELECT pg_is_in_recovery()");
  // After an outage (a restart) a pooled connection learns it is dead on its first statement,
  // at once; the second try runs on a fresh one. A link that gave no answer within its bound
  // (a frozen database) is not tried again: readiness answers within one bound.
  const bool failed_fast = std::chrono::steady_clock::now() - started < kQuickFailure;
  if (!rows.ok() && !c->healthy() && failed_fast) {
    rows = c->run("check the database", "SELECT pg_is_in_recovery()");
  }
  if (!rows.ok()) return rows.status();
  if (rows->text(0, 0) == "t") {
    return Status::StorageUnavailable("postgres: the database is a read-only standby");
  }
  return Status::Ok();
}

Status PostgresQueue::notify_due(Connection& c) {
  auto sent = c.run("notify", kNotifyDue, {number(owner_)});
  return sent.ok() ? Status::Ok() : sent.status();
}

template <class Work>
Status PostgresQueue::transaction(Work&& work) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  if (Status s = c->exec("begin", "BEGIN"); !s.ok()) return s;
  Status s = work(*c);
  if (s.ok()) s = c->exec("commit", "COMMIT");
  if (!s.ok() && c->in_transaction()) (void)c->exec("rollback", "ROLLBACK");
  return s;
}

// --------------------------------------------------------------------- apps and settings

Status PostgresQueue::insert_app(const StoredApp& app) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto inserted =
      c->run("insert app", kInsertApp,
             {app.app.id, app.app.name, number(static_cast<int>(app.app.scheme)),
              bytea_param(app.sealed_secret), bytea_param(app.sealed_previous_secret),
              optional_ms(app.previous_secret_until), number(to_unix_ms(app.app.created_at))});
  if (!inserted.ok()) return inserted.status();
  if (inserted->affected() == 0) {
    return Status::InvalidArgument("app_id: \"" + app.app.id + "\" already exists");
  }
  return Status::Ok();
}

Result<StoredApp> PostgresQueue::find_app(std::string_view app_id) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("find app", kFindApp, {std::string(app_id)});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) {
    return Status::NotFound("app \"" + std::string(app_id) + "\" does not exist");
  }
  StoredApp app;
  app.app.id = rows->text(0, 0);
  app.app.name = rows->text(0, 1);
  app.app.scheme = static_cast<SignatureScheme>(rows->int64(0, 2));
  app.sealed_secret = rows->bytes(0, 3);
  app.sealed_previous_secret = rows->bytes(0, 4);
  if (!rows->is_null(0, 5)) app.previous_secret_until = from_unix_ms(rows->int64(0, 5));
  app.app.created_at = from_unix_ms(rows->int64(0, 6));
  return app;
}

Result<AppPage> PostgresQueue::list_apps(std::size_t limit, std::string_view after_id) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("list apps", kListApps, {std::string(after_id), std::to_string(limit)});
  if (!rows.ok()) return rows.status();
  AppPage page;
  for (int r = 0; r < rows->size(); ++r) {
    page.items.push_back(App{rows->text(r, 0), rows->text(r, 1),
                             static_cast<SignatureScheme>(rows->int64(r, 2)),
                             from_unix_ms(rows->int64(r, 3))});
  }
  if (page.items.size() == limit) page.next_cursor = page.items.back().id;
  return page;
}

Status PostgresQueue::update_app_secrets(const StoredApp& app) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto updated =
      c->run("update app secrets", kUpdateAppSecrets,
             {app.app.id, bytea_param(app.sealed_secret), bytea_param(app.sealed_previous_secret),
              optional_ms(app.previous_secret_until)});
  if (!updated.ok()) return updated.status();
  if (updated->affected() == 0) {
    return Status::NotFound("app \"" + app.app.id + "\" does not exist");
  }
  return Status::Ok();
}

Result<std::optional<std::string>> PostgresQueue::get_setting(std::string_view key) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("get setting", kGetSetting, {std::string(key)});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return std::optional<std::string>();
  return std::optional<std::string>(rows->bytes(0, 0));
}

Status PostgresQueue::put_setting(std::string_view key, std::string_view value) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto put = c->run("put setting", kPutSetting, {std::string(key), bytea_param(value)});
  return put.ok() ? Status::Ok() : put.status();
}

// --------------------------------------------------------------------- enqueue (group commit)

void PostgresQueue::enqueue_async(NewDelivery delivery, EnqueueDone done) {
  commits_->submit(PendingEnqueue{std::move(delivery), std::move(done)});
}

void PostgresQueue::drain() { commits_->drain(); }

void PostgresQueue::run_enqueue_batch(std::vector<PendingEnqueue>& batch) {
  Connection& c = *enqueue_connection_;
  Result<std::vector<Result<Enqueued>>> results = Status::Internal("enqueue not run");
  bool commit_sent = false;
  Status s = c.exec("begin", "BEGIN");
  if (s.ok()) {
    results = insert_batch(c, batch);
    if (!results.ok()) s = results.status();
    // Rows stored pending (not handed to this process's dispatcher) are for anyone.
    bool any_pending = false;
    for (std::size_t i = 0; s.ok() && i < batch.size(); ++i) {
      const auto& r = (*results)[i];
      any_pending |= r.ok() && r->receipt.created && !r->lease;
    }
    if (s.ok() && any_pending) s = notify_due(c);
    if (s.ok()) {
      commit_sent = true;
      s = c.exec("commit", "COMMIT");
    }
  }
  if (s.ok()) {
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move((*results)[i]));
    return;
  }
  if (c.in_transaction()) (void)c.exec("rollback", "ROLLBACK");
  // The COMMIT went out and no answer came back: it may have committed. Find out before
  // telling anyone nothing was stored.
  if (commit_sent && c.outcome_unknown()) {
    Result<bool> landed = committed_after_all(batch, *results);
    if (landed.ok() && *landed) {
      for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move((*results)[i]));
      return;
    }
    if (!landed.ok()) {
      // Still unknown: the answer says so, and a retry of the same task is answered with the
      // delivery if it was stored.
      s = Status::StorageUnavailable(s.message() +
                                     "; whether the commit landed is unknown: retry the same "
                                     "task, which returns its delivery if it was stored");
    }
  }
  // Nothing in this batch is stored, so nobody in it may be told otherwise. Callbacks that
  // queued up while the database did not answer would only wait out a bound of their own
  // now: they are answered too.
  for (PendingEnqueue& p : batch) p.done(s);
  if (!c.healthy()) {
    for (PendingEnqueue& p : commits_->take_waiting()) p.done(s);
  }
}

Result<bool> PostgresQueue::committed_after_all(const std::vector<PendingEnqueue>& batch,
                                                const std::vector<Result<Enqueued>>& results) {
  std::vector<std::string> created;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (results[i].ok() && results[i]->receipt.created) created.push_back(batch[i].delivery.id);
  }
  if (created.empty()) return true;  // nothing was to be stored
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto found = c->run("look up an unconfirmed commit", kDeliveriesById, {array_param(created)});
  if (!found.ok()) return found.status();
  // One transaction: all of its rows landed, or none did.
  return found->size() > 0;
}

// One transaction's work: which apps exist, one INSERT for every row, and a look-up of the
// rows whose task was enqueued before. Results are in the batch's order; a row of an unknown
// app, or with text that is not UTF-8, carries its own error and is not stored.
Result<std::vector<Result<Enqueued>>> PostgresQueue::insert_batch(
    Connection& c, const std::vector<PendingEnqueue>& batch) {
  // Apps are never deleted, so one that was found stays known (this thread's set only).
  std::vector<std::string> app_ids;
  for (const PendingEnqueue& p : batch) {
    const std::string& app = p.delivery.app_id;
    if (!known_apps_.contains(app) &&
        std::find(app_ids.begin(), app_ids.end(), app) == app_ids.end()) {
      app_ids.push_back(app);
    }
  }
  if (!app_ids.empty()) {
    auto known_rows = c.run("find apps", kKnownApps, {array_param(app_ids)});
    if (!known_rows.ok()) return known_rows.status();
    for (int r = 0; r < known_rows->size(); ++r) known_apps_.insert(known_rows->text(r, 0));
  }
  const std::unordered_set<std::string>& known = known_apps_;

  std::vector<std::optional<Status>> refused(batch.size());
  // The rows go in by COPY (the cheapest way in) to a staging table, and from there into
  // deliveries with ON CONFLICT, which COPY cannot do.
  std::string rows;
  std::size_t staged = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const NewDelivery& d = batch[i].delivery;
    const std::string_view body = d.body ? std::string_view(*d.body) : std::string_view();
    if (!known.contains(d.app_id)) {
      refused[i] = Status::NotFound("app \"" + d.app_id + "\" does not exist");
      continue;
    }
    if (!postgres::is_utf8(d.task_id) || !postgres::is_utf8(d.callback_url) ||
        !postgres::is_utf8(d.host_key) || !postgres::is_utf8(body)) {
      refused[i] = Status::InvalidArgument("task_id or callback_url: not valid UTF-8");
      continue;
    }
    rows += std::to_string(i);
    for (std::string_view field :
         {std::string_view(d.id), std::string_view(d.app_id), std::string_view(d.task_id),
          std::string_view(d.callback_url), body}) {
      rows += '\t';
      postgres::append_copy_field(rows, field);
    }
    // created_at is the database's now(), like every time this store keeps.
    rows += '\t';
    postgres::append_copy_field(rows, d.host_key);
    rows += '\t' + (d.lease ? number(d.lease->count()) : std::string("\\N")) + '\n';
    ++staged;
  }
  std::unordered_map<std::string, std::int64_t> inserted;  // delivery id -> seq
  if (staged > 0) {
    // A temporary table lives as long as its session: again after a reconnect.
    if (staging_session_ != c.session()) {
      if (Status s = c.exec("create staging", kCreateStaging); !s.ok()) return s;
      staging_session_ = c.session();
    }
    if (Status s = c.copy_in("stage deliveries", kCopyStaging, rows); !s.ok()) return s;
    auto returned = c.run("insert deliveries", kInsertDeliveries, {number(owner_)});
    if (!returned.ok()) return returned.status();
    for (int r = 0; r < returned->size(); ++r) {
      inserted.emplace(returned->text(r, 0), returned->int64(r, 1));
    }
  }

  // Tasks that were there already (before, or earlier in this very batch).
  std::vector<std::string> lookup_apps, lookup_tasks;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const PendingEnqueue& p = batch[i];
    if (!refused[i] && !inserted.contains(p.delivery.id)) {
      lookup_apps.push_back(p.delivery.app_id);
      lookup_tasks.push_back(p.delivery.task_id);
    }
  }
  std::map<std::pair<std::string, std::string>, EnqueueReceipt> existing;
  if (!lookup_apps.empty()) {
    auto found = c.run("find existing deliveries", kFindByTasks,
                       {array_param(lookup_apps), array_param(lookup_tasks)});
    if (!found.ok()) return found.status();
    for (int r = 0; r < found->size(); ++r) {
      existing[{found->text(r, 0), found->text(r, 1)}] =
          EnqueueReceipt{found->text(r, 2), static_cast<DeliveryState>(found->int64(r, 3)), false};
    }
  }

  std::vector<Result<Enqueued>> results;
  results.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const NewDelivery& d = batch[i].delivery;
    if (refused[i]) {
      results.push_back(*refused[i]);
      continue;
    }
    if (auto it = inserted.find(d.id); it != inserted.end()) {
      const bool claimed = d.lease.has_value();
      Enqueued stored{{d.id, claimed ? DeliveryState::kInFlight : DeliveryState::kPending, true},
                      std::nullopt};
      if (claimed) stored.lease = LeaseToken{it->second, owner_, 1};
      results.emplace_back(std::move(stored));
      continue;
    }
    auto it = existing.find({d.app_id, d.task_id});
    if (it == existing.end()) {
      return Status::Internal("enqueue: task \"" + d.task_id + "\" neither stored nor found");
    }
    Enqueued found{it->second, std::nullopt};
    results.emplace_back(std::move(found));
  }
  return results;
}

Result<std::optional<EnqueueReceipt>> PostgresQueue::find_by_task(std::string_view app_id,
                                                                  std::string_view task_id) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows =
      c->run("find delivery by task", kFindByTask, {std::string(app_id), std::string(task_id)});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return std::optional<EnqueueReceipt>();
  return std::optional<EnqueueReceipt>(
      EnqueueReceipt{rows->text(0, 0), static_cast<DeliveryState>(rows->int64(0, 1)), false});
}

// --------------------------------------------------------------------- dispatch

Result<std::vector<ClaimedDelivery>> PostgresQueue::claim(const ClaimRequest& request) {
  std::vector<ClaimedDelivery> claimed;
  if (request.limit == 0) return claimed;
  auto borrowed = dispatch_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  const std::string limit = number(static_cast<std::int64_t>(request.limit));
  const std::string lease = number(request.lease.count());
  auto rows =
      request.only_host
          ? c->run("claim", request.first_handed_over ? kClaimFirstHandedOver : kClaimForHost,
                   {limit, lease, number(owner_), *request.only_host})
          : c->run("claim", kClaim,
                   {limit, lease, number(owner_), array_param(request.skip_hosts)});
  if (!rows.ok()) return rows.status();
  for (int r = 0; r < rows->size(); ++r) {
    ClaimedDelivery d;
    d.lease = LeaseToken{rows->int64(r, 0), owner_, rows->int64(r, 1)};
    d.id = rows->text(r, 2);
    d.app_id = rows->text(r, 3);
    d.task_id = rows->text(r, 4);
    d.callback_url = rows->text(r, 5);
    d.host_key = rows->text(r, 6);
    d.body = std::make_shared<const std::string>(rows->text(r, 7));
    d.attempts_made = static_cast<int>(rows->int64(r, 8));
    d.budget_used = static_cast<int>(rows->int64(r, 9));
    claimed.push_back(std::move(d));
  }
  return claimed;
}

Result<StaleTokens> PostgresQueue::renew(std::span<const LeaseToken> tokens, Millis lease) {
  if (tokens.empty()) return StaleTokens{};
  std::vector<std::int64_t> seqs, generations;
  for (const LeaseToken& t : tokens) {
    seqs.push_back(t.seq);
    generations.push_back(t.generation);
  }
  auto borrowed = lease_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows =
      c->run("renew leases", kRenew,
             {number(lease.count()), array_param(seqs), array_param(generations), number(owner_)});
  if (!rows.ok()) return rows.status();
  std::unordered_set<std::int64_t> live;
  for (int r = 0; r < rows->size(); ++r) live.insert(rows->int64(r, 0));
  StaleTokens stale;
  for (const LeaseToken& t : tokens) {
    // A token of another owner never matches here: stale by definition.
    if (t.owner != owner_ || !live.contains(t.seq)) stale.push_back(t);
  }
  return stale;
}

Result<StaleTokens> PostgresQueue::record(std::span<const AttemptRecord> records) {
  if (records.empty()) return StaleTokens{};
  std::vector<std::int64_t> seqs, owners, generations, states, after, numbers, ago, durations,
      statuses;
  std::vector<std::string> errors, details, heads;
  for (const AttemptRecord& r : records) {
    const Attempt& a = r.attempt;
    seqs.push_back(r.lease.seq);
    owners.push_back(r.lease.owner);
    generations.push_back(r.lease.generation);
    states.push_back(static_cast<int>(r.next_state));
    // Due retry_after after the attempt ended (and not before now).
    after.push_back(r.next_state == DeliveryState::kPending
                        ? std::max<std::int64_t>(0, r.retry_after.count() - r.ended_ago.count())
                        : 0);
    numbers.push_back(a.number);
    ago.push_back(r.started_ago.count());
    durations.push_back(a.duration.count());
    statuses.push_back(a.http_status);
    errors.emplace_back(to_string(a.error));
    // Text arrays cannot hold what is not UTF-8: the detail is curl's message, the head any
    // bytes, so it goes as hex.
    details.push_back(postgres::is_utf8(a.error_detail) ? a.error_detail : std::string());
    heads.push_back(postgres::hex(a.response_head));
  }
  auto borrowed = dispatch_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run(
      "record attempts", kRecordBatch,
      {array_param(seqs), array_param(owners), array_param(generations), array_param(states),
       array_param(after), array_param(numbers), array_param(ago), array_param(durations),
       array_param(statuses), array_param(errors), array_param(details), array_param(heads)});
  if (!rows.ok()) return rows.status();
  std::unordered_set<std::int64_t> stored;
  for (int r = 0; r < rows->size(); ++r) stored.insert(rows->int64(r, 0));
  StaleTokens stale;
  for (const AttemptRecord& r : records) {
    if (!stored.contains(r.lease.seq)) stale.push_back(r.lease);
  }
  return stale;
}

Result<StaleTokens> PostgresQueue::release(std::span<const LeaseToken> tokens, Millis delay) {
  if (tokens.empty()) return StaleTokens{};
  std::vector<std::int64_t> seqs, owners, generations;
  for (const LeaseToken& t : tokens) {
    seqs.push_back(t.seq);
    owners.push_back(t.owner);
    generations.push_back(t.generation);
  }
  auto borrowed = dispatch_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run(
      "release", kRelease,
      {number(delay.count()), array_param(seqs), array_param(owners), array_param(generations)});
  if (!rows.ok()) return rows.status();
  std::unordered_set<std::int64_t> released;
  for (int r = 0; r < rows->size(); ++r) released.insert(rows->int64(r, 0));
  if (delay == Millis(0) && !released.empty()) (void)notify_due(*c);  // the poll covers a miss
  StaleTokens stale;
  for (const LeaseToken& t : tokens) {
    if (!released.contains(t.seq)) stale.push_back(t);
  }
  return stale;
}

Result<std::size_t> PostgresQueue::recover_expired_leases(const LeaseRecovery& recovery) {
  auto borrowed = dispatch_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run(
      "recover leases", kRecover,
      {number(owner_), array_param(recovery.held),
       recovery.others_after ? std::optional<std::string>(number(recovery.others_after->count()))
                             : std::nullopt});
  if (!rows.ok()) return rows.status();
  if (rows->affected() > 0) (void)notify_due(*c);
  return static_cast<std::size_t>(rows->affected());
}

Result<std::optional<Millis>> PostgresQueue::next_due_in(
    const std::vector<std::string>& skip_hosts) {
  auto borrowed = dispatch_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("next due", kNextDue, {array_param(skip_hosts)});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0 || rows->is_null(0, 0)) return std::optional<Millis>();
  return std::optional<Millis>(Millis(rows->int64(0, 0)));
}

Result<Deferred> PostgresQueue::defer_host(const HostDeferral& request) {
  auto borrowed = dispatch_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  Deferred deferred;
  if (request.until) {
    deferred.until = *request.until;
  } else {
    auto until = c->run("due time", kDueIn, {number(request.delay.count())});
    if (!until.ok()) return until.status();
    deferred.until = from_unix_ms(until->int64(0, 0));
  }
  auto rows = c->run("defer host", kDeferHost,
                     {request.host_key, number(to_unix_ms(deferred.until)),
                      number(static_cast<std::int64_t>(request.limit)),
                      number(static_cast<std::int64_t>(request.keep_oldest))});
  if (!rows.ok()) return rows.status();
  deferred.moved = static_cast<std::size_t>(rows->affected());
  return deferred;
}

Result<std::size_t> PostgresQueue::prune_delivered(Millis age, std::size_t limit) {
  auto borrowed = dispatch_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("prune", kPruneDelivered,
                     {number(age.count()), number(static_cast<std::int64_t>(limit))});
  if (!rows.ok()) return rows.status();
  return static_cast<std::size_t>(rows->affected());
}

// --------------------------------------------------------------------- reads

Result<std::vector<Attempt>> PostgresQueue::attempts_of(Connection& c, std::int64_t seq) {
  auto rows = c.run("read attempts", kAttempts, {number(seq)});
  if (!rows.ok()) return rows.status();
  std::vector<Attempt> attempts;
  for (int r = 0; r < rows->size(); ++r) attempts.push_back(attempt_from_row(RowAt{*rows, r}));
  return attempts;
}

Result<Delivery> PostgresQueue::find_delivery(std::string_view delivery_id) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("find delivery", kDeliveryById, {std::string(delivery_id)});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) {
    return Status::NotFound("delivery \"" + std::string(delivery_id) + "\" does not exist");
  }
  Delivery delivery = delivery_from_row(RowAt{*rows, 0});
  auto attempts = attempts_of(*c, rows->int64(0, 0));
  if (!attempts.ok()) return attempts.status();
  delivery.attempts = std::move(*attempts);
  return delivery;
}

Result<DeliveryPage> PostgresQueue::list(const DeliveryFilter& filter) {
  std::int64_t after = 0;
  if (!filter.cursor.empty()) {
    auto parsed = parse_seq_cursor(filter.cursor);
    if (!parsed) {
      return Status::InvalidArgument("cursor: malformed; pass next_cursor back as given");
    }
    after = *parsed;
  }
  const std::size_t limit = filter.limit == 0 ? 50 : std::min<std::size_t>(filter.limit, 1000);
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  Params params{number(after),
                number(static_cast<std::int64_t>(limit + 1))};  // one more: a next page?
  if (filter.state) params.push_back(number(static_cast<int>(*filter.state)));
  if (filter.app_id) params.push_back(*filter.app_id);
  if (filter.task_id) params.push_back(*filter.task_id);
  auto rows =
      c->run("list deliveries",
             list_statement(filter.state.has_value(), filter.app_id.has_value(),
                            filter.task_id.has_value(), filter.state == DeliveryState::kInFlight),
             params);
  if (!rows.ok()) return rows.status();
  DeliveryPage page;
  const int shown = std::min(rows->size(), static_cast<int>(limit));
  std::vector<std::int64_t> seqs;
  for (int r = 0; r < shown; ++r) {
    page.items.push_back(delivery_from_row(RowAt{*rows, r}));
    seqs.push_back(rows->int64(r, 0));
  }
  if (rows->size() > shown) page.next_cursor = number(rows->int64(shown - 1, 0));
  if (seqs.empty()) return page;
  // Every attempt of the page in one query, ordered by delivery then number.
  auto attempts = c->run("read attempts", kAttemptsOfMany, {array_param(seqs)});
  if (!attempts.ok()) return attempts.status();
  std::size_t item = 0;
  for (int r = 0; r < attempts->size(); ++r) {
    const std::int64_t seq = attempts->int64(r, 7);
    while (item < seqs.size() && seqs[item] != seq) ++item;
    if (item == seqs.size()) break;  // cannot happen: both are in seq order
    page.items[item].attempts.push_back(attempt_from_row(RowAt{*attempts, r}));
  }
  return page;
}

Result<DeliveryCounts> PostgresQueue::count_by_state() {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("count deliveries", kCountByState);
  if (!rows.ok()) return rows.status();
  DeliveryCounts counts{};
  for (int r = 0; r < rows->size(); ++r) {
    const auto state = static_cast<std::size_t>(rows->int64(r, 0));
    if (state < counts.size()) counts[state] = static_cast<std::size_t>(rows->int64(r, 1));
  }
  return counts;
}

Result<std::vector<std::pair<std::string, std::size_t>>> PostgresQueue::count_unfinished_by_app() {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("count unfinished deliveries", kUnfinishedByApp);
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<std::string, std::size_t>> counts;
  for (int r = 0; r < rows->size(); ++r) {
    counts.emplace_back(rows->text(r, 0), static_cast<std::size_t>(rows->int64(r, 1)));
  }
  return counts;
}

Result<std::size_t> PostgresQueue::count_unfinished(std::string_view app_id, std::size_t at_most) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows = c->run("count an app's unfinished deliveries", kUnfinishedOfApp,
                     {std::string(app_id), number(static_cast<std::int64_t>(at_most))});
  if (!rows.ok()) return rows.status();
  std::size_t count = 0;
  for (int r = 0; r < rows->size(); ++r) count += static_cast<std::size_t>(rows->int64(r, 0));
  return count;
}

Result<std::size_t> PostgresQueue::count_pending_for_host(std::string_view host_key) {
  auto borrowed = api_pool_->borrow();
  if (!borrowed.ok()) return borrowed.status();
  auto& c = *borrowed;
  auto rows =
      c->run("count pending deliveries of a host", kPendingForHost, {std::string(host_key)});
  if (!rows.ok()) return rows.status();
  return static_cast<std::size_t>(rows->int64(0, 0));
}

Result<Delivery> PostgresQueue::redeliver(std::string_view delivery_id) {
  bool changed = false;
  {
    auto borrowed = api_pool_->borrow();
    if (!borrowed.ok()) return borrowed.status();
    auto& c = *borrowed;
    auto rows = c->run("redeliver", kRedeliver, {std::string(delivery_id)});
    if (!rows.ok()) return rows.status();
    changed = rows->affected() > 0;
    if (changed) (void)notify_due(*c);
  }
  Result<Delivery> delivery = find_delivery(delivery_id);
  if (!delivery.ok() || changed) return delivery;
  return Status::FailedPrecondition("delivery \"" + std::string(delivery_id) + "\" is " +
                                    std::string(to_string(delivery->state)) +
                                    "; only delivered or dead deliveries can be redelivered");
}

Result<RedeliverBatch> PostgresQueue::redeliver_matching(const RedeliverFilter& filter) {
  RedeliverBatch batch;
  Status s = transaction([&](Connection& c) -> Status {
    batch = RedeliverBatch{};
    auto now = c.run("read the time", kNowMs);
    if (!now.ok()) return now.status();
    auto range = redeliver_range(filter, now->int64(0, 0));
    if (!range.ok()) return range.status();
    Params params{number(static_cast<int>(filter.state)), number(range->since_ms),
                  number(range->until_ms), number(static_cast<std::int64_t>(filter.limit))};
    if (filter.app_id) params.push_back(*filter.app_id);
    const int with_app = filter.app_id ? 1 : 0;
    auto queued = c.run("redeliver matching", kRedeliverMatching[with_app], params);
    if (!queued.ok()) return queued.status();
    for (int r = 0; r < queued->size(); ++r) batch.app_ids.push_back(queued->text(r, 0));
    auto left = c.run("find more to redeliver", kMatchingLeft[with_app], params);
    if (!left.ok()) return left.status();
    if (left->size() > 0) batch.next_cursor = redeliver_cursor(*range);
    return batch.app_ids.empty() ? Status::Ok() : notify_due(c);
  });
  if (!s.ok()) return s;
  return batch;
}

}  // namespace callbackd
