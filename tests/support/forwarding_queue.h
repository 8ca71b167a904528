// A Queue that passes every call to a real one. Tests derive from it to step in at one call
// (hold a read back, observe an order) while the store underneath stays real.
#pragma once

#include <callbackd/queue.h>

#include <memory>

namespace callbackd::testing {

class ForwardingQueue : public Queue, public SchedulingHints {
 public:
  explicit ForwardingQueue(std::unique_ptr<Queue> inner) : inner_(std::move(inner)) {}

  std::string describe() const override { return inner_->describe(); }
  Status insert_app(const StoredApp& app) override { return inner_->insert_app(app); }
  Result<StoredApp> find_app(std::string_view app_id) override { return inner_->find_app(app_id); }
  Status update_app_secrets(const StoredApp& app) override {
    return inner_->update_app_secrets(app);
  }
  Result<AppPage> list_apps(std::size_t limit, std::string_view after_id) override {
    return inner_->list_apps(limit, after_id);
  }
  void enqueue_async(NewDelivery d, EnqueueDone done) override {
    inner_->enqueue_async(std::move(d), std::move(done));
  }
  void drain() override { inner_->drain(); }
  Result<std::optional<EnqueueReceipt>> find_by_task(std::string_view app_id,
                                                     std::string_view task_id) override {
    return inner_->find_by_task(app_id, task_id);
  }
  Result<std::vector<ClaimedDelivery>> claim(const ClaimRequest& request) override {
    return inner_->claim(request);
  }
  Result<StaleTokens> renew(std::span<const LeaseToken> tokens, Millis lease) override {
    return inner_->renew(tokens, lease);
  }
  Result<StaleTokens> record(std::span<const AttemptRecord> records) override {
    return inner_->record(records);
  }
  Result<StaleTokens> release(std::span<const LeaseToken> tokens, Millis delay) override {
    return inner_->release(tokens, delay);
  }
  // The inner store's hints, if it has them, through this queue (so a derived one can step in).
  SchedulingHints* scheduling_hints() override {
    return inner_->scheduling_hints() ? this : nullptr;
  }
  Result<Deferred> defer_host(const HostDeferral& request) override {
    return inner_->scheduling_hints()->defer_host(request);
  }
  Result<std::size_t> recover_expired_leases(const LeaseRecovery& recovery) override {
    return inner_->recover_expired_leases(recovery);
  }
  Result<std::optional<Millis>> next_due_in(const std::vector<std::string>& skip_hosts) override {
    return inner_->scheduling_hints()->next_due_in(skip_hosts);
  }
  Result<std::size_t> prune_delivered(Millis age, std::size_t limit) override {
    return inner_->prune_delivered(age, limit);
  }
  Result<std::optional<std::string>> get_setting(std::string_view key) override {
    return inner_->get_setting(key);
  }
  Status put_setting(std::string_view key, std::string_view value) override {
    return inner_->put_setting(key, value);
  }
  Result<Delivery> find_delivery(std::string_view id) override { return inner_->find_delivery(id); }
  Result<DeliveryPage> list(const DeliveryFilter& filter) override { return inner_->list(filter); }
  Result<DeliveryCounts> count_by_state() override { return inner_->count_by_state(); }
  Result<std::size_t> count_pending_for_host(std::string_view host_key) override {
    return inner_->count_pending_for_host(host_key);
  }
  Result<std::vector<std::pair<std::string, std::size_t>>> count_unfinished_by_app() override {
    return inner_->count_unfinished_by_app();
  }
  Result<std::size_t> count_unfinished(std::string_view app_id, std::size_t at_most) override {
    return inner_->count_unfinished(app_id, at_most);
  }
  Result<Delivery> redeliver(std::string_view id) override { return inner_->redeliver(id); }
  Result<RedeliverBatch> redeliver_matching(const RedeliverFilter& filter) override {
    return inner_->redeliver_matching(filter);
  }
  Status check_writable() override { return inner_->check_writable(); }
  void on_due_elsewhere(std::function<void()> wake) override {
    if (auto* hints = inner_->scheduling_hints()) hints->on_due_elsewhere(std::move(wake));
  }
  QueueStats stats() const override { return inner_->stats(); }

 private:
  std::unique_ptr<Queue> inner_;
};

}  // namespace callbackd::testing
