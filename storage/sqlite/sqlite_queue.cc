#include "sqlite_queue.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>
#include <limits>

#include "../common/group_commit.h"
#include "../common/owner_id.h"
#include "../common/redeliver_range.h"
#include "../common/rows.h"
#include "integrity_check.h"
#include "schema.h"
#include "statements.h"

namespace callbackd {

using sqlite::Connection;
using sqlite::Statement;
using namespace sqlite::statements;

namespace {

// Rows per enqueue transaction at most, so one commit never holds the writer for long.
constexpr std::size_t kMaxBatch = 4096;

// The settings row check_writable() rewrites to learn whether the store takes writes again.
constexpr std::string_view kWriteProbeSetting = "write_probe";

// ["a","b"]: the endpoints a claim skips, for kClaim's json_each().
std::string skip_list(const std::vector<std::string>& hosts) {
  std::string list = "[";
  for (const std::string& host : hosts) {
    if (list.size() > 1) list += ',';
    list += '"';
    for (char ch : host) {
      if (ch == '"' || ch == '\\') list += '\\';
      list += ch;
    }
    list += '"';
  }
  return list + "]";
}

// "[1,2,…]": seqs for a json_each().
std::string seqs_json(std::span<const std::int64_t> seqs) {
  std::string json = "[";
  for (std::int64_t seq : seqs) {
    if (json.size() > 1) json += ',';
    json += std::to_string(seq);
  }
  return json + ']';
}

// "[[seq,gen],…]" for kRenew's json_each().
std::string tokens_json(std::span<const LeaseToken> tokens) {
  std::string json = "[";
  for (const LeaseToken& t : tokens) {
    if (json.size() > 1) json += ',';
    json += '[' + std::to_string(t.seq) + ',' + std::to_string(t.generation) + ']';
  }
  return json + ']';
}

// The data directory (0700) and the database file (0600) are created private: the file holds
// every callback body. SQLite gives its -wal and -shm files the database file's mode.
Status create_private_files(const std::filesystem::path& path) {
  const std::filesystem::path parent = path.parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent)) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return Status::Unavailable("create \"" + parent.string() + "\": " + ec.message());
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all, ec);
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status::Unavailable("create \"" + path.string() + "\": " + std::strerror(errno));
  ::close(fd);
  return Status::Ok();
}

}  // namespace

// --------------------------------------------------------------------- connections

struct SqliteQueue::PendingEnqueue {
  NewDelivery delivery;
  EnqueueDone done;
  Result<Enqueued> result = Status::Internal("enqueue not run");
};

// A read connection borrowed from the pool for one call.
class SqliteQueue::ReadLease {
 public:
  ReadLease(SqliteQueue& queue, std::unique_ptr<Connection> c)
      : queue_(queue), connection_(std::move(c)) {}
  ~ReadLease() {
    {
      std::lock_guard lock(queue_.readers_mutex_);
      queue_.idle_readers_.push_back(std::move(connection_));
    }
    queue_.reader_free_.notify_one();
  }
  ReadLease(ReadLease&&) = default;
  Connection& operator*() { return *connection_; }

 private:
  SqliteQueue& queue_;
  std::unique_ptr<Connection> connection_;
};

SqliteQueue::ReadLease SqliteQueue::read_connection() {
  std::unique_lock lock(readers_mutex_);
  reader_free_.wait(lock, [&] { return !idle_readers_.empty(); });
  auto connection = std::move(idle_readers_.back());
  idle_readers_.pop_back();
  return ReadLease(*this, std::move(connection));
}

SqliteQueue::SqliteQueue(SqliteQueueOptions options, std::unique_ptr<sqlite::FileLock> lock)
    : path_(options.path), clock_(options.clock), owner_(new_owner_id()), lock_(std::move(lock)) {}

Result<std::unique_ptr<SqliteQueue>> SqliteQueue::open(SqliteQueueOptions options) {
  if (options.path.empty()) return Status::InvalidArgument("path: empty");
  if (!options.clock) return Status::InvalidArgument("clock: must be set");
  const std::string path = options.path.string();
  const auto failed = [&](const Status& s) {
    return Status(s.code(), "store \"" + path + "\": " + s.message());
  };
  if (Status s = create_private_files(options.path); !s.ok()) return s;
  // Locked before anything is read: leases in the file belong to no live process after this.
  auto lock = sqlite::FileLock::acquire(path + ".lock");
  if (!lock.ok()) return failed(lock.status());

  std::unique_ptr<SqliteQueue> queue(new SqliteQueue(options, std::move(*lock)));
  auto writer = Connection::open(path, /*create=*/true);
  if (!writer.ok()) return writer.status();
  queue->writer_ = std::move(*writer);
  // Before anything is written: a damaged file must not take new callbacks.
  if (Status s = sqlite::check_integrity(*queue->writer_, path); !s.ok()) return failed(s);
  if (Status s = sqlite::configure_connection(*queue->writer_); !s.ok()) return failed(s);
  // Statement journals (each insert of an enqueue batch, a claim of many rows) and RETURNING
  // buffers stay in memory: past 64 KiB SQLite would move them to a temporary file, an inode
  // created and deleted per batch, and a failed write where no temporary directory is writable.
  // The writer's batches are bounded, so this memory is too.
  if (Status s = queue->writer_->exec("PRAGMA temp_store=MEMORY"); !s.ok()) return failed(s);
  if (Status s = sqlite::create_or_upgrade_schema(*queue->writer_); !s.ok()) return failed(s);
  // Before anything reads the clock: it continues from the last run's (store_clock.h).
  auto clock =
      sqlite::open_store_clock(*queue->writer_, options.clock,
                               options.boot_id.empty() ? sqlite::this_boot_id() : options.boot_id);
  if (!clock.ok()) return failed(clock.status());
  queue->clock_ = std::move(*clock);
  queue->clock_saved_ms_ = queue->clock_.now_ms();
  queue->clock_saved_at_open_ = true;
  if (Status s = queue->recover_all_leases(); !s.ok()) return failed(s);
  // The API's readers, and the dispatcher's one.
  for (std::size_t i = 0; i <= std::max<std::size_t>(1, options.read_connections); ++i) {
    auto reader = Connection::open(path, /*create=*/false);
    if (!reader.ok()) return reader.status();
    if (Status s = sqlite::configure_connection(**reader); !s.ok()) return failed(s);
    if (i == 0) {
      queue->dispatch_reader_ = std::move(*reader);
    } else {
      queue->idle_readers_.push_back(std::move(*reader));
    }
  }
  queue->commits_ = std::make_unique<GroupCommit<PendingEnqueue>>(
      "callbackd-enq", kMaxBatch,
      [q = queue.get()](std::vector<PendingEnqueue>& batch) { q->run_enqueue_batch(batch); });
  return queue;
}

SqliteQueue::~SqliteQueue() {
  commits_.reset();  // commits what is queued first
  // Where the clock got to, so the next boot's starts there at least. Should the write fail
  // (a full disk), the reading saved last still bounds that clock from below.
  if (clock_saved_at_open_) {
    std::lock_guard lock(write_mutex_);
    if (set_durability(Durability::kOnDisk).ok()) (void)sqlite::save_store_clock(*writer_, clock_);
  }
}

Result<std::unique_ptr<Queue>> open_sqlite_queue(SqliteQueueOptions options) {
  auto queue = SqliteQueue::open(std::move(options));
  if (!queue.ok()) return queue.status();
  return std::unique_ptr<Queue>(std::move(*queue));
}

Status SqliteQueue::set_durability(Durability durability) {
  if (durability == writer_durability_) return Status::Ok();
  Status s = writer_->exec(durability == Durability::kOnDisk ? "PRAGMA synchronous=FULL"
                                                             : "PRAGMA synchronous=NORMAL");
  if (s.ok()) writer_durability_ = durability;
  return s;
}

template <class Work>
Status SqliteQueue::write_transaction(Durability durability, Work&& work) {
  std::lock_guard lock(write_mutex_);
  const std::int64_t changes_before = writer_->total_changes();
  Status s = set_durability(durability);
  if (s.ok()) s = writer_->exec("BEGIN IMMEDIATE");
  if (s.ok()) {
    s = work(*writer_);
    // Now and then, in a transaction that writes anyway: the next boot's clock starts there.
    if (s.ok() && writer_->total_changes() > changes_before) {
      s = sqlite::save_store_clock_now_and_then(*writer_, clock_, clock_saved_ms_);
    }
    if (s.ok()) s = writer_->exec("COMMIT");
    if (!s.ok() && writer_->in_transaction()) (void)writer_->exec("ROLLBACK");
  }
  note_write_outcome(s, changes_before);
  return s;
}

void SqliteQueue::note_write_outcome(const Status& outcome, std::int64_t changes_before) {
  if (outcome.code() == StatusCode::kStorageUnavailable) {
    cannot_write_.store(true);
  } else if (outcome.ok() && writer_->total_changes() > changes_before) {
    // Only a commit that wrote something proves there is room: an empty claim writes nothing.
    cannot_write_.store(false);
  }
}

Status SqliteQueue::check_writable() {
  if (!cannot_write_.load()) return Status::Ok();
  // A real write of a few pages, committed like an enqueue: it needs room in the WAL (and the
  // database file, once checkpointed) just as a callback does.
  const std::string probe = std::to_string(clock_.now_ms()) + std::string(8192, 'p');
  return put_setting(kWriteProbeSetting, probe);
}

// --------------------------------------------------------------------- apps and settings

Status SqliteQueue::insert_app(const StoredApp& app) {
  return write_transaction(Durability::kOnDisk, [&](Connection& c) -> Status {
    auto exists = c.prepare(kAppExists);
    if (!exists.ok()) return exists.status();
    (*exists)->bind(1, app.app.id);
    if ((*exists)->step() == SQLITE_ROW) {
      return Status::InvalidArgument("app_id: \"" + app.app.id + "\" already exists");
    }
    auto insert = c.prepare(kInsertApp);
    if (!insert.ok()) return insert.status();
    (*insert)
        ->bind(1, app.app.id)
        .bind(2, app.app.name)
        .bind(3, static_cast<std::int64_t>(app.app.scheme));
    (*insert)->bind_blob(4, app.sealed_secret).bind_blob(5, app.sealed_previous_secret);
    if (app.previous_secret_until) {
      (*insert)->bind(6, to_unix_ms(*app.previous_secret_until));
    } else {
      (*insert)->bind_null(6);
    }
    (*insert)->bind(7, to_unix_ms(app.app.created_at));
    return (*insert)->run("insert app");
  });
}

Result<StoredApp> SqliteQueue::find_app(std::string_view app_id) {
  ReadLease lease = read_connection();
  auto row = (*lease).prepare(kFindApp);
  if (!row.ok()) return row.status();
  (*row)->bind(1, app_id);
  const int rc = (*row)->step();
  if (rc == SQLITE_DONE)
    return Status::NotFound("app \"" + std::string(app_id) + "\" does not exist");
  if (rc != SQLITE_ROW) return (*lease).error("find app");
  StoredApp app;
  app.app.id = (*row)->text(0);
  app.app.name = (*row)->text(1);
  app.app.scheme = static_cast<SignatureScheme>((*row)->int64(2));
  app.sealed_secret = (*row)->text(3);
  app.sealed_previous_secret = (*row)->text(4);
  if (!(*row)->is_null(5)) app.previous_secret_until = from_unix_ms((*row)->int64(5));
  app.app.created_at = from_unix_ms((*row)->int64(6));
  return app;
}

Result<AppPage> SqliteQueue::list_apps(std::size_t limit, std::string_view after_id) {
  ReadLease lease = read_connection();
  auto rows = (*lease).prepare(kListApps);
  if (!rows.ok()) return rows.status();
  (*rows)->bind(1, after_id).bind(2, static_cast<std::int64_t>(limit));
  AppPage page;
  int rc;
  while ((rc = (*rows)->step()) == SQLITE_ROW) {
    page.items.push_back(App{(*rows)->text(0), (*rows)->text(1),
                             static_cast<SignatureScheme>((*rows)->int64(2)),
                             from_unix_ms((*rows)->int64(3))});
  }
  if (rc != SQLITE_DONE) return (*lease).error("list apps");
  if (page.items.size() == limit) page.next_cursor = page.items.back().id;
  return page;
}

Status SqliteQueue::update_app_secrets(const StoredApp& app) {
  return write_transaction(Durability::kOnDisk, [&](Connection& c) -> Status {
    auto update = c.prepare(kUpdateAppSecrets);
    if (!update.ok()) return update.status();
    (*update)
        ->bind(1, app.app.id)
        .bind_blob(2, app.sealed_secret)
        .bind_blob(3, app.sealed_previous_secret);
    if (app.previous_secret_until) {
      (*update)->bind(4, to_unix_ms(*app.previous_secret_until));
    } else {
      (*update)->bind_null(4);
    }
    if (Status s = (*update)->run("update app secrets"); !s.ok()) return s;
    if (c.changes() == 0) return Status::NotFound("app \"" + app.app.id + "\" does not exist");
    return Status::Ok();
  });
}

Result<std::optional<std::string>> SqliteQueue::get_setting(std::string_view key) {
  ReadLease lease = read_connection();
  auto row = (*lease).prepare(kGetSetting);
  if (!row.ok()) return row.status();
  (*row)->bind(1, key);
  const int rc = (*row)->step();
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return (*lease).error("get setting");
  return std::optional<std::string>((*row)->text(0));
}

Status SqliteQueue::put_setting(std::string_view key, std::string_view value) {
  return write_transaction(Durability::kOnDisk, [&](Connection& c) -> Status {
    auto put = c.prepare(kPutSetting);
    if (!put.ok()) return put.status();
    (*put)->bind(1, key).bind_blob(2, value);
    return (*put)->run("put setting");
  });
}

// --------------------------------------------------------------------- enqueue (group commit)

void SqliteQueue::enqueue_async(NewDelivery delivery, EnqueueDone done) {
  commits_->submit(PendingEnqueue{std::move(delivery), std::move(done)});
}

void SqliteQueue::drain() { commits_->drain(); }

void SqliteQueue::run_enqueue_batch(std::vector<PendingEnqueue>& batch) {
  {
    std::lock_guard lock(write_mutex_);
    const std::int64_t changes_before = writer_->total_changes();
    const Status outcome = insert_batch(batch);
    note_write_outcome(outcome, changes_before);
    if (!outcome.ok()) {
      for (PendingEnqueue& p : batch) p.result = outcome;
    } else {
      enqueue_commits_.fetch_add(1, std::memory_order_relaxed);
      enqueued_rows_.fetch_add(batch.size(), std::memory_order_relaxed);
    }
  }
  for (PendingEnqueue& p : batch) p.done(std::move(p.result));
}

Status SqliteQueue::insert_batch(std::vector<PendingEnqueue>& batch) {
  if (Status s = set_durability(Durability::kOnDisk); !s.ok()) return s;
  if (Status s = writer_->exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  for (PendingEnqueue& p : batch) {
    p.result = insert_one(p.delivery);
    if (!p.result.ok() && !writer_->in_transaction()) {
      // SQLite rolled the whole transaction back (disk full, I/O error): nothing in this
      // batch is stored, so nobody in it may be told otherwise.
      return p.result.status();
    }
  }
  Status committed = writer_->exec("COMMIT");
  if (!committed.ok() && writer_->in_transaction()) (void)writer_->exec("ROLLBACK");
  return committed;
}

bool SqliteQueue::app_known(const std::string& app_id) {
  std::lock_guard lock(known_apps_mutex_);
  return known_apps_.contains(app_id);
}

Result<Enqueued> SqliteQueue::insert_one(const NewDelivery& d) {
  Connection& c = *writer_;
  if (!app_known(d.app_id)) {
    auto exists = c.prepare(kAppExists);
    if (!exists.ok()) return exists.status();
    (*exists)->bind(1, d.app_id);
    const int found = (*exists)->step();
    if (found == SQLITE_DONE) return Status::NotFound("app \"" + d.app_id + "\" does not exist");
    if (found != SQLITE_ROW) return c.error("find app");
    std::lock_guard lock(known_apps_mutex_);
    known_apps_.insert(d.app_id);
  }

  auto insert = c.prepare(kInsertDelivery);
  if (!insert.ok()) return insert.status();
  const bool claimed = d.lease.has_value();
  const std::int64_t now = clock_.now_ms();
  (*insert)->bind(1, d.id).bind(2, d.app_id).bind(3, d.task_id).bind(4, d.callback_url);
  (*insert)->bind(
      5, static_cast<std::int64_t>(claimed ? DeliveryState::kInFlight : DeliveryState::kPending));
  (*insert)->bind(6, claimed ? now + d.lease->count() : now);
  (*insert)->bind(7, to_unix_ms(d.created_at)).bind(8, d.host_key);
  (*insert)->bind(9, claimed ? owner_ : std::int64_t{0}).bind(10, std::int64_t{claimed ? 1 : 0});
  if (Status s = (*insert)->run("insert delivery"); !s.ok()) return s;
  if (c.changes() == 1) {
    const std::int64_t seq = c.last_insert_rowid();
    auto body = c.prepare(kInsertBody);
    if (!body.ok()) return body.status();
    (*body)->bind(1, seq).bind_blob(2, d.body ? std::string_view(*d.body) : std::string_view());
    if (Status s = (*body)->run("insert delivery body"); !s.ok()) return s;
    Enqueued stored{{d.id, claimed ? DeliveryState::kInFlight : DeliveryState::kPending, true},
                    std::nullopt};
    if (claimed) stored.lease = LeaseToken{seq, owner_, 1};
    return stored;
  }
  // The task was enqueued before: answer with that delivery, change nothing.
  auto existing = c.prepare(kFindByTask);
  if (!existing.ok()) return existing.status();
  (*existing)->bind(1, d.app_id).bind(2, d.task_id);
  if ((*existing)->step() != SQLITE_ROW) return c.error("find existing delivery");
  return Enqueued{{(*existing)->text(1), static_cast<DeliveryState>((*existing)->int64(2)), false},
                  std::nullopt};
}

Result<std::optional<EnqueueReceipt>> SqliteQueue::find_by_task(std::string_view app_id,
                                                                std::string_view task_id) {
  ReadLease lease = read_connection();
  auto row = (*lease).prepare(kFindByTask);
  if (!row.ok()) return row.status();
  (*row)->bind(1, app_id).bind(2, task_id);
  const int rc = (*row)->step();
  if (rc == SQLITE_DONE) return std::optional<EnqueueReceipt>();
  if (rc != SQLITE_ROW) return (*lease).error("find delivery by task");
  return std::optional<EnqueueReceipt>(
      EnqueueReceipt{(*row)->text(1), static_cast<DeliveryState>((*row)->int64(2)), false});
}

// --------------------------------------------------------------------- dispatch

Status SqliteQueue::recover_all_leases() {
  // The lock is ours, so whoever held these leases is gone: no need to wait them out.
  return write_transaction(Durability::kOnDisk, [&](Connection& c) -> Status {
    auto recover = c.prepare(kRecoverOthers);
    if (!recover.ok()) return recover.status();
    (*recover)->bind(1, clock_.now_ms()).bind(2, std::numeric_limits<std::int64_t>::max());
    (*recover)->bind(3, owner_);
    if (Status s = (*recover)->run("recover leases"); !s.ok()) return s;
    recovered_at_open_ = static_cast<std::size_t>(c.changes());
    return Status::Ok();
  });
}

Result<std::vector<ClaimedDelivery>> SqliteQueue::claim(const ClaimRequest& request) {
  std::vector<ClaimedDelivery> claimed;
  if (request.limit == 0) return claimed;
  const std::string skip = skip_list(request.skip_hosts);
  Status s = write_transaction(Durability::kCrashSafe, [&](Connection& c) -> Status {
    claimed.clear();
    auto rows = c.prepare(!request.only_host          ? kClaim
                          : request.first_handed_over ? kClaimFirstHandedOver
                                                      : kClaimForHost);
    if (!rows.ok()) return rows.status();
    const std::int64_t now = clock_.now_ms();
    (*rows)
        ->bind(1, now)
        .bind(2, static_cast<std::int64_t>(request.limit))
        .bind(3, now + request.lease.count())
        .bind(4, owner_)
        .bind(5, request.only_host ? *request.only_host : skip);
    int rc;
    while ((rc = (*rows)->step()) == SQLITE_ROW) {
      ClaimedDelivery d;
      d.lease = LeaseToken{(*rows)->int64(0), owner_, (*rows)->int64(1)};
      d.id = (*rows)->text(2);
      d.app_id = (*rows)->text(3);
      d.task_id = (*rows)->text(4);
      d.callback_url = (*rows)->text(5);
      d.host_key = (*rows)->text(6);
      d.attempts_made = static_cast<int>((*rows)->int64(7));
      d.budget_used = static_cast<int>((*rows)->int64(8));
      claimed.push_back(std::move(d));
    }
    if (rc != SQLITE_DONE) return c.error("claim");
    for (ClaimedDelivery& d : claimed) {
      auto body = c.prepare(kBody);
      if (!body.ok()) return body.status();
      (*body)->bind(1, d.lease.seq);
      const int found = (*body)->step();
      if (found == SQLITE_DONE) {
        return Status::Internal("delivery " + d.id + " has no body in delivery_bodies");
      }
      if (found != SQLITE_ROW) return c.error("read claimed body");
      d.body = std::make_shared<const std::string>((*body)->text(0));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return claimed;
}

Result<StaleTokens> SqliteQueue::renew(std::span<const LeaseToken> tokens, Millis lease) {
  if (tokens.empty()) return StaleTokens{};
  std::unordered_set<std::int64_t> live;
  Status s = write_transaction(Durability::kCrashSafe, [&](Connection& c) -> Status {
    auto rows = c.prepare(kRenew);
    if (!rows.ok()) return rows.status();
    (*rows)->bind(1, clock_.now_ms() + lease.count()).bind(2, owner_).bind(3, tokens_json(tokens));
    int rc;
    while ((rc = (*rows)->step()) == SQLITE_ROW) live.insert((*rows)->int64(0));
    return rc == SQLITE_DONE ? Status::Ok() : c.error("renew leases");
  });
  if (!s.ok()) return s;
  StaleTokens stale;
  for (const LeaseToken& t : tokens) {
    // A token of another owner never matches here: stale by definition.
    if (t.owner != owner_ || !live.contains(t.seq)) stale.push_back(t);
  }
  return stale;
}

Result<StaleTokens> SqliteQueue::record(std::span<const AttemptRecord> records) {
  StaleTokens stale;
  if (records.empty()) return stale;
  Status s = write_transaction(Durability::kCrashSafe, [&](Connection& c) -> Status {
    stale.clear();  // a retried transaction starts over
    const std::int64_t now = clock_.now_ms();
    for (const AttemptRecord& r : records) {
      auto finish = c.prepare(kFinishAttempt);
      if (!finish.ok()) return finish.status();
      const std::int64_t due =
          r.next_state == DeliveryState::kPending
              ? std::max(now, now - r.ended_ago.count() + r.retry_after.count())
              : now;
      (*finish)->bind(1, r.lease.seq).bind(2, static_cast<std::int64_t>(r.next_state));
      (*finish)->bind(3, due).bind(4, r.attempt.number);
      (*finish)->bind(5, r.lease.owner).bind(6, r.lease.generation);
      if (Status s = (*finish)->run("finish attempt"); !s.ok()) return s;
      if (c.changes() == 0) {
        auto already = c.prepare(kRecordedAlready);
        if (!already.ok()) return already.status();
        (*already)->bind(1, r.lease.seq).bind(2, r.lease.owner).bind(3, r.lease.generation);
        (*already)->bind(4, r.attempt.number);
        const int found = (*already)->step();
        if (found != SQLITE_ROW && found != SQLITE_DONE) return c.error("look up a record");
        // Stored before (a repeat after a lost answer), or the lease ended and someone else
        // claimed the delivery: only the second is stale.
        if (found == SQLITE_DONE) stale.push_back(r.lease);
        continue;
      }
      auto insert = c.prepare(kInsertAttempt);
      if (!insert.ok()) return insert.status();
      const Attempt& a = r.attempt;
      (*insert)->bind(1, r.lease.seq).bind(2, a.number).bind(3, to_unix_ms(a.started_at));
      (*insert)->bind(4, a.duration.count()).bind(5, a.http_status).bind(6, to_string(a.error));
      (*insert)->bind(7, a.error_detail).bind_blob(8, a.response_head);
      if (Status s = (*insert)->run("insert attempt"); !s.ok()) return s;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return stale;
}

Result<StaleTokens> SqliteQueue::release(std::span<const LeaseToken> tokens, Millis delay) {
  StaleTokens stale;
  if (tokens.empty()) return stale;
  Status s = write_transaction(Durability::kCrashSafe, [&](Connection& c) -> Status {
    stale.clear();
    const std::int64_t due = clock_.now_ms() + delay.count();
    for (const LeaseToken& t : tokens) {
      auto release = c.prepare(kRelease);
      if (!release.ok()) return release.status();
      (*release)->bind(1, t.seq).bind(2, due).bind(3, t.owner).bind(4, t.generation);
      if (Status s = (*release)->run("release"); !s.ok()) return s;
      if (c.changes() > 0) continue;
      auto already = c.prepare(kReleasedAlready);
      if (!already.ok()) return already.status();
      (*already)->bind(1, t.seq).bind(2, t.owner).bind(3, t.generation);
      const int found = (*already)->step();
      if (found != SQLITE_ROW && found != SQLITE_DONE) return c.error("look up a release");
      if (found == SQLITE_DONE) stale.push_back(t);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return stale;
}

Result<Deferred> SqliteQueue::defer_host(const HostDeferral& request) {
  const std::int64_t until =
      request.until ? to_unix_ms(*request.until) : clock_.now_ms() + request.delay.count();
  Deferred deferred{0, from_unix_ms(until)};
  Status s = write_transaction(Durability::kCrashSafe, [&](Connection& c) -> Status {
    auto defer = c.prepare(kDeferHost);
    if (!defer.ok()) return defer.status();
    (*defer)->bind(1, request.host_key).bind(2, until);
    (*defer)->bind(3, static_cast<std::int64_t>(request.limit));
    (*defer)->bind(4, static_cast<std::int64_t>(request.keep_oldest));
    if (Status s = (*defer)->run("defer host"); !s.ok()) return s;
    deferred.moved = static_cast<std::size_t>(c.changes());
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return deferred;
}

Result<std::size_t> SqliteQueue::recover_expired_leases(const LeaseRecovery& recovery) {
  std::size_t recovered = 0;
  const std::string held = seqs_json(recovery.held);
  Status s = write_transaction(Durability::kCrashSafe, [&](Connection& c) -> Status {
    recovered = 0;
    const std::int64_t now = clock_.now_ms();
    auto own = c.prepare(kRecoverOwn);
    if (!own.ok()) return own.status();
    (*own)->bind(1, now).bind(2, owner_).bind(3, held);
    if (Status s = (*own)->run("recover own leases"); !s.ok()) return s;
    recovered += static_cast<std::size_t>(c.changes());
    if (!recovery.others_after) return Status::Ok();
    auto others = c.prepare(kRecoverOthers);
    if (!others.ok()) return others.status();
    (*others)->bind(1, now).bind(2, now - recovery.others_after->count()).bind(3, owner_);
    if (Status s = (*others)->run("recover leases"); !s.ok()) return s;
    recovered += static_cast<std::size_t>(c.changes());
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return recovered;
}

Result<std::optional<Millis>> SqliteQueue::next_due_in(const std::vector<std::string>& skip_hosts) {
  // The dispatcher's own reader: a console busy with listings never delays it.
  std::lock_guard lock(dispatch_reader_mutex_);
  Connection& c = *dispatch_reader_;
  auto row = c.prepare(kNextDue);
  if (!row.ok()) return row.status();
  (*row)->bind(1, skip_list(skip_hosts));
  const int rc = (*row)->step();
  if (rc == SQLITE_DONE) return std::optional<Millis>();
  if (rc != SQLITE_ROW) return c.error("next due");
  const std::int64_t wait = (*row)->int64(0) - clock_.now_ms();
  return std::optional<Millis>(Millis(std::max<std::int64_t>(0, wait)));
}

Result<std::size_t> SqliteQueue::prune_delivered(Millis age, std::size_t limit) {
  std::size_t pruned = 0;
  Status s = write_transaction(Durability::kCrashSafe, [&](Connection& c) -> Status {
    std::vector<std::int64_t> seqs;
    {
      auto old = c.prepare(kOldDelivered);
      if (!old.ok()) return old.status();
      (*old)->bind(1, clock_.now_ms() - age.count()).bind(2, static_cast<std::int64_t>(limit));
      int rc;
      while ((rc = (*old)->step()) == SQLITE_ROW) seqs.push_back((*old)->int64(0));
      if (rc != SQLITE_DONE) return c.error("find old deliveries");
    }
    for (std::int64_t seq : seqs) {
      for (const char* sql : {kDeleteAttempts, kDeleteBody, kDeleteDelivery}) {
        auto del = c.prepare(sql);
        if (!del.ok()) return del.status();
        (*del)->bind(1, seq);
        if (Status s = (*del)->run("prune"); !s.ok()) return s;
      }
    }
    pruned = seqs.size();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return pruned;
}

// --------------------------------------------------------------------- reads

Result<std::vector<Attempt>> SqliteQueue::attempts_of(Connection& c, std::int64_t seq) {
  auto rows = c.prepare(kAttempts);
  if (!rows.ok()) return rows.status();
  (*rows)->bind(1, seq);
  std::vector<Attempt> attempts;
  int rc;
  while ((rc = (*rows)->step()) == SQLITE_ROW) attempts.push_back(attempt_from_row(**rows));
  if (rc != SQLITE_DONE) return c.error("read attempts");
  return attempts;
}

Result<Delivery> SqliteQueue::find_delivery(std::string_view delivery_id) {
  ReadLease lease = read_connection();
  Connection& c = *lease;
  std::int64_t seq = 0;
  Delivery delivery;
  {
    auto row = c.prepare(kDeliveryById);
    if (!row.ok()) return row.status();
    (*row)->bind(1, delivery_id);
    const int rc = (*row)->step();
    if (rc == SQLITE_DONE) {
      return Status::NotFound("delivery \"" + std::string(delivery_id) + "\" does not exist");
    }
    if (rc != SQLITE_ROW) return c.error("find delivery");
    seq = (*row)->int64(0);
    delivery = delivery_from_row(**row);
  }
  auto attempts = attempts_of(c, seq);
  if (!attempts.ok()) return attempts.status();
  delivery.attempts = std::move(*attempts);
  return delivery;
}

Result<DeliveryPage> SqliteQueue::list(const DeliveryFilter& filter) {
  std::int64_t after = 0;
  if (!filter.cursor.empty()) {
    auto parsed = parse_seq_cursor(filter.cursor);
    if (!parsed)
      return Status::InvalidArgument("cursor: malformed; pass next_cursor back as given");
    after = *parsed;
  }
  const std::size_t limit = filter.limit == 0 ? 50 : std::min<std::size_t>(filter.limit, 1000);

  ReadLease lease = read_connection();
  Connection& c = *lease;
  DeliveryPage page;
  std::vector<std::int64_t> seqs;
  {
    auto rows = c.prepare(
        kList[list_index(filter.state.has_value(), filter.app_id.has_value(),
                         filter.task_id.has_value(), filter.state == DeliveryState::kInFlight)]);
    if (!rows.ok()) return rows.status();
    (*rows)->bind(1, after);
    if (filter.state) (*rows)->bind(3, static_cast<std::int64_t>(*filter.state));
    if (filter.app_id) (*rows)->bind(4, *filter.app_id);
    if (filter.task_id) (*rows)->bind(5, *filter.task_id);
    // One extra row tells whether another page follows.
    (*rows)->bind(2, static_cast<std::int64_t>(limit + 1));
    int rc;
    while ((rc = (*rows)->step()) == SQLITE_ROW) {
      seqs.push_back((*rows)->int64(0));
      page.items.push_back(delivery_from_row(**rows));
    }
    if (rc != SQLITE_DONE) return c.error("list deliveries");
  }
  if (page.items.size() > limit) {
    page.items.pop_back();
    seqs.pop_back();
    page.next_cursor = std::to_string(seqs.back());
  }
  if (page.items.empty()) return page;
  // Every attempt of the page in one query, ordered by delivery then number.
  auto rows = c.prepare(kAttemptsOfMany);
  if (!rows.ok()) return rows.status();
  (*rows)->bind(1, seqs_json(seqs));
  std::size_t item = 0;
  int rc;
  while ((rc = (*rows)->step()) == SQLITE_ROW) {
    const std::int64_t seq = (*rows)->int64(7);
    while (item < seqs.size() && seqs[item] != seq) ++item;
    if (item == seqs.size()) break;  // cannot happen: seqs and the rows share one order
    page.items[item].attempts.push_back(attempt_from_row(**rows));
  }
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return c.error("read attempts");
  return page;
}

Result<DeliveryCounts> SqliteQueue::count_by_state() {
  ReadLease lease = read_connection();
  auto rows = (*lease).prepare(kCountByState);
  if (!rows.ok()) return rows.status();
  DeliveryCounts counts{};
  int rc;
  while ((rc = (*rows)->step()) == SQLITE_ROW) {
    const auto state = static_cast<std::size_t>((*rows)->int64(0));
    if (state < counts.size()) counts[state] = static_cast<std::size_t>((*rows)->int64(1));
  }
  if (rc != SQLITE_DONE) return (*lease).error("count deliveries");
  return counts;
}

Result<std::vector<std::pair<std::string, std::size_t>>> SqliteQueue::count_unfinished_by_app() {
  ReadLease lease = read_connection();
  auto rows = (*lease).prepare(kUnfinishedByApp);
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<std::string, std::size_t>> counts;
  int rc;
  while ((rc = (*rows)->step()) == SQLITE_ROW) {
    counts.emplace_back((*rows)->text(0), static_cast<std::size_t>((*rows)->int64(1)));
  }
  if (rc != SQLITE_DONE) return (*lease).error("count unfinished deliveries");
  return counts;
}

Result<std::size_t> SqliteQueue::count_unfinished(std::string_view app_id, std::size_t at_most) {
  ReadLease lease = read_connection();
  auto row = (*lease).prepare(kUnfinishedOfApp);
  if (!row.ok()) return row.status();
  (*row)->bind(1, app_id).bind(2, static_cast<std::int64_t>(at_most));
  if ((*row)->step() != SQLITE_ROW) return (*lease).error("count an app's unfinished deliveries");
  return static_cast<std::size_t>((*row)->int64(0));
}

Result<std::size_t> SqliteQueue::count_pending_for_host(std::string_view host_key) {
  ReadLease lease = read_connection();
  auto rows = (*lease).prepare(kPendingForHost);
  if (!rows.ok()) return rows.status();
  (*rows)->bind(1, host_key);
  if ((*rows)->step() != SQLITE_ROW) return (*lease).error("count pending deliveries of a host");
  return static_cast<std::size_t>((*rows)->int64(0));
}

Result<Delivery> SqliteQueue::redeliver(std::string_view delivery_id) {
  bool changed = false;
  Status s = write_transaction(Durability::kOnDisk, [&](Connection& c) -> Status {
    auto update = c.prepare(kRedeliver);
    if (!update.ok()) return update.status();
    (*update)->bind(1, delivery_id).bind(2, clock_.now_ms());
    if (Status s = (*update)->run("redeliver"); !s.ok()) return s;
    changed = c.changes() > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  Result<Delivery> delivery = find_delivery(delivery_id);
  if (!delivery.ok() || changed) return delivery;
  return Status::FailedPrecondition("delivery \"" + std::string(delivery_id) + "\" is " +
                                    std::string(to_string(delivery->state)) +
                                    "; only delivered or dead deliveries can be redelivered");
}

Result<RedeliverBatch> SqliteQueue::redeliver_matching(const RedeliverFilter& filter) {
  auto range = redeliver_range(filter, clock_.now_ms());
  if (!range.ok()) return range.status();
  const int with_app = filter.app_id ? 1 : 0;
  RedeliverBatch batch;
  Status s = write_transaction(Durability::kOnDisk, [&](Connection& c) -> Status {
    batch = RedeliverBatch{};  // a retried transaction starts over
    for (const char* sql : {kRedeliverMatching[with_app], kMatchingLeft[with_app]}) {
      auto rows = c.prepare(sql);
      if (!rows.ok()) return rows.status();
      (*rows)->bind(1, clock_.now_ms()).bind(2, static_cast<std::int64_t>(filter.state));
      (*rows)->bind(3, range->since_ms).bind(4, range->until_ms);
      (*rows)->bind(5, static_cast<std::int64_t>(filter.limit));
      if (filter.app_id) (*rows)->bind(6, *filter.app_id);
      int rc;
      while ((rc = (*rows)->step()) == SQLITE_ROW) {
        if (sql == kMatchingLeft[with_app]) {
          batch.next_cursor = redeliver_cursor(*range);
        } else {
          batch.app_ids.push_back((*rows)->text(0));
        }
      }
      if (rc != SQLITE_DONE) return c.error("redeliver matching");
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return batch;
}

}  // namespace callbackd
