// Moves deliveries from the queue to the network. It wires three parts together:
// - the HostScheduler decides which held delivery starts next (fairness, caps, adaptive
//   per-host concurrency);
// - the StoreLink claims, renews, records and releases on a storage thread;
// - the HttpClient runs each attempt;
// - the EndpointBreaker holds back attempts to endpoints that keep failing (their deliveries
//   stay in the store, pending, spending nothing) and lets one probe through after a cool-down.
// What it keeps itself is the set of held deliveries and their leases: every held lease is
// renewed before it could run out, an attempt starts only with enough lease left to finish and
// be recorded, and a write refused for a stale token is counted and logged.
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
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dispatch/attempt_history.h"
#include "dispatch/endpoint_breaker.h"
#include "dispatch/host_scheduler.h"
#include "dispatch/lease_times.h"
#include "dispatch/retry_policy.h"
#include "dispatch/store_link.h"
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

class Dispatcher : private StoreLink::Listener {
 public:
  Dispatcher(boost::asio::io_context& io, Queue& queue, AppKeyring& keys, RetryPolicy policy,
             DispatcherOptions options, std::shared_ptr<const Clock> clock);
  ~Dispatcher() override;

  // io thread. Starts claiming and accepting hand-offs.
  void start();
  // io thread. Stops claiming and accepting hand-offs at once, returns waiting deliveries to
  // pending, lets attempts in flight finish and records them; then calls `done` (io thread).
  void stop(std::function<void()> done);

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
  // Any thread. Attempts running now.
  std::size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  // Any thread. What the scheduler knows of each host.
  std::vector<HostView> hosts() const;
  // Any thread. What the breaker knows of each endpoint, with attempts in flight.
  std::vector<EndpointHealth> endpoints(const EndpointQuery& query) const;
  EndpointCounts endpoint_counts() const;

 private:
  // A delivery this dispatcher holds a lease on: waiting in its host's line, or running.
  struct Held {
    ClaimedDelivery delivery;
    SteadyTime lease_end;   // a conservative estimate of when the store ends the lease
    bool running = false;   // its attempt started; it leaves once its record is stored
    bool renewing = false;  // a renewal is on its way
    bool probe = false;     // its attempt is a half-open endpoint's probe
  };

  // StoreLink::Listener
  void on_claimed(Result<std::vector<ClaimedDelivery>> claimed, std::optional<Millis> next_due,
                  SteadyTime sent_at) override;
  void on_recorded(const std::vector<AttemptRecord>& stored, const StaleTokens& stale) override;
  void on_released(const StaleTokens& stale) override;
  void on_renewed(const std::vector<LeaseToken>& renewed, const StaleTokens& stale,
                  SteadyTime sent_at) override;
  void on_maintained(bool more_to_prune) override;
  void on_deferred() override;

  // Takes a claimed delivery into a host's line; false when the line had no room.
  bool hold(ClaimedDelivery delivery, SteadyTime leased_at, bool reserved);
  void drop_waiting(std::unordered_map<std::int64_t, Held>::iterator it);
  // Its endpoint's breaker is open: back to the store, no attempt spent.
  void hold_back(std::unordered_map<std::int64_t, Held>::iterator it, SteadyTime now);
  void report(const BreakerTransition& transition);
  void pump();
  void start_attempt(Held& held);
  void on_attempt_done(std::int64_t seq, TimePoint started_at, HttpResponse response);
  Signer& signer_for(const std::shared_ptr<const AppKey>& key);
  void stale_write(std::string_view write, const LeaseToken& token);

  void maybe_claim();
  // Claims walk past the due rows of the hosts they skip, so those rows are moved out of the
  // due range: an open endpoint's to its probe time, a full slow host's (but what its line takes
  // next) a few of its attempt durations later. Callbacks keep arriving for such hosts, so the
  // move is repeated, to the same time, at most once a second; only the new rows move then.
  struct SkippedBacklog {
    std::string host;
    std::optional<SteadyTime> until;  // an open endpoint's probe time; a slow host's: keep the
    Millis hold{0};                   // last one while it lasts, then now + hold
    std::size_t keep = 0;
  };
  void defer_skipped_backlogs(const std::vector<SkippedBacklog>& hosts);
  void renew_leases(SteadyTime now);
  void arm_timer(SteadyTime at);
  void on_tick();
  void maybe_finish_stop();

  boost::asio::io_context& io_;
  AppKeyring& keys_;
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
  std::unordered_map<std::int64_t, Held> held_;  // by delivery seq
  std::atomic<std::size_t> in_flight_ = 0;       // written on the io thread only
  std::unordered_map<std::string, std::pair<std::shared_ptr<const AppKey>, Signer>> signers_;
  bool running_ = false;
  bool stopping_ = false;
  bool claim_wanted_ = true;
  // The claim out is for this one host's deliveries, at most this many (see take_spilled).
  std::optional<std::pair<std::string, std::size_t>> claiming_for_host_;
  // The claim out is for this half-open endpoint's probe.
  std::optional<std::string> claiming_probe_;
  bool prune_wanted_ = true;
  std::function<void()> stop_done_;
  // Skipped hosts whose backlog was moved: to when, and when it was last moved.
  struct BacklogMove {
    SteadyTime until{};
    SteadyTime moved_at{};
  };
  std::unordered_map<std::string, BacklogMove> backlog_moves_;

  // Shared with enqueue threads: the scheduler, the breaker and who may reserve a place.
  mutable std::mutex scheduler_mutex_;
  HostScheduler scheduler_;
  EndpointBreaker breaker_;
  bool accepting_ = false;
  std::size_t reservations_ = 0;  // reserved, not yet handed off or cancelled

  std::atomic<bool> notice_posted_ = false;  // a notify_pending() is waiting in the loop

  // Last member: its storage thread is joined first on destruction.
  StoreLink store_;
};

}  // namespace callbackd
