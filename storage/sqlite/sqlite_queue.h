// The embedded store: one SQLite file in WAL mode with synchronous=FULL. One writer
// connection serializes every write; enqueues arriving together share one transaction and one
// fsync (group commit); reads run on a small pool of read connections beside the writer.
#pragma once

#include <callbackd/queue.h>
#include <callbackd/sqlite_store.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "../common/group_commit.h"
#include "file_lock.h"
#include "sqlite_handle.h"
#include "store_clock.h"

namespace callbackd {

class SqliteQueue final : public Queue, public SchedulingHints {
 public:
  static Result<std::unique_ptr<SqliteQueue>> open(SqliteQueueOptions options);
  ~SqliteQueue() override;  // commits what is queued, then stops the commit thread

  std::string describe() const override { return "sqlite:" + path_.string(); }

  Status insert_app(const StoredApp& app) override;
  Result<StoredApp> find_app(std::string_view app_id) override;
  Status update_app_secrets(const StoredApp& app) override;
  Result<AppPage> list_apps(std::size_t limit, std::string_view after_id) override;

  void enqueue_async(NewDelivery delivery, EnqueueDone done) override;
  void drain() override;
  SchedulingHints* scheduling_hints() override { return this; }
  Result<std::optional<EnqueueReceipt>> find_by_task(std::string_view app_id,
                                                     std::string_view task_id) override;

  Result<std::vector<ClaimedDelivery>> claim(const ClaimRequest& request) override;
  Result<StaleTokens> renew(std::span<const LeaseToken> tokens, Millis lease) override;
  Result<StaleTokens> record(std::span<const AttemptRecord> records) override;
  Result<StaleTokens> release(std::span<const LeaseToken> tokens, Millis delay) override;
  Result<Deferred> defer_host(const HostDeferral& request) override;
  Result<std::size_t> recover_expired_leases(const LeaseRecovery& recovery) override;
  Result<std::optional<Millis>> next_due_in(const std::vector<std::string>& skip_hosts) override;
  Result<std::size_t> prune_delivered(Millis age, std::size_t limit) override;
  // One process per store: nothing is ever due elsewhere.
  void on_due_elsewhere(std::function<void()>) override {}

  Result<std::optional<std::string>> get_setting(std::string_view key) override;
  Status put_setting(std::string_view key, std::string_view value) override;

  Result<Delivery> find_delivery(std::string_view delivery_id) override;
  Result<DeliveryPage> list(const DeliveryFilter& filter) override;
  Result<DeliveryCounts> count_by_state() override;
  Result<std::vector<std::pair<std::string, std::size_t>>> count_unfinished_by_app() override;
  Result<std::size_t> count_unfinished(std::string_view app_id, std::size_t at_most) override;
  Result<std::size_t> count_pending_for_host(std::string_view host_key) override;
  Result<Delivery> redeliver(std::string_view delivery_id) override;
  Result<RedeliverBatch> redeliver_matching(const RedeliverFilter& filter) override;
  QueueStats stats() const override { return {"sqlite", 0, 0}; }
  Status check_writable() override;

  // Commits of enqueue batches so far, and rows they carried: rows/commits is the group size.
  std::uint64_t enqueue_commits() const { return enqueue_commits_.load(); }
  std::uint64_t enqueued_rows() const { return enqueued_rows_.load(); }
  // The owner written into this queue's lease tokens.
  std::int64_t owner() const { return owner_; }
  // Deliveries found in flight at open (left by a process that died) and made pending.
  std::size_t recovered_at_open() const { return recovered_at_open_; }
  // The store's clock (store_clock.h), which every stored due time is measured on.
  TimePoint store_now() const { return clock_.now(); }

 private:
  struct PendingEnqueue;
  class ReadLease;

  // How a write transaction commits. An enqueue is acknowledged only once it is on disk
  // (synchronous=FULL). Claims, attempt records and releases commit with synchronous=NORMAL
  // (WAL: safe against a process crash, not fsynced): a power cut can undo one, which only
  // repeats an attempt, never loses a callback — and the next FULL commit makes them durable.
  enum class Durability { kOnDisk, kCrashSafe };

  SqliteQueue(SqliteQueueOptions options, std::unique_ptr<sqlite::FileLock> lock);
  // Runs `work` inside BEGIN IMMEDIATE … COMMIT on the writer, rolling back if it fails.
  template <class Work>
  Status write_transaction(Durability durability, Work&& work);
  Status set_durability(Durability durability);  // REQUIRES: write_mutex_ held
  // Remembers whether writes fail for want of space or with I/O errors (for check_writable).
  // A commit that changed rows shows the store takes writes again. REQUIRES: write_mutex_ held.
  void note_write_outcome(const Status& outcome, std::int64_t changes_before);
  Status recover_all_leases();
  void run_enqueue_batch(std::vector<PendingEnqueue>& batch);
  // One transaction for the batch; each row's result is set. REQUIRES: write_mutex_ held.
  Status insert_batch(std::vector<PendingEnqueue>& batch);
  Result<Enqueued> insert_one(const NewDelivery& delivery);
  bool app_known(const std::string& app_id);
  ReadLease read_connection();
  Result<std::vector<Attempt>> attempts_of(sqlite::Connection& c, std::int64_t seq);

  const std::filesystem::path path_;
  sqlite::StoreClock clock_;  // set once in open(), before any other thread sees the queue
  bool clock_saved_at_open_ = false;
  std::int64_t clock_saved_ms_ = 0;  // the store time last saved; under write_mutex_
  const std::int64_t owner_;
  std::unique_ptr<sqlite::FileLock> lock_;
  std::size_t recovered_at_open_ = 0;

  std::mutex write_mutex_;
  std::unique_ptr<sqlite::Connection> writer_;
  Durability writer_durability_ = Durability::kOnDisk;  // configure_connection sets FULL
  std::atomic<bool> cannot_write_{false};  // the last write that mattered failed: disk full, I/O

  // Enqueue commits so far (commits_ runs them), and the rows they carried.
  std::atomic<std::uint64_t> enqueue_commits_{0};
  std::atomic<std::uint64_t> enqueued_rows_{0};

  // Apps seen to exist (apps are never deleted), so enqueue need not look each one up.
  std::mutex known_apps_mutex_;
  std::unordered_set<std::string> known_apps_;

  // The API's readers...
  std::mutex readers_mutex_;
  std::condition_variable reader_free_;
  std::vector<std::unique_ptr<sqlite::Connection>> idle_readers_;
  // ...and the dispatcher's, apart.
  std::mutex dispatch_reader_mutex_;
  std::unique_ptr<sqlite::Connection> dispatch_reader_;

  // Group commit: enqueues gather here; one thread takes everything gathered into one
  // transaction while what arrives meanwhile gathers for the next one. Last: its thread
  // commits through everything above.
  std::unique_ptr<GroupCommit<PendingEnqueue>> commits_;
};

}  // namespace callbackd
