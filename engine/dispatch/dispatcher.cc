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

// How long a delivery given back for want of room goes back to the store for: long enough that
// the next claims do not bring it straight back.
Millis deferral(const DispatcherOptions& options) {
  return std::clamp(options.poll_interval, Millis(10), Millis(1000));
}

}  // namespace

Dispatcher::Dispatcher(asio::io_context& io, std::shared_ptr<Queue> queue,
                       std::shared_ptr<AppKeyring> keys, RetryPolicy policy,
                       DispatcherOptions options, std::shared_ptr<const Clock> clock)
    : io_(io),
      keys_(std::move(keys)),
      policy_(std::move(policy)),
      options_(std::move(options)),
      clock_(std::move(clock)),
      times_(lease_times(options_.attempt_timeout, options_.poll_interval)),
      client_(io, client_options(options_)),
      timer_(io),
      next_prune_(clock_->steady_now()),
      next_forget_(clock_->steady_now()),
      admission_(scheduler_options(options_), options_.breaker, times_.lease),
      store_(io, std::move(queue), keys_, clock_, *this) {}

Dispatcher::~Dispatcher() = default;

// ---------------------------------------------------------------- lifecycle

void Dispatcher::start() {
  if (running_) return;
  running_ = true;
  stopping_ = false;
  admission_.open_for_hand_offs();
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
  admission_.close_for_hand_offs();
  store_.drop_deferrals();
  // Attempts waiting for a slot go back to the store, due now, for whoever runs next. The
  // others finish; the tick goes on renewing their leases until their records are stored.
  for (auto it = attempts_.begin(); it != attempts_.end();) {
    auto next = std::next(it);
    if (it->second.stage() == dispatch::Attempt::Stage::kWaiting) {
      admission_.leave_line(it->second.host(), it->first);
      give_back(it, Millis(0));
    }
    it = next;
  }
  maybe_finish_stop();
}

void Dispatcher::maybe_finish_stop() {
  if (!stopping_ || !stop_done_) return;
  if (admission_.reservations() > 0) return;
  if (!attempts_.empty() || !store_.idle()) return;
  running_ = false;
  stopping_ = false;
  ++timer_generation_;
  timer_.cancel();
  timer_at_.reset();
  auto done = std::move(stop_done_);
  stop_done_ = nullptr;
  done();
}

void Dispatcher::abandon() {
  if (!running_ && !stopping_) return;
  spdlog::warn("event=stop_cut_short {}", stop_progress());
  running_ = false;
  stopping_ = false;
  stop_done_ = nullptr;
  ++timer_generation_;
  timer_.cancel();
  timer_at_.reset();
  admission_.close_for_hand_offs();
  store_.abandon();
  attempts_.clear();
}

std::string Dispatcher::stop_progress() const {
  std::size_t waiting = 0, sending = 0, recording = 0;
  for (const auto& [seq, attempt] : attempts_) {
    switch (attempt.stage()) {
      case dispatch::Attempt::Stage::kWaiting:
        ++waiting;
        break;
      case dispatch::Attempt::Stage::kSending:
        ++sending;
        break;
      case dispatch::Attempt::Stage::kRecording:
        ++recording;
        break;
    }
  }
  return "waiting=" + std::to_string(waiting) + " sending=" + std::to_string(sending) +
         " recording=" + std::to_string(recording) +
         " writes_not_stored=" + std::to_string(store_.writes_waiting());
}

// ---------------------------------------------------------------- hand-off from enqueue

bool Dispatcher::try_reserve(std::string_view host_key) {
  Admission::Reservation r = admission_.try_reserve(host_key, clock_->steady_now());
  if (r.evicted) {
    // Out of its line already: it goes back to the store, due at once.
    asio::post(io_, [this, job = *r.evicted] {
      auto it = attempts_.find(job);
      if (it == attempts_.end() || it->second.stage() != dispatch::Attempt::Stage::kWaiting) return;
      give_back(it, Millis(0));
    });
  }
  return r.reserved;
}

void Dispatcher::cancel_reservation(const std::string& host_key) {
  admission_.cancel_reservation(host_key);
  asio::post(io_, [this] { maybe_finish_stop(); });
}

void Dispatcher::hand_off(ClaimedDelivery delivery, SteadyTime leased_at) {
  asio::post(io_, [this, delivery = std::move(delivery), leased_at]() mutable {
    const bool keep = running_ && !stopping_;
    admission_.reservation_arrived(delivery.host_key, keep);
    if (keep) {
      hold(std::move(delivery), leased_at, /*reserved=*/true);
      pump();
    } else {
      store_.release(delivery.lease, Millis(0));
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

std::vector<EndpointHealth> Dispatcher::endpoints(const EndpointQuery& query) const {
  return admission_.endpoints(query, clock_->steady_now(), clock_->now());
}

// ---------------------------------------------------------------- held attempts

bool Dispatcher::hold(ClaimedDelivery delivery, SteadyTime leased_at, bool reserved) {
  const std::int64_t seq = delivery.lease.seq;
  if (!admission_.join_line(delivery.host_key, seq, reserved, clock_->steady_now())) return false;
  const LeaseToken token = delivery.lease;
  attempts_.insert_or_assign(
      seq, dispatch::Attempt(std::move(delivery), Lease(token, leased_at + times_.lease)));
  return true;
}

void Dispatcher::give_back(Attempts::iterator it, Millis delay) {
  store_.release(it->second.lease().token(), delay);
  attempts_.erase(it);
}

void Dispatcher::report(const BreakerTransition& t) {
  const SteadyTime now = clock_->steady_now();
  if (t.to == BreakerState::kOpen) {
    // Its waiting deliveries become due when it may be probed, so claims stop walking past them.
    const Millis hold = admission_.hold_for(t.endpoint, now);
    if (options_.breaker.defer_backlog && hold > Millis(0) && !stopping_) {
      store_.defer(BacklogDeferral{t.endpoint, now + hold, 0, false, /*announce=*/true});
    }
    spdlog::warn(
        "event=breaker_open endpoint={} failure_rate={:.2f} attempts={} cooldown_ms={} "
        "reason={}",
        t.endpoint, t.failure_rate, t.attempts, t.cooldown.count(),
        t.probe ? "probe_failed" : "failure_rate");
  } else if (t.to == BreakerState::kHalfOpen) {
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
  const auto claimed_as_probe = [this](Admission::JobId job) {
    auto it = attempts_.find(job);
    return it != attempts_.end() && it->second.claimed_as_probe();
  };
  while (std::optional<Admission::Next> next = admission_.next(now, claimed_as_probe)) {
    const std::string& host = next->pick.host;
    auto it = attempts_.find(next->pick.job);
    if (next->verdict == EndpointBreaker::Admission::kHold) {
      // Its endpoint is unhealthy: back to the store, no attempt spent, due when it may be
      // probed, so claims do not bring it straight back.
      if (it != attempts_.end()) give_back(it, std::max(next->hold_for, deferral(options_)));
      continue;
    }
    if (it == attempts_.end()) {
      admission_.not_started(host, now);
      continue;
    }
    if (!it->second.lease().outlives(now, times_.start_minimum)) {
      // Too little lease, as last confirmed, to finish and be recorded inside it (its renewal
      // failed or is late): given up unsent, rather than risk a second sender.
      admission_.not_started(host, now);
      give_back(it, Millis(0));
      continue;
    }
    start_attempt(it->second, next->verdict == EndpointBreaker::Admission::kProbe);
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

void Dispatcher::start_attempt(dispatch::Attempt& attempt, bool probe) {
  const ClaimedDelivery& d = attempt.delivery();
  // Claims and enqueues brought the key into memory; the io thread never reads the store.
  Result<std::shared_ptr<const AppKey>> key = keys_->cached(d.app_id);
  if (!key.ok()) {
    // Never send unsigned: give the delivery back and try again later.
    spdlog::error("event=app_key_unavailable delivery_id={} app_id={} error=\"{}\"", d.id, d.app_id,
                  key.status().to_string());
    admission_.not_started(d.host_key, clock_->steady_now());
    give_back(attempts_.find(attempt.seq()), deferral(options_));
    return;
  }
  ++in_flight_;
  HttpRequest request = attempt.start(signer_for(*key), clock_->now(), clock_->steady_now(),
                                      options_.attempt_timeout, probe);
  client_.post(std::move(request),
               [this, seq = attempt.seq()](HttpResponse r) { on_attempt_done(seq, std::move(r)); });
}

void Dispatcher::on_attempt_done(std::int64_t seq, HttpResponse response) {
  --in_flight_;
  auto it = attempts_.find(seq);
  if (it == attempts_.end()) return;  // abandoned meanwhile
  dispatch::Attempt& attempt = it->second;
  const Admission::Verdict verdict =
      admission_.finished(attempt.host(), response.error, response.http_status, response.duration,
                          attempt.probe(), clock_->steady_now());
  if (verdict.transition) report(*verdict.transition);

  NextStep next = policy_.after_attempt(response.error, attempt.delivery().budget_used + 1);
  // Open (this attempt opened it, or was a straggler): the retry joins the deferred backlog.
  if (options_.breaker.defer_backlog)
    next.retry_after = std::max(next.retry_after, verdict.hold_for);
  AttemptRecord record = attempt.finish(std::move(response), next);
  spdlog::debug("event=attempt delivery_id={} attempt={} status={} error={} next_state={}",
                attempt.delivery().id, record.attempt.number, record.attempt.http_status,
                to_string(record.attempt.error), to_string(next.state));
  if (options_.observer) options_.observer->on_attempt(record.attempt, next.state);
  if (options_.history) {
    options_.history->add(clock_->now(), record.attempt.error == AttemptError::kNone);
  }
  store_.record(std::move(record), attempt.started());

  pump();
  maybe_claim();
}

// ---------------------------------------------------------------- store answers

void Dispatcher::on_claimed(Result<std::vector<ClaimedDelivery>> claimed,
                            std::optional<Millis> next_due, SteadyTime sent_at) {
  const std::optional<ClaimPlan> plan = std::exchange(claim_out_, std::nullopt);
  const bool probe = plan && plan->kind == ClaimPlan::Kind::kProbe;
  const SteadyTime now = clock_->steady_now();
  if (probe && (!claimed.ok() || claimed->empty())) {
    // Nothing of that endpoint is due: look again in a while.
    admission_.probe_not_found(*plan->request.only_host, now, deferral(options_));
  }
  if (!claimed.ok()) {
    spdlog::error("event=claim_failed error=\"{}\"", claimed.status().to_string());
  } else {
    const std::size_t asked = claimed->size();
    std::size_t refused = 0;
    for (ClaimedDelivery& d : *claimed) {
      if (!running_ || stopping_) {
        store_.release(d.lease, Millis(0));
        continue;
      }
      if (auto it = attempts_.find(d.lease.seq); it != attempts_.end()) {
        // Its lease ran out while we held it and this claim took it again. Keep the one copy
        // under the new token; if its attempt already runs, the new lease goes back.
        if (it->second.stage() == dispatch::Attempt::Stage::kWaiting) {
          it->second.take_lease(Lease(d.lease, sent_at + times_.lease));
        } else {
          store_.release(d.lease, Millis(0));
        }
        continue;
      }
      const LeaseToken token = d.lease;
      const std::string host = d.host_key;
      if (!hold(std::move(d), sent_at, /*reserved=*/false)) {
        // Its host (or the host's pool) filled up since the claim was sized. A quick host's
        // overflow is claimed by host as soon as its line has room: due at once. Others wait
        // a poll interval, so busy hosts are not claimed round and round.
        store_.release(token, admission_.spilled(host) ? Millis(0) : deferral(options_));
        ++refused;
        continue;
      }
      if (probe) {
        attempts_.at(token.seq).mark_claimed_as_probe();
        // While the probe runs the rest of the endpoint's backlog stays out of the claims'
        // way, but never past when the next probe would go.
        const Millis hold = admission_.hold_during_probe(host, options_.attempt_timeout);
        if (options_.breaker.defer_backlog && hold > Millis(0)) {
          store_.defer(BacklogDeferral{host, now + hold});
        }
      }
    }
    if (plan && plan->kind == ClaimPlan::Kind::kForHost) {
      // As many as it had room for: the store may hold more of them.
      if (asked >= plan->request.limit) admission_.spilled_more(*plan->request.only_host);
    } else if (plan && plan->kind == ClaimPlan::Kind::kDue && refused == 0 && asked > 0 &&
               !next_due) {
      // A full batch that all fitted: more may be due right now. A batch with rows that did
      // not fit waits for the next tick, so a crowd of busy hosts is not claimed round and
      // round.
      claim_wanted_ = true;
    }
    pump();
  }
  if (next_due && running_ && !stopping_) arm_timer(now + *next_due);
  maybe_claim();
  maybe_finish_stop();
}

void Dispatcher::on_recorded(const std::vector<AttemptRecord>& records, const StaleTokens& stale) {
  std::optional<Millis> earliest_retry;
  for (const AttemptRecord& r : records) {
    auto it = attempts_.find(r.lease.seq);
    const bool ours = it != attempts_.end() && it->second.lease().token() == r.lease;
    std::string app_id = ours ? it->second.delivery().app_id : std::string();
    if (ours) attempts_.erase(it);
    if (std::find(stale.begin(), stale.end(), r.lease) != stale.end()) {
      stale_write("record", r.lease);
    } else if (r.next_state == DeliveryState::kPending) {
      earliest_retry = earliest_retry ? std::min(*earliest_retry, r.retry_after) : r.retry_after;
    } else if (options_.on_finished && ours) {
      options_.on_finished(app_id);
    }
  }
  // Retries are due once their record is stored, not before.
  if (earliest_retry && running_ && !stopping_) {
    arm_timer(clock_->steady_now() + *earliest_retry);
  }
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
    auto it = attempts_.find(token.seq);
    if (it == attempts_.end() || !(it->second.lease().token() == token)) continue;
    it->second.lease().confirm(sent_at, times_.lease);
  }
  for (const LeaseToken& token : stale) {
    auto it = attempts_.find(token.seq);
    // No longer held under this token: its attempt was recorded (or it was given back) while
    // the renewal was on its way, which is no one else's write.
    if (it == attempts_.end() || !(it->second.lease().token() == token)) continue;
    stale_write("renew", token);
    // Someone else holds it now: a waiting one must not start. One that was sent finishes,
    // and its record will be refused as stale too.
    if (it->second.stage() == dispatch::Attempt::Stage::kWaiting) {
      admission_.leave_line(it->second.host(), it->first);
      attempts_.erase(it);
    }
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

// ---------------------------------------------------------------- claims, leases and the tick

void Dispatcher::maybe_claim() {
  if (!running_ || stopping_ || store_.claiming()) return;
  const SteadyTime now = clock_->steady_now();
  std::optional<ClaimPlan> plan = admission_.plan_claim(now, options_.claim_batch, claim_wanted_,
                                                        options_.breaker.defer_backlog);
  if (!plan) return;
  if (plan->kind == ClaimPlan::Kind::kDue) claim_wanted_ = false;
  // Before the claim: the store runs its calls in order, so this claim already skips less.
  for (BacklogDeferral& d : plan->deferrals) defer(std::move(d));
  plan->deferrals.clear();
  ClaimRequest request = plan->request;
  request.lease = times_.lease;
  claim_out_ = std::move(plan);
  store_.claim(std::move(request));
}

void Dispatcher::defer(BacklogDeferral deferral) {
  if (auto move = backlog_moves_.next(std::move(deferral), clock_->steady_now())) {
    store_.defer(std::move(*move));
  }
}

void Dispatcher::keep_leases(SteadyTime now) {
  std::vector<LeaseToken> due;
  std::vector<std::int64_t> given_up;
  for (auto& [seq, attempt] : attempts_) {
    Lease& lease = attempt.lease();
    if (attempt.stage() == dispatch::Attempt::Stage::kWaiting && lease.ended(now)) {
      // Not confirmed in time: the store may have given it to someone else.
      given_up.push_back(seq);
    } else if (!lease.renewing() && !lease.outlives(now, times_.renew_below)) {
      lease.renewal_sent();
      due.push_back(lease.token());
    }
  }
  if (!due.empty()) store_.renew(std::move(due), times_.lease);
  if (given_up.empty()) return;
  spdlog::warn("event=leases_given_up count={} reason=\"not confirmed by the store in time\"",
               given_up.size());
  for (std::int64_t seq : given_up) {
    auto it = attempts_.find(seq);
    admission_.leave_line(it->second.host(), seq);
    give_back(it, Millis(0));
  }
}

void Dispatcher::maintain(SteadyTime now) {
  const bool prune = prune_wanted_ || now >= next_prune_;
  if (now >= next_prune_) next_prune_ = now + kPruneInterval;
  prune_wanted_ = false;
  LeaseRecovery recovery;
  recovery.held.reserve(attempts_.size());
  for (const auto& [seq, attempt] : attempts_) recovery.held.push_back(seq);
  store_.add_releasing(recovery.held);
  std::sort(recovery.held.begin(), recovery.held.end());
  // Another process's leases only once this one has heard from the store throughout the last
  // attempt bound: after an outage, their holders renew first.
  if (store_.settled_for(times_.start_minimum, now)) recovery.others_after = times_.start_minimum;
  store_.maintain(std::move(recovery), prune, options_.retention);
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
  if (!running_) return;
  const SteadyTime now = clock_->steady_now();
  // Also while stopping: attempts still recording keep their leases until their records land.
  keep_leases(now);
  if (!stopping_) {
    maintain(now);
    for (const BreakerTransition& t : admission_.advance(now)) report(t);
    if (now >= next_forget_) {
      next_forget_ = now + kForgetInterval;
      admission_.forget_idle(now);
      backlog_moves_.forget_past(now);
    }
    claim_wanted_ = true;
    maybe_claim();
  }
  arm_timer(now + options_.poll_interval);
}

}  // namespace callbackd
