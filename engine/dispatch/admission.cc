#include "dispatch/admission.h"

#include <algorithm>

namespace callbackd {

namespace {

// Endpoints a claim may be told to skip at most; past that, rows of full hosts that a claim
// brings back anyway are deferred.
constexpr std::size_t kMaxSkippedHosts = 256;

// A slow, full host's backlog beyond what its line takes next moves this many of its attempt
// durations later (within the bounds below): its line and the rows left due keep it busy
// meanwhile, and the rest is moved about once per interval instead of walked by every claim.
constexpr int kSlowBacklogDurations = 4;
constexpr Millis kMinSlowBacklogHold{1000};
constexpr Millis kMaxSlowBacklogHold{60000};
// Rows of such a host left due, per slot of its concurrency limit.
constexpr std::size_t kSlowBacklogKeptPerSlot = 2;

}  // namespace

Admission::Admission(HostSchedulerOptions scheduler, BreakerOptions breaker, Millis probe_patience)
    : scheduler_(scheduler), breaker_(breaker, probe_patience) {}

// ---------------------------------------------------------------- fresh callbacks

void Admission::open_for_hand_offs() {
  std::lock_guard lock(mutex_);
  open_ = true;
}

void Admission::close_for_hand_offs() {
  std::lock_guard lock(mutex_);
  open_ = false;
}

Admission::Reservation Admission::try_reserve(std::string_view host, SteadyTime now) {
  (void)now;
  std::lock_guard lock(mutex_);
  Reservation r;
  if (!open_ || !breaker_.closed(host)) return r;
  std::optional<HostScheduler::Evicted> evicted;
  r.reserved = scheduler_.try_reserve(host, evicted);
  if (evicted) {
    // Out of its line already; its host is marked spilled, so a claim by host brings it back
    // once that host has proved quick.
    scheduler_.note_spilled(evicted->host);
    r.evicted = evicted->job;
  }
  if (r.reserved) {
    ++reservations_;
  } else {
    scheduler_.note_spilled(host);  // the caller stores it pending instead
  }
  return r;
}

void Admission::cancel_reservation(std::string_view host) {
  std::lock_guard lock(mutex_);
  scheduler_.cancel_reservation(host);
  --reservations_;
}

void Admission::reservation_arrived(std::string_view host, bool keep) {
  std::lock_guard lock(mutex_);
  --reservations_;
  if (!keep) scheduler_.cancel_reservation(host);
}

std::size_t Admission::reservations() const {
  std::lock_guard lock(mutex_);
  return reservations_;
}

// ---------------------------------------------------------------- held deliveries

bool Admission::join_line(std::string_view host, JobId job, bool reserved, SteadyTime now) {
  std::lock_guard lock(mutex_);
  return scheduler_.add(host, job, reserved, now);
}

void Admission::leave_line(std::string_view host, JobId job) {
  std::lock_guard lock(mutex_);
  scheduler_.remove(host, job);
}

std::optional<Admission::Next> Admission::next(SteadyTime now,
                                               const std::function<bool(JobId)>& claimed_as_probe) {
  std::lock_guard lock(mutex_);
  std::optional<HostScheduler::Pick> pick = scheduler_.next(now);
  if (!pick) return std::nullopt;
  Next next{std::move(*pick)};
  // A half-open endpoint sends its probe, the delivery claimed for it, and nothing else.
  next.verdict = breaker_.half_open(next.pick.host) && !claimed_as_probe(next.pick.job)
                     ? EndpointBreaker::Admission::kHold
                     : breaker_.admit(next.pick.host, now);
  if (next.verdict == EndpointBreaker::Admission::kHold) {
    scheduler_.finished(next.pick.host, std::nullopt, now);
    next.hold_for = breaker_.hold_for(next.pick.host, now);
  }
  return next;
}

void Admission::not_started(std::string_view host, SteadyTime now) {
  std::lock_guard lock(mutex_);
  scheduler_.finished(host, std::nullopt, now);
}

Admission::Verdict Admission::finished(std::string_view host, AttemptError error, int http_status,
                                       Millis duration, bool probe, SteadyTime now) {
  std::lock_guard lock(mutex_);
  scheduler_.finished(host, AttemptOutcome{http_status != 0, duration}, now);
  Verdict verdict;
  verdict.transition = breaker_.record(host, error, http_status, probe, now);
  verdict.hold_for = breaker_.hold_for(host, now);
  return verdict;
}

Millis Admission::hold_for(std::string_view host, SteadyTime now) const {
  std::lock_guard lock(mutex_);
  return breaker_.hold_for(host, now);
}

Millis Admission::hold_during_probe(std::string_view host, Millis attempt_timeout) const {
  std::lock_guard lock(mutex_);
  return std::min(attempt_timeout, breaker_.cooldown_after_failed_probe(host));
}

// ---------------------------------------------------------------- claims

std::optional<ClaimPlan> Admission::plan_claim(SteadyTime now, std::size_t batch, bool due_wanted,
                                               bool defer_backlog) {
  std::lock_guard lock(mutex_);
  ClaimPlan plan;
  // A half-open endpoint's probe first: its first handed-over due delivery, and only that.
  if (std::optional<std::string> probe = breaker_.take_probe_claim(now)) {
    plan.kind = ClaimPlan::Kind::kProbe;
    plan.request.limit = 1;
    plan.request.only_host = std::move(*probe);
    plan.request.first_handed_over = true;
    return plan;
  }
  // A quick host's overflow next; an unhealthy endpoint's overflow waits in the store.
  std::optional<HostScheduler::SpilledHost> spilled;
  while ((spilled = scheduler_.take_spilled()) && !breaker_.closed(spilled->host)) {
  }
  if (spilled) {
    plan.kind = ClaimPlan::Kind::kForHost;
    plan.request.limit = std::min(batch, spilled->room);
    plan.request.only_host = std::move(spilled->host);
    return plan;
  }
  if (!due_wanted) return std::nullopt;
  plan.request.limit = std::min(batch, scheduler_.waiting_room());
  if (plan.request.limit == 0) return std::nullopt;  // a finishing attempt asks again
  // Unhealthy endpoints first: their deliveries wait in the store, moved to the probe time.
  plan.request.skip_hosts = breaker_.unhealthy(kMaxSkippedHosts / 2);
  for (const std::string& host : plan.request.skip_hosts) {
    const Millis hold = breaker_.hold_for(host, now);  // 0 while half-open
    if (defer_backlog && hold > Millis(0)) plan.deferrals.push_back({host, now + hold});
  }
  for (std::string& host :
       scheduler_.full_hosts(kMaxSkippedHosts - plan.request.skip_hosts.size())) {
    std::optional<HostView> view = scheduler_.view(host);
    if (view && view->pool == HostPool::kSlow && breaker_.closed(host)) {
      const Millis hold = std::clamp(kSlowBacklogDurations * view->typical_duration,
                                     kMinSlowBacklogHold, kMaxSlowBacklogHold);
      plan.deferrals.push_back({host, now + hold,
                                kSlowBacklogKeptPerSlot * std::max<std::size_t>(view->limit, 1),
                                /*keep_later_move=*/true});
    } else if (view && view->pool == HostPool::kQuick) {
      // Its rows this claim leaves (a retry falling due, say) are claimed for it once its line
      // has room, like an overflow; nothing else would before the next tick.
      scheduler_.note_spilled(host);
    }
    plan.request.skip_hosts.push_back(std::move(host));
  }
  return plan;
}

void Admission::probe_not_found(std::string_view host, SteadyTime now, Millis retry_after) {
  std::lock_guard lock(mutex_);
  breaker_.probe_not_found(host, now, retry_after);
}

bool Admission::spilled(std::string_view host) {
  std::lock_guard lock(mutex_);
  std::optional<HostView> view = scheduler_.view(host);
  scheduler_.note_spilled(host);
  return view && view->pool == HostPool::kQuick;
}

void Admission::spilled_more(std::string_view host) {
  std::lock_guard lock(mutex_);
  scheduler_.note_spilled(host);
}

// ---------------------------------------------------------------- upkeep and views

std::vector<BreakerTransition> Admission::advance(SteadyTime now) {
  std::lock_guard lock(mutex_);
  return breaker_.advance(now);
}

void Admission::forget_idle(SteadyTime now) {
  std::lock_guard lock(mutex_);
  scheduler_.forget_idle(now);
  breaker_.forget_idle(now);
}

std::vector<HostView> Admission::hosts() const {
  std::lock_guard lock(mutex_);
  return scheduler_.views();
}

std::vector<EndpointHealth> Admission::endpoints(const EndpointQuery& query, SteadyTime now,
                                                 TimePoint wall_now) const {
  std::lock_guard lock(mutex_);
  std::vector<EndpointHealth> all = breaker_.views(query, now, wall_now);
  for (EndpointHealth& e : all) {
    if (auto host = scheduler_.view(e.endpoint)) e.in_flight = host->in_flight;
  }
  if (query.state && *query.state != BreakerState::kClosed) return all;
  // A host whose first attempts are all still running has no verdict yet, but it is an
  // endpoint in use: closed, nothing counted, its attempts in flight. These have no failures,
  // so merging them into the breaker's first `limit` gives the first `limit` of both.
  const std::size_t judged = all.size();
  for (const HostView& host : scheduler_.views()) {
    if (host.in_flight == 0 || breaker_.tracked(host.host)) continue;
    EndpointHealth e;
    e.endpoint = host.host;
    e.in_flight = host.in_flight;
    all.push_back(std::move(e));
  }
  if (all.size() == judged) return all;
  std::stable_sort(all.begin(), all.end(), [](const EndpointHealth& a, const EndpointHealth& b) {
    return a.failures != b.failures ? a.failures > b.failures : a.endpoint < b.endpoint;
  });
  if (all.size() > query.limit) all.resize(query.limit);
  return all;
}

EndpointCounts Admission::endpoint_counts() const {
  std::lock_guard lock(mutex_);
  return breaker_.counts();
}

}  // namespace callbackd
