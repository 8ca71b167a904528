// The embedding API: open a store, create apps, enqueue finished tasks, watch them delivered.
//
//   auto queue = callbackd::open_sqlite_queue({.path = "data/callbackd.db"});  // sqlite_store.h
//   auto engine = callbackd::Engine::open({.queue = std::move(*queue),
//                                          .master_key_file = "/etc/callbackd/master.key"});
//   auto app = (*engine)->create_app("acme");
//   (*engine)->start();
//   auto receipt = (*engine)->enqueue(app->app.id, "https://acme.example/hook", task);
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <callbackd/app.h>
#include <callbackd/clock.h>
#include <callbackd/delivery.h>
#include <callbackd/endpoint_health.h>
#include <callbackd/payload.h>
#include <callbackd/queue.h>
#include <callbackd/status.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd {

using namespace std::chrono_literals;

// Attempts that finished within one minute (wall time).
struct MinuteCounts {
  TimePoint minute;  // the minute's start
  std::size_t succeeded = 0;
  std::size_t failed = 0;
  std::size_t attempts() const { return succeeded + failed; }
};

// Told what the engine does, for metrics. Called on engine threads (enqueue on the caller's,
// attempts on the dispatcher's): implementations must be thread-safe and quick.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  // A callback was stored (created) or found already stored (!created); latency is the
  // time enqueue took, commit included.
  virtual void on_enqueued(std::chrono::microseconds /*latency*/, bool /*created*/) {}
  // An attempt finished; next_state is where it moves its delivery.
  virtual void on_attempt(const Attempt& /*attempt*/, DeliveryState /*next_state*/) {}
  // A write about a claimed delivery ("record", "renew" or "release") was refused because its
  // lease had ended and the delivery was claimed again.
  virtual void on_stale_lease(std::string_view /*write*/) {}
  // An endpoint's circuit breaker changed state.
  virtual void on_breaker_transition(BreakerState /*to*/) {}
};

struct EngineOptions {
  // Where deliveries live (required): e.g. open_sqlite_queue() from <callbackd/sqlite_store.h>.
  // One engine per queue; the engine holds a reference for its lifetime.
  std::shared_ptr<Queue> queue;

  // Delay after each failed attempt; its length is the number of retries.
  std::vector<Millis> retry_schedule{30s, 60s, 120s, 300s, 600s};
  // Bound on one attempt: connect, TLS, send and response all inside it.
  Millis attempt_timeout = 10s;

  std::size_t max_in_flight = 256;          // concurrent attempts in all
  std::size_t max_in_flight_per_host = 32;  // concurrent attempts to one host:port
  // Per endpoint circuit breaker: attempts to an endpoint that keeps failing wait in the store
  // (no attempt spent) until a probe after a cool-down succeeds. See endpoint_health.h.
  BreakerOptions breaker;

  // The most stop() (and the destructor) takes, whatever the store does: attempts in flight
  // finish and are recorded within it; past it, what is still open is left to lease recovery
  // (an attempt sent but not recorded may then be sent again, under the same number). Inside
  // the 30 s that systemd and Kubernetes wait before they kill.
  Millis shutdown_timeout = 20s;

  // How often the store is polled for due retries and expired leases. Fresh enqueues never
  // wait for it: they are handed to the dispatcher as soon as they are committed.
  Millis poll_interval = 1s;
  // Delivered deliveries older than this are pruned.
  Millis retention = std::chrono::duration_cast<Millis>(std::chrono::days(7));
  // First bytes of each response kept with its attempt.
  std::size_t max_response_bytes = 1024;

  // Network guard: by default no attempt connects to loopback, private, link-local, CGNAT,
  // multicast, reserved or unspecified addresses. These CIDRs are opened past it.
  std::vector<std::string> allow_networks;
  // PEM file of CAs trusted for https callback URLs; empty: the system's store.
  std::string ca_bundle_path;

  // Signing secrets are stored encrypted (AES-256-GCM) under a 32-byte master key the
  // store never holds: `master_key` when set (64 hex digits or base64 of 32 bytes); otherwise
  // the key file (same format), which is created with a fresh random key for a new store. One
  // of the two is required. A store sealed under another key, or with no key to be found, does
  // not open.
  std::string master_key;
  std::filesystem::path master_key_file;
  // How long a rotated-out secret keeps signing beside the new one (Standard Webhooks scheme).
  Millis secret_overlap = 24h;

  // Limits. A callback body serializing to more bytes than this is refused.
  std::size_t max_body_bytes = 1 << 20;
  // Unfinished (pending or in-flight) deliveries one app may have; past it enqueue answers
  // kResourceExhausted, so a runaway app cannot fill the disk for everyone.
  std::size_t max_pending_per_app = 100000;

  // Sent as User-Agent: callbackd/<version>.
  std::string version = "0.1.0";

  std::shared_ptr<const Clock> clock = system_clock();
  std::shared_ptr<EngineObserver> observer;  // optional
};

// Validates options; the message names the offending field.
Status validate(const EngineOptions& options);

class Engine {
 public:
  // Opens the engine on options.queue. Does not send anything until start().
  static Result<std::unique_ptr<Engine>> open(EngineOptions options);
  // stop()s if still running, and waits for enqueues being committed; within shutdown_timeout
  // in all.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Creates an app with a fresh secret from a CSPRNG. The secret is returned only here.
  Result<AppWithSecret> create_app(std::string_view name,
                                   SignatureScheme scheme = SignatureScheme::kHex);
  Result<App> app(std::string_view app_id) const;
  // Replaces the app's secret with a fresh one and returns it.
  Result<AppWithSecret> rotate_secret(std::string_view app_id);
  // Apps by id, `limit` (1..1000) a page; `cursor` is the previous page's next_cursor.
  Result<AppPage> list_apps(std::size_t limit, std::string_view cursor) const;

  // Builds, validates and durably stores the callback for a finished task; returns once the
  // commit is on disk. A repeated (app_id, task_id) returns the existing delivery unchanged.
  Result<EnqueueReceipt> enqueue(std::string_view app_id, std::string_view callback_url,
                                 const TaskResult& task);
  // The same without blocking, for callers that keep many callbacks in flight (they then share
  // commits). `done` runs exactly once: before this returns when the input is refused, else on
  // the engine's commit thread once the commit is on disk — keep it quick.
  void enqueue_async(std::string_view app_id, std::string_view callback_url, const TaskResult& task,
                     std::function<void(Result<EnqueueReceipt>)> done);
  // The same for a thread that must never wait on the store (an HTTP server's io thread):
  // returns false, having done nothing and dropped `done` uncalled, when taking the callback
  // would read the store first (its app is not in memory yet, or is at its quota; call
  // enqueue_async from a thread that may wait). Otherwise as enqueue_async, refusals included.
  bool try_enqueue_async(std::string_view app_id, std::string_view callback_url,
                         const TaskResult& task, std::function<void(Result<EnqueueReceipt>)> done);

  Result<Delivery> delivery(std::string_view delivery_id) const;
  Result<DeliveryPage> list(const DeliveryFilter& filter) const;
  // Puts a delivered or dead delivery back to pending, due now, with a fresh retry budget.
  Result<Delivery> redeliver(std::string_view delivery_id);
  // Bulk recovery: up to filter.limit finished deliveries matching the filter, each as
  // redeliver() does; call again with next_cursor until it is empty. kNotFound for an unknown
  // app, kInvalidArgument naming a bad field.
  Result<RedeliverBatch> redeliver_matching(const RedeliverFilter& filter);

  // Deliveries in each state, indexed by DeliveryState. `max_age` above zero allows an answer
  // that old (for reports polled often: at most one count query per period).
  Result<DeliveryCounts> count_by_state(Millis max_age = Millis(0)) const;
  // Attempts finished in each of the last 60 minutes, oldest first, the current minute last.
  // Counted in memory by this engine: empty after a restart, other processes not included.
  std::vector<MinuteCounts> attempts_last_hour() const;
  // The engine's clock (EngineOptions::clock): what "two hours ago" means in a request.
  TimePoint now() const;
  // Attempts running now.
  std::size_t in_flight() const;
  // Endpoints seen by this process since it started, with their breaker state.
  std::vector<EndpointHealth> endpoints(const EndpointQuery& query) const;
  // Pending deliveries of one endpoint in the store (held by its breaker or not yet due), at
  // most `max_age` old.
  Result<std::size_t> pending_for_endpoint(std::string_view endpoint,
                                           Millis max_age = Millis(0)) const;
  EndpointCounts endpoint_counts() const;
  // The store's backend and connection use.
  QueueStats store_stats() const;
  // Ok while the store takes writes; kStorageUnavailable (disk full, I/O error, a database that
  // does not answer: a store call of the dispatcher's waiting for 3 s or more) until it does
  // again. May write a small probe row to find out; bounded by the store's own bounds.
  Status check_storage();

  // Starts dispatching on a background thread. Idempotent.
  void start();
  // Stops claiming at once, lets attempts in flight finish (each within attempt_timeout),
  // records them, and returns claimed-but-unstarted deliveries to pending. Enqueue still works
  // meanwhile and after (new deliveries wait, pending, for the next start). Returns within
  // shutdown_timeout whatever the store does; a stop cut short by it leaves its leases to
  // recovery, returns false, and this engine cannot be started again (open a new one). A
  // process that then exits should do so without running static destructors (std::_Exit): a
  // store call that never returned may still hold the store. Idempotent.
  bool stop();

 private:
  class Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  // enqueue_async's work; false (nothing done) when it would have to read the store and may not.
  bool enqueue_with(std::string_view app_id, std::string_view callback_url, const TaskResult& task,
                    std::function<void(Result<EnqueueReceipt>)>& done, bool may_read_store);
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd
