#include "dispatch/endpoint_breaker.h"

#include <algorithm>

namespace callbackd {

namespace {

// Closed endpoints are forgotten after this many windows without an attempt.
constexpr int kForgetAfterWindows = 3;

double rate(std::size_t failures, std::size_t attempts) {
  return attempts == 0 ? 0.0 : static_cast<double>(failures) / static_cast<double>(attempts);
}

}  // namespace

BreakerVerdict judge(AttemptError error, int http_status) {
  switch (error) {
    case AttemptError::kNone:
      return BreakerVerdict::kHealthy;
    case AttemptError::kBlocked:
      return BreakerVerdict::kNotCounted;
    case AttemptError::kStatus:
      // The host answered. 5xx, 408 and 429 say it is down, overloaded or asking us to slow
      // down; other statuses (a 404, a 410, a redirect) are about one URL, and one tenant's
      // broken path must not hold back every other tenant of a shared host.
      if (http_status >= 500 || http_status == 408 || http_status == 429) {
        return BreakerVerdict::kFailure;
      }
      return BreakerVerdict::kHealthy;
    case AttemptError::kTimeout:
    case AttemptError::kRefused:
    case AttemptError::kReset:
    case AttemptError::kDns:
    case AttemptError::kTls:
    case AttemptError::kNetwork:
      return BreakerVerdict::kFailure;
  }
  return BreakerVerdict::kFailure;
}

EndpointBreaker::EndpointBreaker(BreakerOptions options, Millis probe_patience)
    : options_(options),
      probe_patience_(probe_patience),
      bucket_width_(std::max(Millis(1), options.window / static_cast<int>(kBuckets))) {}

// ---------------------------------------------------------------- lookup and window

EndpointBreaker::Endpoint* EndpointBreaker::find(std::string_view endpoint) {
  auto it = endpoints_.find(endpoint);
  return it == endpoints_.end() ? nullptr : &it->second;
}

const EndpointBreaker::Endpoint* EndpointBreaker::find(std::string_view endpoint) const {
  auto it = endpoints_.find(endpoint);
  return it == endpoints_.end() ? nullptr : &it->second;
}

std::int64_t EndpointBreaker::bucket_number(SteadyTime now) const {
  return std::chrono::duration_cast<Millis>(now.time_since_epoch()) / bucket_width_;
}

void EndpointBreaker::roll(Endpoint& e, SteadyTime now) {
  const std::int64_t n = bucket_number(now);
  if (n <= e.newest_bucket) return;
  if (n - e.newest_bucket >= static_cast<std::int64_t>(kBuckets)) {
    e.buckets.fill(Bucket{});
  } else {
    for (std::int64_t j = e.newest_bucket + 1; j <= n; ++j) e.buckets[j % kBuckets] = Bucket{};
  }
  e.newest_bucket = n;
}

EndpointBreaker::Counts EndpointBreaker::window(const Endpoint& e, SteadyTime now) const {
  const std::int64_t oldest = bucket_number(now) - static_cast<std::int64_t>(kBuckets) + 1;
  Counts c;
  for (std::int64_t j = std::max(oldest, e.newest_bucket - std::int64_t(kBuckets) + 1);
       j <= e.newest_bucket; ++j) {
    if (j < 0) continue;
    c.attempts += e.buckets[j % kBuckets].attempts;
    c.failures += e.buckets[j % kBuckets].failures;
  }
  return c;
}

// ---------------------------------------------------------------- states

void EndpointBreaker::set_state(std::string_view key, Endpoint& e, BreakerState to) {
  --counts_[static_cast<std::size_t>(e.state)];
  ++counts_[static_cast<std::size_t>(to)];
  if (to == BreakerState::kClosed) {
    if (auto it = unhealthy_.find(key); it != unhealthy_.end()) unhealthy_.erase(it);
  } else if (e.state == BreakerState::kClosed) {
    unhealthy_.emplace(key);
  }
  e.state = to;
  e.probe = Probe::kNone;
}

BreakerTransition EndpointBreaker::open(std::string_view key, Endpoint& e, SteadyTime now,
                                        Millis cooldown, bool probe) {
  set_state(key, e, BreakerState::kOpen);
  e.cooldown = cooldown;
  e.opened_at = now;
  e.next_probe_at = now + cooldown;
  next_half_open_ = std::min(next_half_open_, e.next_probe_at);
  const Counts c = window(e, now);
  return {std::string(key), BreakerState::kOpen,
          c.attempts,       rate(c.failures, c.attempts),
          cooldown,         probe};
}

void EndpointBreaker::expire_probe(Endpoint& e, SteadyTime now) {
  if (e.probe != Probe::kNone && now >= e.probe_until) {
    e.probe = Probe::kNone;
    e.probe_claim_at = now;
  }
}

// ---------------------------------------------------------------- admission

EndpointBreaker::Admission EndpointBreaker::admit(std::string_view endpoint, SteadyTime now) {
  Endpoint* e = options_.enabled ? find(endpoint) : nullptr;
  if (e == nullptr || e->state == BreakerState::kClosed) return Admission::kRun;
  if (e->state == BreakerState::kOpen) return Admission::kHold;
  expire_probe(*e, now);
  if (e->probe == Probe::kRunning) return Admission::kHold;
  e->probe = Probe::kRunning;
  e->probe_until = now + probe_patience_;
  return Admission::kProbe;
}

Millis EndpointBreaker::hold_for(std::string_view endpoint, SteadyTime now) const {
  const Endpoint* e = find(endpoint);
  if (e == nullptr || e->state != BreakerState::kOpen || e->next_probe_at <= now) return Millis(0);
  return std::chrono::ceil<Millis>(e->next_probe_at - now);
}

// ---------------------------------------------------------------- verdicts

std::optional<BreakerTransition> EndpointBreaker::record(std::string_view endpoint,
                                                         AttemptError error, int http_status,
                                                         bool probe, SteadyTime now) {
  const BreakerVerdict verdict = judge(error, http_status);
  Endpoint* e = find(endpoint);
  if (verdict == BreakerVerdict::kNotCounted) {
    // A probe that taught nothing: let another one go.
    if (e != nullptr && probe && e->state == BreakerState::kHalfOpen) {
      e->probe = Probe::kNone;
      e->probe_claim_at = now;
      next_probe_claim_ = std::min(next_probe_claim_, now);
    }
    return std::nullopt;
  }
  if (e == nullptr) {
    if (endpoints_.size() >= options_.max_endpoints) return std::nullopt;  // untracked: closed
    e = &endpoints_.try_emplace(std::string(endpoint)).first->second;
    ++counts_[static_cast<std::size_t>(BreakerState::kClosed)];
  }
  const bool failed = verdict == BreakerVerdict::kFailure;
  roll(*e, now);
  Bucket& bucket = e->buckets[e->newest_bucket % kBuckets];
  ++bucket.attempts;
  e->last_attempt_at = now;
  if (failed) {
    ++bucket.failures;
    e->last_error = error;
    e->last_failure_at = now;
  }
  if (!options_.enabled) return std::nullopt;  // shown, never opened

  switch (e->state) {
    case BreakerState::kClosed: {
      if (!failed) return std::nullopt;
      const Counts c = window(*e, now);
      if (c.attempts < options_.min_attempts ||
          static_cast<double>(c.failures) <
              options_.failure_rate * static_cast<double>(c.attempts)) {
        return std::nullopt;
      }
      return open(endpoint, *e, now, options_.cooldown, /*probe=*/false);
    }
    case BreakerState::kOpen:
      return std::nullopt;  // a straggler started before it opened
    case BreakerState::kHalfOpen: {
      if (!probe) return std::nullopt;
      if (failed) {
        return open(endpoint, *e, now, next_cooldown(*e), /*probe=*/true);
      }
      const Counts c = window(*e, now);
      set_state(endpoint, *e, BreakerState::kClosed);
      // A fresh start: the failures that opened it must not reopen it at the next one.
      e->buckets.fill(Bucket{});
      e->cooldown = Millis(0);
      return BreakerTransition{std::string(endpoint),
                               BreakerState::kClosed,
                               c.attempts,
                               rate(c.failures, c.attempts),
                               Millis(0),
                               true};
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- time passing

std::vector<BreakerTransition> EndpointBreaker::advance(SteadyTime now) {
  std::vector<BreakerTransition> changed;
  if (now < next_half_open_) return changed;
  next_half_open_ = SteadyTime::max();
  for (const std::string& key : unhealthy_) {
    Endpoint& e = endpoints_.find(key)->second;
    if (e.state != BreakerState::kOpen) continue;
    if (e.next_probe_at > now) {
      next_half_open_ = std::min(next_half_open_, e.next_probe_at);
      continue;
    }
    // Counted directly: set_state would change unhealthy_ while it is walked (it stays in it).
    --counts_[static_cast<std::size_t>(BreakerState::kOpen)];
    ++counts_[static_cast<std::size_t>(BreakerState::kHalfOpen)];
    e.state = BreakerState::kHalfOpen;
    e.probe = Probe::kNone;
    e.probe_claim_at = now;
    next_probe_claim_ = std::min(next_probe_claim_, now);
    const Counts c = window(e, now);
    changed.push_back(BreakerTransition{key, BreakerState::kHalfOpen, c.attempts,
                                        rate(c.failures, c.attempts), e.cooldown, false});
  }
  return changed;
}

std::optional<std::string> EndpointBreaker::take_probe_claim(SteadyTime now) {
  if (now < next_probe_claim_) return std::nullopt;
  SteadyTime next = SteadyTime::max();
  for (const std::string& key : unhealthy_) {
    Endpoint& e = endpoints_.find(key)->second;
    if (e.state != BreakerState::kHalfOpen) continue;
    expire_probe(e, now);
    if (e.probe != Probe::kNone) {
      next = std::min(next, e.probe_until);
      continue;
    }
    if (e.probe_claim_at > now) {
      next = std::min(next, e.probe_claim_at);
      continue;
    }
    e.probe = Probe::kOnItsWay;
    e.probe_until = now + probe_patience_;
    next_probe_claim_ = now;  // others may be ready too
    return key;
  }
  next_probe_claim_ = next;
  return std::nullopt;
}

void EndpointBreaker::probe_not_found(std::string_view endpoint, SteadyTime now,
                                      Millis retry_after) {
  Endpoint* e = find(endpoint);
  if (e == nullptr || e->state != BreakerState::kHalfOpen || e->probe != Probe::kOnItsWay) return;
  e->probe = Probe::kNone;
  e->probe_claim_at = now + retry_after;
  next_probe_claim_ = std::min(next_probe_claim_, e->probe_claim_at);
}

void EndpointBreaker::forget_idle(SteadyTime now) {
  const Millis idle_for = kForgetAfterWindows * options_.window;
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    const Endpoint& e = it->second;
    if (e.state == BreakerState::kClosed && now - e.last_attempt_at >= idle_for) {
      --counts_[static_cast<std::size_t>(BreakerState::kClosed)];
      it = endpoints_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---------------------------------------------------------------- views

std::vector<std::string> EndpointBreaker::unhealthy(std::size_t max) const {
  std::vector<std::string> keys;
  for (const std::string& key : unhealthy_) {
    if (keys.size() >= max) break;
    keys.push_back(key);
  }
  return keys;
}

bool EndpointBreaker::closed(std::string_view endpoint) const {
  const Endpoint* e = find(endpoint);
  return e == nullptr || e->state == BreakerState::kClosed;
}

Millis EndpointBreaker::next_cooldown(const Endpoint& e) const {
  const Millis cap = std::max(options_.cooldown, options_.max_cooldown);
  return std::min(cap, 2 * e.cooldown);
}

Millis EndpointBreaker::cooldown_after_failed_probe(std::string_view endpoint) const {
  const Endpoint* e = find(endpoint);
  if (e == nullptr || e->state != BreakerState::kHalfOpen) return Millis(0);
  return next_cooldown(*e);
}

bool EndpointBreaker::half_open(std::string_view endpoint) const {
  const Endpoint* e = find(endpoint);
  return e != nullptr && e->state == BreakerState::kHalfOpen;
}

EndpointCounts EndpointBreaker::counts() const { return counts_; }

std::vector<EndpointHealth> EndpointBreaker::views(const EndpointQuery& query, SteadyTime now,
                                                   TimePoint wall_now) const {
  struct Row {
    std::size_t failures;
    const std::string* key;
    const Endpoint* endpoint;
  };
  std::vector<Row> rows;
  for (const auto& [key, e] : endpoints_) {
    if (query.state && e.state != *query.state) continue;
    rows.push_back(Row{window(e, now).failures, &key, &e});
  }
  const auto order = [](const Row& a, const Row& b) {
    return a.failures != b.failures ? a.failures > b.failures : *a.key < *b.key;
  };
  const std::size_t shown = std::min(rows.size(), query.limit);
  std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(shown), rows.end(),
                    order);
  const auto wall = [&](SteadyTime t) {
    return wall_now + std::chrono::duration_cast<Millis>(t - now);
  };
  std::vector<EndpointHealth> out;
  out.reserve(shown);
  for (std::size_t i = 0; i < shown; ++i) {
    const Endpoint& e = *rows[i].endpoint;
    const Counts c = window(e, now);
    EndpointHealth h;
    h.endpoint = *rows[i].key;
    h.state = e.state;
    h.attempts = c.attempts;
    h.failures = c.failures;
    h.failure_rate = rate(c.failures, c.attempts);
    if (e.last_error != AttemptError::kNone) {
      h.last_error = e.last_error;
      h.last_failure_at = wall(e.last_failure_at);
    }
    if (e.state != BreakerState::kClosed) h.opened_at = wall(e.opened_at);
    if (e.state == BreakerState::kOpen) h.next_probe_at = wall(e.next_probe_at);
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace callbackd
