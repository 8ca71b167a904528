// Endpoint health: a circuit breaker per endpoint (scheme://host:port), and what it shows.
//
// A breaker only ever delays attempts: while an endpoint is open its due deliveries stay in the
// store, pending, and spend no attempt; each is sent at or after its due time, in order, with its
// attempt count untouched. One real due delivery probes the endpoint after each cool-down.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/delivery.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd {

enum class BreakerState { kClosed, kOpen, kHalfOpen };

constexpr std::string_view to_string(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

constexpr std::optional<BreakerState> parse_breaker_state(std::string_view text) {
  for (auto s : {BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen}) {
    if (to_string(s) == text) return s;
  }
  return std::nullopt;
}

struct BreakerOptions {
  bool enabled = true;  // false: never opens (health is still counted and shown)
  // Opens when at least `min_attempts` attempts ended within the last `window` and at least
  // this share of them failed.
  double failure_rate = 0.5;
  std::size_t min_attempts = 20;
  Millis window = std::chrono::seconds(60);
  // Open this long before one probe is let through; doubles after each failed probe, up to
  // max_cooldown (never below cooldown).
  Millis cooldown = std::chrono::seconds(30);
  Millis max_cooldown = std::chrono::minutes(5);
  // On opening, move the endpoint's due rows in the store to its probe time, so claims need not
  // walk past them. Off only where the store keeps another clock than the engine (tests on a
  // manual clock with PostgreSQL): there the rows would fall due on the store's clock instead.
  bool defer_backlog = true;
  // Endpoints tracked at most; closed ones idle for three windows are forgotten. Endpoints past
  // the bound are not tracked (they behave as closed).
  std::size_t max_endpoints = 100000;
};

// One endpoint as the breaker sees it. Counts are over the current window.
struct EndpointHealth {
  std::string endpoint;  // "https://hooks.example.com:443"
  BreakerState state = BreakerState::kClosed;
  std::size_t attempts = 0;
  std::size_t failures = 0;
  double failure_rate = 0;
  std::optional<AttemptError> last_error;  // of the last failed attempt
  std::optional<TimePoint> last_failure_at;
  std::optional<TimePoint> opened_at;      // set while open or half-open
  std::optional<TimePoint> next_probe_at;  // set while open
  std::size_t in_flight = 0;               // attempts running now
};

// Which endpoints to list: most failures first, then by endpoint.
struct EndpointQuery {
  std::optional<BreakerState> state;
  std::size_t limit = 100;
};

// Endpoints tracked in each state, indexed by BreakerState.
using EndpointCounts = std::array<std::size_t, 3>;

}  // namespace callbackd
