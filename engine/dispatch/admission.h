// Which delivery may go now: the host scheduler (fairness, caps, adaptive per-host concurrency)
// and the endpoint breaker (endpoints that keep failing wait in the store) behind one lock,
// because fresh callbacks reserve their place from the enqueuing threads while the dispatcher
// picks, starts and finishes attempts on its io thread.
//
// Thread-safe.
#pragma once

#include <callbackd/endpoint_health.h>
#include <callbackd/queue.h>

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dispatch/backlog_deferral.h"
#include "dispatch/endpoint_breaker.h"
#include "dispatch/host_scheduler.h"

namespace callbackd {

// What to claim next, and the backlogs to move out of that claim's way first.
struct ClaimPlan {
  enum class Kind {
    kProbe,    // a half-open endpoint's probe: its first handed-over due delivery
    kForHost,  // a quick host's overflow, claimed by host so it never waits behind others
    kDue,      // the due deliveries of every host that has room, oldest due first
  };
  Kind kind = Kind::kDue;
  ClaimRequest request;  // all but the lease
  std::vector<BacklogDeferral> deferrals;
};

class Admission {
 public:
  using JobId = HostScheduler::JobId;

  Admission(HostSchedulerOptions scheduler, BreakerOptions breaker, Millis probe_patience);

  // --- fresh callbacks, from the enqueuing threads
  // While open, a fresh callback may reserve a place and be handed straight over.
  void open_for_hand_offs();
  void close_for_hand_offs();
  struct Reservation {
    bool reserved = false;
    // A waiting job pushed out to make room (it goes back to the store, due at once).
    std::optional<JobId> evicted;
  };
  // A place for one fresh callback to `host`: only while open, and only for an endpoint whose
  // breaker is closed (a half-open endpoint's probe is its oldest waiting callback, claimed from
  // the store, never a fresh one). Unreserved, the callback is stored pending.
  Reservation try_reserve(std::string_view host, SteadyTime now);
  // Nothing was stored after all: the place goes back.
  void cancel_reservation(std::string_view host);
  // The reserved callback reached the io thread; unless `keep` (it joins its line), its place
  // goes back.
  void reservation_arrived(std::string_view host, bool keep);
  std::size_t reservations() const;

  // --- held deliveries, on the io thread
  bool join_line(std::string_view host, JobId job, bool reserved, SteadyTime now);
  void leave_line(std::string_view host, JobId job);
  struct Next {
    HostScheduler::Pick pick;
    EndpointBreaker::Admission verdict = EndpointBreaker::Admission::kRun;
    Millis hold_for{0};  // kHold: how long it should wait in the store
  };
  // The next job to start and whether its endpoint lets it: kRun, kProbe (the half-open
  // endpoint's probe, which only the job claimed as the probe may be), or kHold (it goes back
  // to the store; its place is freed already).
  std::optional<Next> next(SteadyTime now, const std::function<bool(JobId)>& claimed_as_probe);
  // A picked job was not started after all.
  void not_started(std::string_view host, SteadyTime now);
  struct Verdict {
    std::optional<BreakerTransition> transition;
    Millis hold_for{0};  // the endpoint is open: its retries wait this long at least
  };
  // An attempt ended: the host's limit and pool adapt, the breaker judges it.
  Verdict finished(std::string_view host, AttemptError error, int http_status, Millis duration,
                   bool probe, SteadyTime now);
  Millis hold_for(std::string_view host, SteadyTime now) const;
  // How long the rest of a half-open endpoint's backlog may wait while its probe runs: no
  // longer than the probe's bound, nor than the next probe would be if this one failed (so the
  // oldest waiting callback is due for it, not pushed past it).
  Millis hold_during_probe(std::string_view host, Millis attempt_timeout) const;

  // --- claims, on the io thread
  // `due_wanted`: a claim of due deliveries may be worth it now (a tick, a fresh notice).
  // nullopt: nothing to claim.
  std::optional<ClaimPlan> plan_claim(SteadyTime now, std::size_t batch, bool due_wanted,
                                      bool defer_backlog);
  // The probe's claim found nothing due: look again after `retry_after`.
  void probe_not_found(std::string_view host, SteadyTime now, Millis retry_after);
  // A claimed delivery did not fit its host's line: the store keeps it. Answers whether the
  // host is quick (its overflow is claimed by host as soon as it has room, so due at once).
  bool spilled(std::string_view host);
  // A claim by host came back full: the store may hold more of it.
  void spilled_more(std::string_view host);

  // --- upkeep, on the io thread
  std::vector<BreakerTransition> advance(SteadyTime now);
  void forget_idle(SteadyTime now);

  // --- views, any thread
  std::vector<HostView> hosts() const;
  // The breaker's endpoints, and those with attempts running that it has not judged yet.
  std::vector<EndpointHealth> endpoints(const EndpointQuery& query, SteadyTime now,
                                        TimePoint wall_now) const;
  EndpointCounts endpoint_counts() const;

 private:
  mutable std::mutex mutex_;
  HostScheduler scheduler_;
  EndpointBreaker breaker_;
  bool open_ = false;
  std::size_t reservations_ = 0;  // reserved, not yet arrived or cancelled
};

}  // namespace callbackd
