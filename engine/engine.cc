#include <callbackd/engine.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "dispatch/attempt_history.h"
#include "dispatch/dispatcher.h"
#include "dispatch/retry_policy.h"
#include "encoding.h"
#include "intake/app_quota.h"
#include "intake/callback_url.h"
#include "intake/ids.h"
#include "report_counts.h"
#include "intake/network_guard.h"
#include "secrets/app_keyring.h"
#include "secrets/master_key.h"
#include "secrets/secret_box.h"

namespace callbackd {
namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxAppNameLength = 200;

std::string new_secret(SignatureScheme scheme) {
  return scheme == SignatureScheme::kStandard ? new_standard_secret() : new_hex_secret();
}

DispatcherOptions dispatcher_options(const EngineOptions& options, const NetworkGuard& guard,
                                     std::shared_ptr<AppQuota> quota, AttemptHistory& history) {
  DispatcherOptions d;
  d.max_in_flight = options.max_in_flight;
  d.max_in_flight_per_host = std::min(options.max_in_flight_per_host, options.max_in_flight);
  d.attempt_timeout = options.attempt_timeout;
  d.poll_interval = options.poll_interval;
  d.retention = options.retention;
  d.user_agent = "callbackd/" + options.version;
  d.max_response_bytes = options.max_response_bytes;
  d.observer = options.observer;
  d.allow_address = [guard](const boost::asio::ip::address& address) {
    return guard.allows(address);
  };
  d.ca_bundle_path = options.ca_bundle_path;
  d.breaker = options.breaker;
  d.on_finished = [quota](const std::string& app_id) { quota->give_back(app_id); };
  d.history = &history;
  return d;
}

// A dispatcher's store call unanswered this long makes the store not ready: a frozen database
// shows within about this, without another call to wait on.
constexpr Millis kStoreStalled{3000};

// An app refused for its quota is recounted in the store at most this often.
constexpr Millis kQuotaRecountInterval{1000};

Status check_app_name(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("name: must not be empty");
  if (name.size() > kMaxAppNameLength) {
    return Status::InvalidArgument("name: longer than " + std::to_string(kMaxAppNameLength) +
                                   " bytes");
  }
  if (!is_valid_utf8(name)) return Status::InvalidArgument("name: not valid UTF-8");
  return Status::Ok();
}

Status name_field(std::string_view field, const Status& status) {
  return Status(status.code(), std::string(field) + ": " + status.message());
}

}  // namespace

Status validate(const EngineOptions& options) {
  if (!options.queue) return Status::InvalidArgument("queue: must be set (e.g. open_sqlite_queue)");
  if (options.master_key.empty() && options.master_key_file.empty()) {
    return Status::InvalidArgument("master_key_file: must be set when master_key is not");
  }
  for (std::size_t i = 0; i < options.retry_schedule.size(); ++i) {
    if (options.retry_schedule[i] <= Millis(0)) {
      return Status::InvalidArgument("retry_schedule: entry " + std::to_string(i + 1) +
                                     " must be positive");
    }
  }
  if (options.attempt_timeout <= Millis(0)) {
    return Status::InvalidArgument("attempt_timeout: must be positive");
  }
  if (options.max_in_flight == 0) return Status::InvalidArgument("max_in_flight: must be >= 1");
  if (options.max_in_flight_per_host == 0) {
    return Status::InvalidArgument("max_in_flight_per_host: must be >= 1");
  }
  if (options.poll_interval <= Millis(0)) {
    return Status::InvalidArgument("poll_interval: must be positive");
  }
  if (options.retention <= Millis(0)) return Status::InvalidArgument("retention: must be positive");
  if (!options.clock) return Status::InvalidArgument("clock: must be set");
  const BreakerOptions& b = options.breaker;
  if (!(b.failure_rate > 0 && b.failure_rate <= 1)) {
    return Status::InvalidArgument("breaker.failure_rate: must be above 0 and at most 1");
  }
  if (b.min_attempts == 0) return Status::InvalidArgument("breaker.min_attempts: must be >= 1");
  if (b.window <= Millis(0) || b.cooldown <= Millis(0) || b.max_cooldown <= Millis(0)) {
    return Status::InvalidArgument("breaker: window, cooldown and max_cooldown must be positive");
  }
  if (b.max_endpoints == 0) return Status::InvalidArgument("breaker.max_endpoints: must be >= 1");
  if (options.max_pending_per_app == 0) {
    return Status::InvalidArgument("max_pending_per_app: must be >= 1");
  }
  if (options.max_body_bytes == 0) return Status::InvalidArgument("max_body_bytes: must be >= 1");
  if (options.shutdown_timeout <= Millis(0)) {
    return Status::InvalidArgument("shutdown_timeout: must be positive");
  }
  return Status::Ok();
}

// Where an enqueue's commit reports, from the queue's commit thread. The callbacks share it, so
// a commit that comes back after the engine is gone (its store hung past shutdown_timeout)
// finds it still there and reaches no dispatcher: a row it stored leased to this process is
// left to lease recovery.
class CommitSink {
 public:
  explicit CommitSink(Dispatcher& dispatcher) : dispatcher_(&dispatcher) {}
  // Runs `f` with the dispatcher while the engine is there; quick calls only (it holds a lock).
  template <class F>
  void with_dispatcher(F&& f) {
    std::lock_guard lock(mutex_);
    if (dispatcher_ != nullptr) f(*dispatcher_);
  }
  void close() {
    std::lock_guard lock(mutex_);
    dispatcher_ = nullptr;
  }

 private:
  std::mutex mutex_;
  Dispatcher* dispatcher_;
};

class Engine::Impl {
 public:
  Impl(EngineOptions options, NetworkGuard guard, SecretBox box,
       const std::vector<std::pair<std::string, std::size_t>>& unfinished)
      : options_(std::move(options)),
        guard_(std::move(guard)),
        box_(std::make_shared<const SecretBox>(std::move(box))),
        queue_(options_.queue),
        keys_(std::make_shared<AppKeyring>(queue_, box_)),
        quota_(std::make_shared<AppQuota>(options_.max_pending_per_app, unfinished)),
        dispatcher_(io_, queue_, keys_, RetryPolicy(options_.retry_schedule),
                    dispatcher_options(options_, guard_, quota_, history_), options_.clock),
        sink_(std::make_shared<CommitSink>(dispatcher_)) {
    if (SchedulingHints* hints = queue_->scheduling_hints()) {
      hints->on_due_elsewhere([this] { dispatcher_.notify_pending(); });
    }
  }

  ~Impl() {
    const auto deadline = std::chrono::steady_clock::now() + options_.shutdown_timeout;
    if (SchedulingHints* hints = queue_->scheduling_hints()) hints->on_due_elsewhere(nullptr);
    (void)stop(deadline);
    // Enqueues still being committed report to the dispatcher: let them come back while it is
    // here, within what is left of the bound; later ones reach nothing (the sink is closed).
    if (!drain_until(deadline)) {
      spdlog::warn("event=engine_closed_with_commits_pending timeout_ms={}",
                   options_.shutdown_timeout.count());
    }
    sink_->close();
  }

  const EngineOptions& options() const { return options_; }
  Queue& queue() { return *queue_; }
  AppKeyring& keys() { return *keys_; }
  Dispatcher& dispatcher() { return dispatcher_; }
  const Clock& clock() const { return *options_.clock; }
  const NetworkGuard& guard() const { return guard_; }
  const SecretBox& box() const { return *box_; }
  AppQuota& quota() { return *quota_; }
  const std::shared_ptr<AppQuota>& shared_quota() const { return quota_; }
  const std::shared_ptr<CommitSink>& sink() const { return sink_; }
  const AttemptHistory& history() const { return history_; }
  ReportCounts& report_counts() const { return report_counts_; }
  // Rotations commit and reach the keyring in the same order, one at a time.
  std::mutex& rotation_mutex() { return rotation_mutex_; }

  void start() {
    std::lock_guard lock(lifecycle_mutex_);
    if (io_thread_.joinable()) return;
    if (cut_short_) {
      spdlog::error(
          "event=start_refused reason=\"a stop was cut short by shutdown_timeout; open a new "
          "Engine\"");
      return;
    }
    io_.restart();
    work_.emplace(io_.get_executor());
    io_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "callbackd-io");  // visible in top -H, perf, gdb
      io_.run();
    });
    asio::post(io_, [this] { dispatcher_.start(); });
  }

  // Bounded by `deadline`: past it, whatever is still open is left to lease recovery, and the
  // answer is false.
  bool stop(std::chrono::steady_clock::time_point deadline) {
    std::lock_guard lock(lifecycle_mutex_);
    if (!io_thread_.joinable()) return !cut_short_;
    auto stopped = std::make_shared<std::promise<void>>();
    std::future<void> finished = stopped->get_future();
    asio::post(io_, [this, stopped] { dispatcher_.stop([stopped] { stopped->set_value(); }); });
    if (finished.wait_until(deadline) != std::future_status::ready) {
      // The io thread never blocks, so it takes this at once.
      std::promise<void> abandoned;
      asio::post(io_, [this, &abandoned] {
        dispatcher_.abandon();
        abandoned.set_value();
      });
      abandoned.get_future().wait();
      cut_short_ = true;
    }
    work_.reset();
    io_.stop();
    io_thread_.join();
    return !cut_short_;
  }

 private:
  // Waits for the queue's enqueues to come back, until `deadline`; false if they did not.
  bool drain_until(std::chrono::steady_clock::time_point deadline) {
    auto drained = std::make_shared<std::promise<void>>();
    std::future<void> done = drained->get_future();
    // On a thread of its own, holding the queue, so a store that never answers keeps only it.
    std::thread([queue = queue_, drained]() mutable {
      queue->drain();
      queue.reset();  // before the answer: a store reopened after it must find the file free
      drained->set_value();
    }).detach();
    return done.wait_until(deadline) == std::future_status::ready;
  }

  const EngineOptions options_;
  const NetworkGuard guard_;
  const std::shared_ptr<const SecretBox> box_;
  const std::shared_ptr<Queue> queue_;
  const std::shared_ptr<AppKeyring> keys_;
  const std::shared_ptr<AppQuota> quota_;
  AttemptHistory history_;  // before dispatcher_, which counts into it
  mutable ReportCounts report_counts_;
  asio::io_context io_;
  Dispatcher dispatcher_;  // after io_: destroyed before it
  const std::shared_ptr<CommitSink> sink_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread io_thread_;
  std::mutex lifecycle_mutex_;
  std::mutex rotation_mutex_;
  bool cut_short_ = false;  // a stop past its deadline left the dispatcher unusable
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::open(EngineOptions options) {
  if (Status s = validate(options); !s.ok()) return s;
  Result<NetworkGuard> guard = NetworkGuard::create(options.allow_networks);
  if (!guard.ok()) return guard.status();
  Result<SecretBox> box = open_secret_box(options, *options.queue);
  // The box holds the key now; its text form is not kept for the engine's lifetime.
  wipe_secret(options.master_key);
  if (!box.ok()) return box.status();
  auto unfinished = options.queue->count_unfinished_by_app();
  if (!unfinished.ok()) return unfinished.status();
  return std::unique_ptr<Engine>(new Engine(
      std::make_unique<Impl>(std::move(options), std::move(*guard), std::move(*box), *unfinished)));
}

Result<AppWithSecret> Engine::create_app(std::string_view name, SignatureScheme scheme) {
  if (Status s = check_app_name(name); !s.ok()) return s;
  const TimePoint now = impl_->clock().now();
  auto key = std::make_shared<AppKey>();
  key->app = App{new_app_id(now), std::string(name), scheme, now};
  key->secret = new_secret(scheme);
  if (Status s = impl_->queue().insert_app(to_stored_app(*key, impl_->box())); !s.ok()) return s;
  impl_->keys().put(key);
  spdlog::info("event=app_created app_id={} scheme={}", key->app.id, to_string(scheme));
  return AppWithSecret{key->app, key->secret};
}

Result<App> Engine::app(std::string_view app_id) const {
  Result<std::shared_ptr<const AppKey>> key = impl_->keys().get(app_id);
  if (!key.ok()) return key.status();
  return (*key)->app;
}

Result<AppWithSecret> Engine::rotate_secret(std::string_view app_id) {
  std::lock_guard rotating(impl_->rotation_mutex());
  Result<std::shared_ptr<const AppKey>> current = impl_->keys().get(app_id);
  if (!current.ok()) return current.status();
  auto key = std::make_shared<AppKey>(**current);
  key->secret = new_secret(key->app.scheme);
  key->previous_secret.clear();
  key->previous_until.reset();
  // Standard Webhooks receivers accept any listed signature: keep signing with the old secret
  // too for a while, so they can switch without dropping a callback.
  if (key->app.scheme == SignatureScheme::kStandard) {
    key->previous_secret = (*current)->secret;
    key->previous_until = impl_->clock().now() + impl_->options().secret_overlap;
  }
  if (Status s = impl_->queue().update_app_secrets(to_stored_app(*key, impl_->box())); !s.ok()) {
    return s;
  }
  impl_->keys().put(key);
  spdlog::info("event=secret_rotated app_id={}", key->app.id);
  return AppWithSecret{key->app, key->secret};
}

Result<AppPage> Engine::list_apps(std::size_t limit, std::string_view cursor) const {
  if (limit < 1 || limit > 1000) return Status::InvalidArgument("limit: must be from 1 to 1000");
  return impl_->queue().list_apps(limit, cursor);
}

Result<EnqueueReceipt> Engine::enqueue(std::string_view app_id, std::string_view callback_url,
                                       const TaskResult& task) {
  std::promise<Result<EnqueueReceipt>> committed;
  auto result = committed.get_future();
  enqueue_async(app_id, callback_url, task,
                [&committed](Result<EnqueueReceipt> r) { committed.set_value(std::move(r)); });
  return result.get();
}

void Engine::enqueue_async(std::string_view app_id, std::string_view callback_url,
                           const TaskResult& task,
                           std::function<void(Result<EnqueueReceipt>)> done) {
  (void)enqueue_with(app_id, callback_url, task, done, /*may_read_store=*/true);
}

bool Engine::try_enqueue_async(std::string_view app_id, std::string_view callback_url,
                               const TaskResult& task,
                               std::function<void(Result<EnqueueReceipt>)> done) {
  return enqueue_with(app_id, callback_url, task, done, /*may_read_store=*/false);
}

bool Engine::enqueue_with(std::string_view app_id, std::string_view callback_url,
                          const TaskResult& task, std::function<void(Result<EnqueueReceipt>)>& done,
                          bool may_read_store) {
  // Answered at once (a refusal, or a task stored before): `done` runs, and the call is taken.
  const auto answer = [&done](Result<EnqueueReceipt> result) {
    done(std::move(result));
    return true;
  };
  const auto started = std::chrono::steady_clock::now();
  Result<CallbackUrl> url = parse_callback_url(callback_url);
  if (!url.ok()) return answer(url.status());
  // A literal address in a blocked range would only ever fail: refuse it now. Names are
  // checked on the address actually connected to, at every attempt.
  if (auto address = url->literal_address()) {
    if (auto why = impl_->guard().refusal(*address)) {
      return answer(Status::PermissionDenied(
          "callback_url: " + url->host + " is a " + std::string(*why) +
          " address, which callbackd does not call (allow_networks opens ranges)"));
    }
  }
  Result<std::string> body = build_callback_body(task);
  if (!body.ok()) return answer(body.status());
  if (body->size() > impl_->options().max_body_bytes) {
    return answer(Status::InvalidArgument(
        "body: the callback serializes to " + std::to_string(body->size()) + " bytes, over the " +
        std::to_string(impl_->options().max_body_bytes) + "-byte cap"));
  }
  Result<std::shared_ptr<const AppKey>> key =
      may_read_store ? impl_->keys().get(app_id) : impl_->keys().cached(app_id);
  if (!key.ok() && !may_read_store) return false;  // not in memory: its look-up reads the store
  if (!key.ok()) return answer(name_field("app_id", key.status()));
  const std::string& app = (*key)->app.id;
  if (!impl_->quota().try_take(app)) {
    if (!may_read_store) return false;  // the answer may be a stored delivery: read below
    // A task stored before is still answered with its delivery: it adds nothing.
    Result<std::optional<EnqueueReceipt>> existing = impl_->queue().find_by_task(app, task.task_id);
    if (!existing.ok()) return answer(existing.status());
    if (*existing) return answer(**existing);
    // Other processes may have finished what this one counted: refuse only on a fresh count.
    AppQuota& quota = impl_->quota();
    const SteadyTime now = impl_->clock().steady_now();
    if (quota.recount_due(app, now, kQuotaRecountInterval)) {
      Result<std::size_t> stored = impl_->queue().count_unfinished(app, quota.limit());
      if (!stored.ok()) return answer(stored.status());
      quota.recount(app, *stored, now);
    }
    if (!quota.try_take(app)) {
      return answer(Status::ResourceExhausted(
          "app_id: app \"" + app + "\" has " + std::to_string(quota.limit()) +
          " unfinished deliveries, its quota (max_pending_per_app)"));
    }
  }

  const TimePoint now = impl_->clock().now();
  std::string host_key = url->host_key();
  // With room for it at its host, the row is stored already claimed and handed over right
  // after its commit: no polling delay for a fresh callback.
  Dispatcher& dispatcher = impl_->dispatcher();
  const bool reserved = dispatcher.try_reserve(host_key);
  const SteadyTime leased_at = impl_->clock().steady_now();
  NewDelivery delivery{new_delivery_id(now),
                       app,
                       task.task_id,
                       std::move(url->url),
                       host_key,
                       std::make_shared<const std::string>(std::move(*body)),
                       now,
                       std::nullopt};
  if (reserved) delivery.lease = dispatcher.lease();
  // What the dispatcher needs if the row is created; the queue takes the delivery itself.
  ClaimedDelivery handoff{{},
                          delivery.id,
                          delivery.app_id,
                          delivery.task_id,
                          delivery.callback_url,
                          std::move(host_key),
                          delivery.body,
                          0,
                          0};

  impl_->queue().enqueue_async(
      std::move(delivery),
      [sink = impl_->sink(), quota = impl_->shared_quota(), observer = impl_->options().observer,
       reserved, started, leased_at, handoff = std::move(handoff),
       done = std::move(done)](Result<Enqueued> stored) mutable {
        const bool created = stored.ok() && stored->receipt.created;
        quota->committed(handoff.app_id, created);
        sink->with_dispatcher([&](Dispatcher& dispatcher) {
          if (reserved && created && stored->lease) {
            handoff.lease = *stored->lease;
            dispatcher.hand_off(std::move(handoff), leased_at);
          } else if (reserved) {
            dispatcher.cancel_reservation(handoff.host_key);
          } else if (created) {
            dispatcher.notify_pending();
          }
        });
        if (!stored.ok()) return done(stored.status());
        if (observer) {
          observer->on_enqueued(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now() - started),
                                created);
        }
        done(stored->receipt);
      });
  return true;
}

Result<Delivery> Engine::delivery(std::string_view delivery_id) const {
  return impl_->queue().find_delivery(delivery_id);
}

Result<DeliveryPage> Engine::list(const DeliveryFilter& filter) const {
  return impl_->queue().list(filter);
}

Status Engine::check_storage() {
  // A store the dispatcher has been waiting on for a while is not ready, whatever a fresh
  // probe would say (it would only wait as long again).
  const Millis waiting = impl_->dispatcher().store_call_running_for();
  if (waiting >= kStoreStalled) {
    return Status::StorageUnavailable("the store has not answered a call for " +
                                      std::to_string(waiting.count() / 1000) + " s");
  }
  return impl_->queue().check_writable();
}

Result<Delivery> Engine::redeliver(std::string_view delivery_id) {
  Result<Delivery> delivery = impl_->queue().redeliver(delivery_id);
  if (delivery.ok()) {
    impl_->quota().take(delivery->app_id);
    spdlog::info("event=redeliver delivery_id={}", delivery->id);
    impl_->dispatcher().notify_pending();
  }
  return delivery;
}

Result<RedeliverBatch> Engine::redeliver_matching(const RedeliverFilter& given) {
  RedeliverFilter filter = given;
  if (!filter.as_of) filter.as_of = impl_->clock().now();
  if (filter.app_id) {
    if (Result<StoredApp> app = impl_->queue().find_app(*filter.app_id); !app.ok()) {
      return app.status();
    }
  }
  Result<RedeliverBatch> batch = impl_->queue().redeliver_matching(filter);
  if (batch.ok() && !batch->app_ids.empty()) {
    for (const std::string& app_id : batch->app_ids) impl_->quota().take(app_id);
    spdlog::info("event=redeliver_matching state={} queued={} more={}", to_string(filter.state),
                 batch->app_ids.size(), !batch->next_cursor.empty());
    impl_->dispatcher().notify_pending();
  }
  return batch;
}

Result<DeliveryCounts> Engine::count_by_state(Millis max_age) const {
  return impl_->report_counts().by_state(impl_->queue(), impl_->clock().steady_now(), max_age);
}

std::vector<MinuteCounts> Engine::attempts_last_hour() const {
  return impl_->history().last_hour(impl_->clock().now());
}

TimePoint Engine::now() const { return impl_->clock().now(); }

std::size_t Engine::in_flight() const { return impl_->dispatcher().in_flight(); }

Result<std::size_t> Engine::pending_for_endpoint(std::string_view endpoint, Millis max_age) const {
  return impl_->report_counts().pending_for_host(impl_->queue(), endpoint,
                                                 impl_->clock().steady_now(), max_age);
}

std::vector<EndpointHealth> Engine::endpoints(const EndpointQuery& query) const {
  return impl_->dispatcher().endpoints(query);
}

EndpointCounts Engine::endpoint_counts() const { return impl_->dispatcher().endpoint_counts(); }

QueueStats Engine::store_stats() const { return impl_->queue().stats(); }

void Engine::start() { impl_->start(); }
bool Engine::stop() {
  return impl_->stop(std::chrono::steady_clock::now() + impl_->options().shutdown_timeout);
}

}  // namespace callbackd
