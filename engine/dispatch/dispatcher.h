// Moves deliveries from the store to the network, one Attempt at a time each:
// - the Admission decides which held attempt starts next (host scheduler: fairness, caps,
//   adaptive per-host concurrency; endpoint breaker: endpoints that keep failing wait in the
//   store, spending nothing, until a probe of their oldest waiting callback succeeds);
// - the StoreWorker claims, renews, records and releases on lanes of its own, and always
//   hears back;
// - the HttpClient runs each attempt.
// What the dispatcher keeps itself is its attempts and their leases: every lease it holds is
// renewed before it could run out, an attempt starts only with lease enough to finish and be
// recorded, a lease that cannot be confirmed is given up unsent, and a write refused for a stale
// token is counted and logged.
//
// Threads: everything but the "any thread" methods runs on the io_context's thread.
#pragma once

#include <callbackd/engine.h>
#include <callbackd/queue.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dispatch/admission.h"
#include "dispatch/attempt.h"
#include "dispatch/attempt_history.h"
#include "dispatch/backlog_deferral.h"
#include "dispatch/lease.h"
#include "dispatch/retry_policy.h"
#include "dispatch/store_worker.h"
#include "secrets/app_keyring.h"
#include "signing/signer.h"
#include "transport/http_client.h"

namespace callbackd {

struct DispatcherOptions {
  std::size_t max_in_flight = 256;
  std::size_t max_in_flight_per_host = 32;
  Millis attempt_timeout{10000};
  Millis poll_interval{1000};
  Millis retention{7 * 24 * 3600 * 1000LL};
  std::size_t claim_batch = 128;
  std::string user_agent = "callbackd";
  std::size_t max_response_bytes = 1024;
  std::shared_ptr<EngineObserver> observer;                            // optional
  std::function<bool(const boost::asio::ip::address&)> allow_address;  // empty: all
  // Called (io thread) once an attempt that left its delivery delivered or dead is stored.
  std::function<void(const std::string& app_id)> on_finished;
  std::string ca_bundle_path;
  BreakerOptions breaker;
  AttemptHistory* history = nullptr;  // optional; counts each finished attempt
};

class Dispatcher : private StoreWorker::Listener {
 public:
  Dispatcher(boost::asio::io_context& io, std::shared_ptr<Queue> queue,
             std::shared_ptr<AppKeyring> keys, RetryPolicy policy, DispatcherOptions options,
             std::shared_ptr<const Clock> clock);
  ~Dispatcher() override;

  // io thread. Starts claiming and accepting hand-offs.
  void start();
  // io thread. Stops claiming and accepting hand-offs at once, gives waiting attempts back to
  // the store, lets attempts in flight finish and records them (renewing their leases
  // meanwhile); then calls `done` (io thread), once every write is stored.
  void stop(std::function<void()> done);
  // io thread. For a stop past its deadline: drops every attempt and write still open, leaving
  // their leases to recovery (an attempt sent but not recorded may be sent again, under the same
  // number), and stops hearing from the store. start() may follow.
  void abandon();
  // io thread. What a stop still waits for, for its log line.
  std::string stop_progress() const;

  // Any thread. How long a fresh delivery handed over should be leased for.
  Millis lease() const { return times_.lease; }
  // Any thread. Holds a place for one fresh delivery to `host_key`; false when the dispatcher
  // is not running or that host has no room (the caller then stores the delivery pending and
  // calls notify_pending()).
  bool try_reserve(std::string_view host_key);
  // Any thread. Gives a reserved delivery, stored in flight under lease() from `leased_at`
  // (taken before the store was asked), to the dispatcher.
  void hand_off(ClaimedDelivery delivery, SteadyTime leased_at);
  // Any thread. Gives the place back when nothing was stored.
  void cancel_reservation(const std::string& host_key);
  // Any thread. Something became due now: claim soon instead of at the next poll.
  void notify_pending();
  // Any thread. How long the dispatcher's longest store call now running has waited.
  Millis store_call_running_for() const { return store_.call_running_for(); }
  // Any thread. Attempts running now.
  std::size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  // Any thread. What the scheduler knows of each host.
  std::vector<HostView> hosts() const { return admission_.hosts(); }
  // Any thread. Endpoints in use, with their breaker state and attempts in flight.
  std::vector<EndpointHealth> endpoints(const EndpointQuery& query) const;
  EndpointCounts endpoint_counts() const { return admission_.endpoint_counts(); }

 private:
  using Attempts = std::unordered_map<std::int64_t, dispatch::Attempt>;

  // StoreWorker::Listener
  void on_claimed(Result<std::vector<ClaimedDelivery>> claimed, std::optional<Millis> next_due,
                  SteadyTime sent_at) override;
  void on_recorded(const std::vector<AttemptRecord>& records, const StaleTokens& stale) override;
  void on_released(const StaleTokens& stale) override;
  void on_renewed(const std::vector<LeaseToken>& renewed, const StaleTokens& stale,
                  SteadyTime sent_at) override;
  void on_maintained(bool more_to_prune) override;
  void on_deferred() override;

  // A claimed or handed-over delivery joins its host's line; false when the line had no room.
  bool hold(ClaimedDelivery delivery, SteadyTime leased_at, bool reserved);
  // A waiting attempt goes back to the store, due `delay` from now, unsent.
  void give_back(Attempts::iterator it, Millis delay);
  void report(const BreakerTransition& transition);
  void pump();
  void start_attempt(dispatch::Attempt& attempt, bool probe);
  void on_attempt_done(std::int64_t seq, HttpResponse response);
  Signer& signer_for(const std::shared_ptr<const AppKey>& key);
  void stale_write(std::string_view write, const LeaseToken& token);

  void maybe_claim();
  void defer(BacklogDeferral deferral);
  // Renews the leases running low, and gives up waiting attempts whose lease ran out unconfirmed.
  void keep_leases(SteadyTime now);
  void maintain(SteadyTime now);
  void arm_timer(SteadyTime at);
  void on_tick();
  void maybe_finish_stop();

  boost::asio::io_context& io_;
  const std::shared_ptr<AppKeyring> keys_;
  const RetryPolicy policy_;
  const DispatcherOptions options_;
  const std::shared_ptr<const Clock> clock_;
  const LeaseTimes times_;

  HttpClient client_;
  boost::asio::steady_timer timer_;
  std::uint64_t timer_generation_ = 0;
  std::optional<SteadyTime> timer_at_;
  SteadyTime next_prune_;
  SteadyTime next_forget_;

  // io thread state
  Attempts attempts_;                       // by delivery seq
  std::atomic<std::size_t> in_flight_ = 0;  // written on the io thread only
  std::unordered_map<std::string, std::pair<std::shared_ptr<const AppKey>, Signer>> signers_;
  bool running_ = false;
  bool stopping_ = false;
  bool claim_wanted_ = true;
  bool prune_wanted_ = true;
  // The claim out, while one is: what it was for.
  std::optional<ClaimPlan> claim_out_;
  std::function<void()> stop_done_;
  BacklogMoves backlog_moves_;

  // Shared with the enqueuing threads.
  Admission admission_;
  std::atomic<bool> notice_posted_ = false;  // a notify_pending() is waiting in the loop

  // Last member: its lanes stop first on destruction.
  StoreWorker store_;
};

}  // namespace callbackd
