// The Queue on PostgreSQL (see callbackd/postgres_store.h for what it promises).
#pragma once

#include <callbackd/postgres_store.h>

#include <atomic>
#include <memory>
#include <unordered_set>

#include "../common/group_commit.h"
#include "pg_listener.h"
#include "pg_pool.h"

namespace callbackd {

class PostgresQueue final : public Queue, public SchedulingHints {
 public:
  static Result<std::unique_ptr<PostgresQueue>> open(PostgresQueueOptions options);
  ~PostgresQueue() override;

  std::string describe() const override { return description_; }

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
  void on_due_elsewhere(std::function<void()> wake) override;
  Status check_writable() override;
  QueueStats stats() const override {
    // The group-commit connection counts too, always "in use" by its thread.
    return {"postgres", api_pool_->size() + dispatch_pool_->size() + lease_pool_->size() + 1,
            api_pool_->in_use() + dispatch_pool_->in_use() + lease_pool_->in_use() + 1};
  }

  std::int64_t owner() const { return owner_; }

 private:
  struct PendingEnqueue {
    NewDelivery delivery;
    EnqueueDone done;
  };

  PostgresQueue() = default;
  // Runs `work` in one transaction on a pooled connection; rolls back on failure.
  template <class Work>
  Status transaction(Work&& work);
  void run_enqueue_batch(std::vector<PendingEnqueue>& batch);
  Result<std::vector<Result<Enqueued>>> insert_batch(postgres::Connection& c,
                                                     const std::vector<PendingEnqueue>& batch);
  // After a COMMIT whose answer was lost: whether the batch's new rows are there.
  Result<bool> committed_after_all(const std::vector<PendingEnqueue>& batch,
                                   const std::vector<Result<Enqueued>>& results);
  Result<std::vector<Attempt>> attempts_of(postgres::Connection& c, std::int64_t seq);
  // Tells the other processes that work is due now (delivered when `c`'s transaction commits).
  Status notify_due(postgres::Connection& c);

  std::string description_;
  std::int64_t owner_ = 0;
  std::unique_ptr<postgres::Pool> api_pool_;       // apps, settings, reads, operator actions
  std::unique_ptr<postgres::Pool> dispatch_pool_;  // claims, records, releases, recovery
  std::unique_ptr<postgres::Pool> lease_pool_;     // renewals, first in line: one of their own
  std::unique_ptr<postgres::Connection> enqueue_connection_;  // the group-commit thread's
  std::unique_ptr<postgres::Listener> listener_;
  // The group-commit thread's own: apps known to exist, and the session its staging table is in.
  std::unordered_set<std::string> known_apps_;
  std::uint64_t staging_session_ = 0;
  std::unique_ptr<GroupCommit<PendingEnqueue>> commits_;  // last: stopped first
};

}  // namespace callbackd
