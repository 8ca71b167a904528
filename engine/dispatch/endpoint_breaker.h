// A circuit breaker per endpoint (scheme://host:port): closed, open, half-open.
//
// - Closed: attempts flow. Each attempt's verdict goes into a sliding window (ten buckets of a
//   tenth of `window` each); once the window holds `min_attempts` and the failed share reaches
//   `failure_rate`, the endpoint opens.
// - Open: no attempt to it starts; its deliveries wait in the store. After the cool-down it is
//   half-open.
// - Half-open: exactly one probe, a real due delivery of the endpoint, may start. Success
//   closes it (window cleared, cool-down back to its base); failure opens it again with the
//   cool-down doubled, capped.
// Attempts that were already running when it opened (stragglers) are counted but decide
// nothing; only the probe's verdict moves a half-open endpoint.
//
// It never spends, skips or reorders an attempt: it answers whether one may start now.
//
// Disabled, it still counts (endpoint health stays visible) but never opens.
//
// Pure logic: no sockets, no storage; time is passed in. Not thread-safe.
#pragma once

#include <callbackd/endpoint_health.h>

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dispatch/string_map.h"

namespace callbackd {

// What an attempt says about its endpoint's health.
enum class BreakerVerdict {
  kHealthy,     // a 2xx, or an answer that is about the URL rather than the host (3xx, 4xx)
  kFailure,     // no answer (timeout, refused, reset, DNS, TLS...), or 5xx, 408, 429
  kNotCounted,  // refused by our own network guard: configuration, not the endpoint's health
};
BreakerVerdict judge(AttemptError error, int http_status);

// A change of state, to log and count.
struct BreakerTransition {
  std::string endpoint;
  BreakerState to = BreakerState::kClosed;
  std::size_t attempts = 0;  // in the window when it happened
  double failure_rate = 0;
  Millis cooldown{0};  // to: open
  bool probe = false;  // decided by a probe's verdict
};

class EndpointBreaker {
 public:
  // `probe_patience`: a probe picked but not started or not finished within this long is
  // given up, and another one may go (covers a probe lost on its way: a failed claim, a
  // cancelled hand-off, an attempt never recorded).
  EndpointBreaker(BreakerOptions options, Millis probe_patience);

  enum class Admission { kRun, kProbe, kHold };
  // Whether an attempt to `endpoint` may start now. kProbe: yes, as the half-open endpoint's one
  // probe (its verdict goes back with probe = true). kHold: no; hold_for() says how long.
  Admission admit(std::string_view endpoint, SteadyTime now);
  // How long a held delivery should stay in the store: until the cool-down ends (zero when
  // half-open or closed).
  Millis hold_for(std::string_view endpoint, SteadyTime now) const;

  // An attempt ended. Returns the transition it caused, if any.
  std::optional<BreakerTransition> record(std::string_view endpoint, AttemptError error,
                                          int http_status, bool probe, SteadyTime now);

  // Open endpoints whose cool-down has ended become half-open.
  std::vector<BreakerTransition> advance(SteadyTime now);
  // A half-open endpoint whose probe should be claimed from the store now (its oldest due
  // delivery); it then counts as on its way.
  std::optional<std::string> take_probe_claim(SteadyTime now);
  // The claim for the probe found nothing due: look again after `retry_after`, or take the next
  // fresh delivery as the probe.
  void probe_not_found(std::string_view endpoint, SteadyTime now, Millis retry_after);

  // Open and half-open endpoints, at most `max`: claims leave their deliveries in the store.
  std::vector<std::string> unhealthy(std::size_t max) const;
  bool closed(std::string_view endpoint) const;
  bool half_open(std::string_view endpoint) const;
  // The cool-down the endpoint would open for if its probe failed now (zero unless half-open).
  Millis cooldown_after_failed_probe(std::string_view endpoint) const;
  // Whether the endpoint is tracked at all (an attempt of it ended, and it is not forgotten).
  bool tracked(std::string_view endpoint) const { return find(endpoint) != nullptr; }
  // Forgets closed endpoints without an attempt for three windows.
  void forget_idle(SteadyTime now);

  EndpointCounts counts() const;
  // Matching endpoints, most failures first, then by endpoint; in_flight left at zero. Times
  // are shown as wall time, `wall_now` being the wall time at `now`.
  std::vector<EndpointHealth> views(const EndpointQuery& query, SteadyTime now,
                                    TimePoint wall_now) const;

 private:
  static constexpr std::size_t kBuckets = 10;
  struct Bucket {
    std::uint32_t attempts = 0;
    std::uint32_t failures = 0;
  };
  enum class Probe : std::uint8_t { kNone, kOnItsWay, kRunning };
  struct Endpoint {
    BreakerState state = BreakerState::kClosed;
    Probe probe = Probe::kNone;
    AttemptError last_error = AttemptError::kNone;
    std::array<Bucket, kBuckets> buckets{};
    std::int64_t newest_bucket = 0;  // number of the bucket written last
    SteadyTime last_attempt_at{};
    SteadyTime last_failure_at{};
    SteadyTime opened_at{};
    SteadyTime next_probe_at{};   // open: when it turns half-open
    SteadyTime probe_until{};     // a probe on its way or running is given up after this
    SteadyTime probe_claim_at{};  // half-open: when the store may be asked for a probe
    Millis cooldown{0};
  };
  struct Counts {
    std::size_t attempts = 0;
    std::size_t failures = 0;
  };

  std::int64_t bucket_number(SteadyTime now) const;
  Counts window(const Endpoint& e, SteadyTime now) const;
  void roll(Endpoint& e, SteadyTime now);
  Endpoint* find(std::string_view endpoint);
  const Endpoint* find(std::string_view endpoint) const;
  void expire_probe(Endpoint& e, SteadyTime now);
  BreakerTransition open(std::string_view key, Endpoint& e, SteadyTime now, Millis cooldown,
                         bool probe);
  void set_state(std::string_view key, Endpoint& e, BreakerState to);
  Millis next_cooldown(const Endpoint& e) const;  // after a failed probe: doubled, capped

  const BreakerOptions options_;
  const Millis probe_patience_;
  const Millis bucket_width_;
  StringMap<Endpoint> endpoints_;
  std::set<std::string, std::less<>> unhealthy_;  // open or half-open
  EndpointCounts counts_{};
  SteadyTime next_half_open_ = SteadyTime::max();    // earliest cool-down end, or later
  SteadyTime next_probe_claim_ = SteadyTime::max();  // no probe claim is due before this
};

}  // namespace callbackd
