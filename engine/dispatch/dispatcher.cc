#include "dispatch/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <utility>

namespace callbackd {
namespace asio = boost::asio;

namespace {

constexpr Millis kPruneInterval{60000};
constexpr Millis kForgetInterval{10000};
// Endpoints a claim may be told to skip at most; past that, rows of full hosts that a claim
// brings back anyway are deferred.
constexpr std::size_t kMaxSkippedHosts = 256;

HttpClientOptions client_options(const DispatcherOptions& options) {
  HttpClientOptions client;
  client.max_response_bytes = options.max_response_bytes;
  client.connection_cache_size = options.max_in_flight;
  client.user_agent = options.user_agent;
  client.allow_address = options.allow_address;
  client.ca_bundle_path = options.ca_bundle_path;
  return client;
}

HostSchedulerOptions scheduler_options(const DispatcherOptions& options) {
  HostSchedulerOptions s;
  s.max_in_flight = options.max_in_flight;
  s.max_per_host = options.max_in_flight_per_host;
  // An attempt holding its slot for a tenth of the bound is slow (at most a second).
  s.slow_attempt = std::clamp(options.attempt_timeout / 10, Millis(50), Millis(1000));
  s.attempt_timeout = options.attempt_timeout;
  return s;
}

// A slow, full host's backlog beyond what its line takes next moves this many of its attempt
// durations later (within the bounds below): its line and the rows left due keep it busy
// meanwhile, and the rest is moved about once per interval instead of walked by every claim.
constexpr int kSlowBacklogDurations = 4;
constexpr Millis kMinSlowBacklogHold{1000};
constexpr Millis kMaxSlowBacklogHold{60000};
// Rows of such a host left due, per slot of its concurrency limit.
constexpr std::size_t kSlowBacklogKeptPerSlot = 2;
// A skipped host's backlog is moved again (its new rows) at most this often.
constexpr Millis kBacklogMoveInterval{1000};

// How long a claimed delivery whose host has no room goes back to the store for: long enough
// that the next claims do not bring it straight back.
Millis deferral(const DispatcherOptions& options) {
  return std::clamp(options.poll_interval, Millis(10), Millis(1000));
}

}  // namespace

Dispatcher::Dispatcher(asio::io_context& io, Queue& queue, AppKeyring& keys, RetryPolicy policy,
                       DispatcherOptions options, std::shared_ptr<const Clock> clock)
    : io_(io),
      keys_(keys),
      policy_(std::move(policy)),
      options_(std::move(options)),
      clock_(std::move(clock)),
      times_(lease_times(options_.attempt_timeout, options_.poll_interval)),
      client_(io, client_options(options_)),
      timer_(io),
      next_prune_(clock_->steady_now()),
      next_forget_(clock_->steady_now()),
      scheduler_(scheduler_options(options_)),
      breaker_(options_.breaker, times_.lease),
      store_(io, queue, clock_, *this) {}

Dispatcher::~Dispatcher() = default;

// ---------------------------------------------------------------- lifecycle

void Dispatcher::start() {
  if (running_) return;
  running_ = true;
  stopping_ = false;
  {
    std::lock_guard lock(scheduler_mutex_);
    accepting_ = true;
  }
  claim_wanted_ = true;
  on_tick();
}

void Dispatcher::stop(std::function<void()> done) {
  if (!running_ || stopping_) {
    if (done) asio::post(io_, std::move(done));
    return;
  }
  stopping_ = true;
  stop_done_ = std::move(done);
  {
    std::lock_guard lock(scheduler_mutex_);
    accepting_ = false;
  }
  ++timer_generation_;
  timer_.cancel();
  timer_at_.reset();
  store_.drop_deferrals();
  // Deliveries waiting for a slot go back to the queue, due now, for whoever runs next.
  for (auto it = held_.begin(); it != held_.end();) {
    auto next = std::next(it);
    if (!it->second.running) {
      store_.release(it->second.delivery.lease, Millis(0));
      drop_waiting(it);
    }
    it = next;
  }
  maybe_finish_stop();
}

void Dispatcher::maybe_finish_stop() {
  if (!stopping_ || !stop_done_) return;
  {
    std::lock_guard lock(scheduler_mutex_);
    if (reservations_ > 0) return;
  }
  if (!held_.empty() || !store_.idle()) return;
  running_ = false;
  auto done = std::move(stop_done_);
  stop_done_ = nullptr;
  done();
}

// ---------------------------------------------------------------- hand-off from enqueue

bool Dispatcher::try_reserve(std::string_view host_key) {
  std::optional<HostScheduler::Evicted> evicted;
  bool reserved = false;
  {
    std::lock_guard lock(scheduler_mutex_);
    if (!accepting_) return false;
    // An open endpoint gets no attempt now: the caller stores the delivery pending.
    if (!breaker_.may_hand_off(host_key, clock_->steady_now())) return false;
    reserved = scheduler_.try_reserve(host_key, evicted);
    if (evicted) scheduler_.note_spilled(evicted->host);
    if (reserved) {
      ++reservations_;
    } else {
      scheduler_.note_spilled(host_key);  // the caller stores it pending instead
      breaker_.probe_lost(host_key, clock_->steady_now());
    }
  }
  if (evicted) {
    // Out of its line already: it goes back to the store, due at once, and its host is
    // marked spilled, so a claim by host brings it back once that host has proved quick.
    asio::post(io_, [this, job = evicted->job] {
      auto it = held_.find(job);
      if (it == held_.end() || it->second.running) return;
      store_.release(it->second.delivery.lease, Millis(0));
      held_.erase(it);
    });
  }
  return reserved;
}

void Dispatcher::cancel_reservation(const std::string& host_key) {
  {
    std::lock_guard lock(scheduler_mutex_);
    scheduler_.cancel_reservation(host_key);
    breaker_.probe_lost(host_key, clock_->steady_now());
    --reservations_;
  }
  asio::post(io_, [this] { maybe_finish_stop(); });
}

void Dispatcher::hand_off(ClaimedDelivery delivery, SteadyTime leased_at) {
  asio::post(io_, [this, delivery = std::move(delivery), leased_at]() mutable {
    {
      std::lock_guard lock(scheduler_mutex_);
      --reservations_;
      if (stopping_) scheduler_.cancel_reservation(delivery.host_key);
    }
    if (stopping_) {
      store_.release(delivery.lease, Millis(0));
    } else {
      hold(std::move(delivery), leased_at, /*reserved=*/true);
      pump();
    }
    maybe_finish_stop();
  });
}

void Dispatcher::notify_pending() {
  // One notice in the loop's queue is enough, however many enqueues ask: while the
  // dispatcher is stopped nothing drains that queue, and a notice per enqueue would grow it
  // with the backlog.
  if (notice_posted_.exchange(true)) return;
  asio::post(io_, [this] {
    notice_posted_ = false;
    claim_wanted_ = true;
    maybe_claim();
  });
}

std::vector<HostView> Dispatcher::hosts() const {
  std::lock_guard lock(scheduler_mutex_);
  return scheduler_.views();
}

std::vector<EndpointHealth> Dispatcher::endpoints(const EndpointQuery& query) const {
  std::lock_guard lock(scheduler_mutex_);
  std::vector<EndpointHealth> all = breaker_.views(query, clock_->steady_now(), clock_->now());
  for (EndpointHealth& e : all) {
    if (auto host = scheduler_.view(e.endpoint)) e.in_flight = host->in_flight;
  }
  return all;
}

EndpointCounts Dispatcher::endpoint_counts() const {
  std::lock_guard lock(scheduler_mutex_);
  return breaker_.counts();
}

// ---------------------------------------------------------------- held deliveries

bool Dispatcher::hold(ClaimedDelivery delivery, SteadyTime leased_at, bool reserved) {
  const std::int64_t seq = delivery.lease.seq;
  {
    std::lock_guard lock(scheduler_mutex_);
    if (!scheduler_.add(delivery.host_key, seq, reserved, clock_->steady_now())) return false;
  }
  held_.insert_or_assign(seq, Held{std::move(delivery), leased_at + times_.lease});
  return true;
}

void Dispatcher::drop_waiting(std::unordered_map<std::int64_t, Held>::iterator it) {
  {
    std::lock_guard lock(scheduler_mutex_);
    scheduler_.remove(it->second.delivery.host_key, it->first);
  }
  held_.erase(it);
}

void Dispatcher::hold_back(std::unordered_map<std::int64_t, Held>::iterator it, SteadyTime now) {
  Millis until_probe{0};
  {
    std::lock_guard lock(scheduler_mutex_);
    scheduler_.finished(it->second.delivery.host_key, std::nullopt, now);
    until_probe = breaker_.hold_for(it->second.delivery.host_key, now);
  }
  // Due again when the endpoint may be probed, so claims do not bring it straight back.
  store_.release(it->second.delivery.lease, std::max(until_probe, deferral(options_)));
  held_.erase(it);
}

void Dispatcher::report(const BreakerTransition& t) {
  if (t.to == BreakerState::kOpen) {
    // Its waiting deliveries become due when it may be probed, so claims stop walking past them.
    const SteadyTime now = clock_->steady_now();
    Millis hold{0};
    {
      std::lock_guard lock(scheduler_mutex_);
      hold = breaker_.hold_for(t.endpoint, now);
    }
    if (options_.breaker.defer_backlog && hold > Millis(0) && !stopping_)
      store_.defer_host(t.endpoint, now + hold, 0, /*announce=*/true);
    spdlog::warn(
        "event=breaker_open endpoint={} failure_rate={:.2f} attempts={} cooldown_ms={} "
        "reason={}",
        t.endpoint, t.failure_rate, t.attempts, t.cooldown.count(),
        t.probe ? "probe_failed" : "failure_rate");
  } else if (t.to == BreakerState::kHalfOpen) {
    // While the probe runs (one attempt, within the attempt timeout) the rest of the backlog
    // stays out of the claims' way; the oldest, the probe's, stays due.
    if (options_.breaker.defer_backlog && !stopping_)
      store_.defer_host(t.endpoint, clock_->steady_now() + options_.attempt_timeout, 1);
    spdlog::info("event=breaker_half_open endpoint={}", t.endpoint);
  } else {
    spdlog::info("event=breaker_closed endpoint={}", t.endpoint);
  }
  if (options_.observer) options_.observer->on_breaker_transition(t.to);
}

void Dispatcher::stale_write(std::string_view write, const LeaseToken& token) {
  // The lease ran out and the delivery was claimed again (by this or another process): the
  // write is refused, never applied, and said out loud.
  spdlog::warn("event=stale_lease write={} seq={} generation={}", write, token.seq,
               token.generation);
  if (options_.observer) options_.observer->on_stale_lease(write);
}

// ---------------------------------------------------------------- attempts

void Dispatcher::pump() {
  const SteadyTime now = clock_->steady_now();
  for (;;) {
    std::optional<HostScheduler::Pick> pick;
    auto admission = EndpointBreaker::Admission::kRun;
    {
      std::lock_guard lock(scheduler_mutex_);
      pick = scheduler_.next(now);
      if (pick) admission = breaker_.admit(pick->host, now);
    }
    if (!pick) return;
    auto it = held_.find(pick->job);
    if (it != held_.end() && admission == EndpointBreaker::Admission::kHold) {
      hold_back(it, now);
      continue;
    }
    if (it != held_.end() && it->second.lease_end - now >= times_.start_minimum) {
      it->second.probe = admission == EndpointBreaker::Admission::kProbe;
      start_attempt(it->second);
      continue;
    }
    // Too little lease left to finish and be recorded inside it (its renewal failed or is
    // late): hand it back rather than risk a second sender.
    {
      std::lock_guard lock(scheduler_mutex_);
      scheduler_.finished(pick->host, std::nullopt, now);
    }
    if (it != held_.end()) {
      store_.release(it->second.delivery.lease, Millis(0));
      held_.erase(it);
    }
  }
}

Signer& Dispatcher::signer_for(const std::shared_ptr<const AppKey>& key) {
  auto it = signers_.find(key->app.id);
  // A rotated secret arrives as a new AppKey: rebuild the signer from it.
  if (it == signers_.end() || it->second.first != key) {
    if (it != signers_.end()) signers_.erase(it);
    it = signers_.try_emplace(key->app.id, key, Signer(*key)).first;
  }
  return it->second.second;
}

void Dispatcher::start_attempt(Held& held) {
  const ClaimedDelivery& d = held.delivery;
  // The keyring is warm (claims and enqueue looked the app up), so this reads no disk.
  Result<std::shared_ptr<const AppKey>> key = keys_.get(d.app_id);
  if (!key.ok()) {
    // Never send unsigned: give the delivery back and try again later.
    spdlog::error("event=app_key_unavailable delivery_id={} app_id={} error=\"{}\"", d.id, d.app_id,
                  key.status().to_string());
    {
      std::lock_guard lock(scheduler_mutex_);
      scheduler_.finished(d.host_key, std::nullopt, clock_->steady_now());
    }
    store_.release(d.lease, deferral(options_));
    held_.erase(d.lease.seq);
    return;
  }
  held.running = true;
  ++in_flight_;
  const TimePoint started_at = clock_->now();

  HttpRequest request;
  request.url = d.callback_url;
  request.body = d.body;
  request.timeout = options_.attempt_timeout;
  request.headers.reserve(4);
  request.headers.push_back("X-Callback-Id: " + d.id);
  request.headers.push_back("X-Callback-Attempt: " + std::to_string(d.budget_used + 1));
  signer_for(*key).add_headers(d.id, started_at, *d.body, request.headers);

  client_.post(std::move(request), [this, seq = d.lease.seq, started_at](HttpResponse r) {
    on_attempt_done(seq, started_at, std::move(r));
  });
}

void Dispatcher::on_attempt_done(std::int64_t seq, TimePoint started_at, HttpResponse response) {
  --in_flight_;
  auto it = held_.find(seq);
  if (it == held_.end()) return;  // cannot happen: a running delivery stays held
  const ClaimedDelivery& d = it->second.delivery;
  std::optional<BreakerTransition> transition;
  Millis until_probe{0};
  {
    std::lock_guard lock(scheduler_mutex_);
    const SteadyTime now = clock_->steady_now();
    scheduler_.finished(d.host_key, AttemptOutcome{response.http_status != 0, response.duration},
                        now);
    transition =
        breaker_.record(d.host_key, response.error, response.http_status, it->second.probe, now);
    if (options_.breaker.defer_backlog) until_probe = breaker_.hold_for(d.host_key, now);
  }
  if (transition) report(*transition);

  Attempt attempt;
  attempt.number = d.attempts_made + 1;
  attempt.started_at = started_at;
  attempt.duration = response.duration;
  attempt.http_status = response.http_status;
  attempt.error = response.error;
  attempt.error_detail = std::move(response.error_detail);
  attempt.response_head = std::move(response.body_head);

  NextStep next = policy_.after_attempt(attempt.error, d.budget_used + 1);
  // Open (this attempt opened it, or was a straggler): the retry joins the deferred backlog.
  next.retry_after = std::max(next.retry_after, until_probe);
  spdlog::debug("event=attempt delivery_id={} attempt={} status={} error={} next_state={}", d.id,
                attempt.number, attempt.http_status, to_string(attempt.error),
                to_string(next.state));
  if (options_.observer) options_.observer->on_attempt(attempt, next.state);
  if (options_.history) options_.history->add(clock_->now(), attempt.error == AttemptError::kNone);
  store_.record(AttemptRecord{d.lease, std::move(attempt), next.state, next.retry_after});

  pump();
  maybe_claim();
}

// ---------------------------------------------------------------- store results

void Dispatcher::on_claimed(Result<std::vector<ClaimedDelivery>> claimed,
                            std::optional<Millis> next_due, SteadyTime sent_at) {
  const auto for_host = std::exchange(claiming_for_host_, std::nullopt);
  const auto probe_for = std::exchange(claiming_probe_, std::nullopt);
  if (probe_for && (!claimed.ok() || claimed->empty())) {
    // Nothing of that endpoint is due: look again in a while; a fresh callback may probe first.
    std::lock_guard lock(scheduler_mutex_);
    breaker_.probe_not_found(*probe_for, clock_->steady_now(), options_.breaker.cooldown);
  }
  if (!claimed.ok()) {
    spdlog::error("event=claim_failed error=\"{}\"", claimed.status().to_string());
  } else {
    const std::size_t asked = claimed->size();
    std::size_t refused = 0;
    for (ClaimedDelivery& d : *claimed) {
      if (stopping_) {
        store_.release(d.lease, Millis(0));
        continue;
      }
      if (auto it = held_.find(d.lease.seq); it != held_.end()) {
        // Its lease ran out while we held it and this claim took it again. Keep the one copy
        // under the new token; if its attempt already runs, the new lease goes back.
        if (!it->second.running) {
          it->second.delivery.lease = d.lease;
          it->second.lease_end = sent_at + times_.lease;
        } else {
          store_.release(d.lease, Millis(0));
        }
        continue;
      }
      const LeaseToken token = d.lease;
      const std::string host_key = d.host_key;
      if (!hold(std::move(d), sent_at, /*reserved=*/false)) {
        // Its host (or the host's pool) filled up since the claim was sized. A quick host is
        // marked spilled, so a claim for it takes the row back as soon as its line has room:
        // due at once. Others wait a poll interval, so busy hosts are not claimed round and
        // round.
        bool quick = false;
        {
          std::lock_guard lock(scheduler_mutex_);
          std::optional<HostView> view = scheduler_.view(host_key);
          quick = view && view->pool == HostPool::kQuick;
          scheduler_.note_spilled(host_key);
        }
        store_.release(token, quick ? Millis(0) : deferral(options_));
        ++refused;
      }
    }
    if (probe_for) {
      // One delivery, the probe: it starts as soon as its endpoint's line lets it.
    } else if (for_host) {
      // As many as it had room for: the store may hold more of them.
      if (asked >= for_host->second) {
        std::lock_guard lock(scheduler_mutex_);
        scheduler_.note_spilled(for_host->first);
      }
    } else if (refused == 0 && asked > 0 && !next_due) {
      // A full batch that all fitted: more may be due right now. A batch with rows that did
      // not fit waits for the next tick, so a crowd of busy hosts is not claimed round and
      // round.
      claim_wanted_ = true;
    }
    pump();
  }
  if (next_due && !stopping_) arm_timer(clock_->steady_now() + *next_due);
  maybe_claim();
  maybe_finish_stop();
}

void Dispatcher::on_recorded(const std::vector<AttemptRecord>& stored, const StaleTokens& stale) {
  std::optional<Millis> earliest_retry;
  for (const AttemptRecord& r : stored) {
    auto it = held_.find(r.lease.seq);
    const bool ours = it != held_.end() && it->second.delivery.lease == r.lease;
    std::string app_id = ours ? std::move(it->second.delivery.app_id) : std::string();
    if (ours) held_.erase(it);
    if (std::find(stale.begin(), stale.end(), r.lease) != stale.end()) {
      stale_write("record", r.lease);
    } else if (r.next_state == DeliveryState::kPending) {
      earliest_retry = earliest_retry ? std::min(*earliest_retry, r.retry_after) : r.retry_after;
    } else if (options_.on_finished && ours) {
      options_.on_finished(app_id);
    }
  }
  // Retries are due once their record is stored, not before.
  if (earliest_retry && !stopping_) arm_timer(clock_->steady_now() + *earliest_retry);
  maybe_claim();
  maybe_finish_stop();
}

void Dispatcher::on_released(const StaleTokens& stale) {
  for (const LeaseToken& token : stale) stale_write("release", token);
  maybe_finish_stop();
}

void Dispatcher::on_renewed(const std::vector<LeaseToken>& renewed, const StaleTokens& stale,
                            SteadyTime sent_at) {
  for (const LeaseToken& token : renewed) {
    auto it = held_.find(token.seq);
    if (it == held_.end() || !(it->second.delivery.lease == token)) continue;
    it->second.lease_end = sent_at + times_.lease;
    it->second.renewing = false;
  }
  for (const LeaseToken& token : stale) {
    auto it = held_.find(token.seq);
    // No longer held under this token: its attempt was recorded (or it was released) while
    // the renewal was on its way, which is no one else's write.
    if (it == held_.end() || !(it->second.delivery.lease == token)) continue;
    stale_write("renew", token);
    it->second.renewing = false;
    // Someone else holds it now: a waiting one must not start. A running one finishes, and
    // its record will be refused as stale too.
    if (!it->second.running) drop_waiting(it);
  }
  pump();
  maybe_finish_stop();
}

void Dispatcher::on_maintained(bool more_to_prune) {
  // A full prune batch means more is old enough: keep pruning on the next ticks.
  if (more_to_prune) prune_wanted_ = true;
  maybe_finish_stop();
}

void Dispatcher::on_deferred() { maybe_finish_stop(); }

// ---------------------------------------------------------------- claims and the tick

void Dispatcher::maybe_claim() {
  if (!running_ || stopping_ || store_.claiming()) return;
  ClaimRequest request;
  std::vector<SkippedBacklog> skipped_backlogs;
  {
    std::lock_guard lock(scheduler_mutex_);
    std::optional<HostScheduler::SpilledHost> spilled;
    // A half-open endpoint's probe first: its oldest due delivery, and only that.
    std::optional<std::string> probe = breaker_.take_probe_claim(clock_->steady_now());
    // An open endpoint's overflow waits in the store until it closes.
    while (!probe && (spilled = scheduler_.take_spilled()) && !breaker_.closed(spilled->host)) {
    }
    if (probe) {
      request.limit = 1;
      request.only_host = *probe;
      claiming_probe_ = std::move(probe);
    } else if (spilled) {
      // A quick host's overflow first: it is claimed by host, not behind other hosts' rows.
      request.limit = std::min(options_.claim_batch, spilled->room);
      request.only_host = spilled->host;
      claiming_for_host_.emplace(std::move(spilled->host), request.limit);
    } else {
      if (!claim_wanted_) return;
      request.limit = std::min(options_.claim_batch, scheduler_.waiting_room());
      if (request.limit == 0) return;  // a finishing attempt calls back here
      // Open endpoints first: their deliveries wait in the store.
      const SteadyTime now = clock_->steady_now();
      request.skip_hosts = breaker_.unhealthy(kMaxSkippedHosts / 2);
      for (const std::string& host : request.skip_hosts) {
        const Millis hold = breaker_.hold_for(host, now);  // 0 while half-open
        if (options_.breaker.defer_backlog && hold > Millis(0))
          skipped_backlogs.push_back(SkippedBacklog{host, now + hold, Millis(0), 0});
      }
      for (std::string& host :
           scheduler_.full_hosts(kMaxSkippedHosts - request.skip_hosts.size())) {
        std::optional<HostView> view = scheduler_.view(host);
        if (view && view->pool == HostPool::kSlow && breaker_.closed(host)) {
          skipped_backlogs.push_back(
              SkippedBacklog{host, std::nullopt,
                             std::clamp(kSlowBacklogDurations * view->typical_duration,
                                        kMinSlowBacklogHold, kMaxSlowBacklogHold),
                             kSlowBacklogKeptPerSlot * std::max<std::size_t>(view->limit, 1)});
        } else if (view && view->pool == HostPool::kQuick) {
          // Its rows this claim leaves (a retry falling due, say) are claimed for it once its
          // line has room, like an overflow; nothing else would before the next tick.
          scheduler_.note_spilled(host);
        }
        request.skip_hosts.push_back(std::move(host));
      }
      claim_wanted_ = false;
    }
  }
  // Before the claim: the store runs its calls in order, so this claim already skips less.
  defer_skipped_backlogs(skipped_backlogs);
  request.lease = times_.lease;
  store_.claim(std::move(request));
}

void Dispatcher::defer_skipped_backlogs(const std::vector<SkippedBacklog>& hosts) {
  if (hosts.empty()) return;
  const SteadyTime now = clock_->steady_now();
  for (const SkippedBacklog& skipped : hosts) {
    auto [it, fresh] = backlog_moves_.try_emplace(skipped.host);
    const SteadyTime until =
        skipped.until ? *skipped.until
                      : (!fresh && now < it->second.until ? it->second.until : now + skipped.hold);
    if (!fresh && now - it->second.moved_at < kBacklogMoveInterval) continue;  // a moment ago
    it->second = BacklogMove{until, now};
    store_.defer_host(skipped.host, until, skipped.keep);
  }
}

void Dispatcher::renew_leases(SteadyTime now) {
  std::vector<LeaseToken> due;
  for (auto& [seq, held] : held_) {
    if (held.renewing || held.lease_end - now >= times_.renew_below) continue;
    held.renewing = true;
    due.push_back(held.delivery.lease);
  }
  if (!due.empty()) store_.renew(std::move(due), times_.lease);
}

void Dispatcher::arm_timer(SteadyTime at) {
  if (timer_at_ && *timer_at_ <= at) return;
  timer_at_ = at;
  // The clock may be a test's manual clock, so never sleep past one poll interval.
  const auto delay = std::clamp(std::chrono::duration_cast<Millis>(at - clock_->steady_now()),
                                Millis(0), options_.poll_interval);
  const std::uint64_t generation = ++timer_generation_;
  timer_.expires_after(delay);
  timer_.async_wait([this, generation](const boost::system::error_code& ec) {
    if (ec || generation != timer_generation_) return;
    timer_at_.reset();
    on_tick();
  });
}

void Dispatcher::on_tick() {
  if (!running_ || stopping_) return;
  const SteadyTime now = clock_->steady_now();
  // Renewals go to the store before lease recovery, so a held lease is never recovered.
  renew_leases(now);
  const bool prune = prune_wanted_ || now >= next_prune_;
  if (now >= next_prune_) next_prune_ = now + kPruneInterval;
  prune_wanted_ = false;
  store_.maintain(/*recover=*/true, prune, options_.retention);
  store_.retry();
  std::vector<BreakerTransition> half_open;
  {
    std::lock_guard lock(scheduler_mutex_);
    half_open = breaker_.advance(now);
    if (now >= next_forget_) {
      next_forget_ = now + kForgetInterval;
      scheduler_.forget_idle(now);
      breaker_.forget_idle(now);
      std::erase_if(backlog_moves_, [&](const auto& move) { return move.second.until < now; });
    }
  }
  for (const BreakerTransition& t : half_open) report(t);
  claim_wanted_ = true;
  maybe_claim();
  arm_timer(now + options_.poll_interval);
}

}  // namespace callbackd
