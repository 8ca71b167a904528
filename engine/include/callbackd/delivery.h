// What callbackd knows about one callback: its state and every attempt made.
#pragma once

#include <callbackd/clock.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd {

enum class DeliveryState {
  kPending,    // waiting for its next attempt (due now or later)
  kInFlight,   // claimed by a dispatcher under a lease
  kDelivered,  // a 2xx came back in time
  kDead,       // every attempt failed; can be redelivered by hand
};

constexpr std::string_view to_string(DeliveryState state) {
  switch (state) {
    case DeliveryState::kPending:
      return "pending";
    case DeliveryState::kInFlight:
      return "in_flight";
    case DeliveryState::kDelivered:
      return "delivered";
    case DeliveryState::kDead:
      return "dead";
  }
  return "unknown";
}

constexpr std::optional<DeliveryState> parse_delivery_state(std::string_view text) {
  for (auto s : {DeliveryState::kPending, DeliveryState::kInFlight, DeliveryState::kDelivered,
                 DeliveryState::kDead}) {
    if (to_string(s) == text) return s;
  }
  return std::nullopt;
}

// Why an attempt failed. kNone means it succeeded (a 2xx within the bound).
enum class AttemptError {
  kNone,
  kStatus,   // a non-2xx HTTP status (3xx redirects are not followed)
  kTimeout,  // no complete 2xx within the attempt bound
  kRefused,  // connection refused
  kReset,    // connection reset or closed mid-exchange
  kDns,      // the host name did not resolve
  kTls,      // TLS handshake or certificate verification failed
  kBlocked,  // the network guard refused every address the name resolved to
  kNetwork,  // any other transport failure
};

constexpr std::string_view to_string(AttemptError error) {
  switch (error) {
    case AttemptError::kNone:
      return "";
    case AttemptError::kStatus:
      return "status";
    case AttemptError::kTimeout:
      return "timeout";
    case AttemptError::kRefused:
      return "refused";
    case AttemptError::kReset:
      return "reset";
    case AttemptError::kDns:
      return "dns";
    case AttemptError::kTls:
      return "tls";
    case AttemptError::kBlocked:
      return "blocked";
    case AttemptError::kNetwork:
      return "network";
  }
  return "unknown";
}

constexpr std::optional<AttemptError> parse_attempt_error(std::string_view text) {
  for (auto e : {AttemptError::kNone, AttemptError::kStatus, AttemptError::kTimeout,
                 AttemptError::kRefused, AttemptError::kReset, AttemptError::kDns,
                 AttemptError::kTls, AttemptError::kBlocked, AttemptError::kNetwork}) {
    if (to_string(e) == text) return e;
  }
  return std::nullopt;
}

struct Attempt {
  int number = 0;  // 1-based, counted over the delivery's whole life (redeliveries continue it)
  TimePoint started_at;
  Millis duration{0};
  int http_status = 0;  // 0 when no status line was received
  AttemptError error = AttemptError::kNone;
  std::string error_detail;   // transport message, e.g. "Connection refused"; never a secret
  std::string response_head;  // first bytes of the response body, capped
};

struct Delivery {
  std::string id;  // "dlv_…", sent as X-Callback-Id; stable across retries
  std::string app_id;
  std::string task_id;
  std::string callback_url;
  DeliveryState state = DeliveryState::kPending;
  std::vector<Attempt> attempts;             // oldest first
  std::optional<TimePoint> next_attempt_at;  // set while pending
  TimePoint created_at;
};

struct DeliveryFilter {
  std::optional<DeliveryState> state;
  std::optional<std::string> app_id;
  std::optional<std::string> task_id;  // exact match
  std::size_t limit = 50;              // capped at 1000
  std::string cursor;                  // next_cursor of the previous page; empty for the first
};

struct DeliveryPage {
  std::vector<Delivery> items;  // oldest first; attempts are filled in
  std::string next_cursor;      // empty on the last page
};

// Which finished deliveries a bulk redelivery queues again.
struct RedeliverFilter {
  DeliveryState state = DeliveryState::kDead;  // kDead or kDelivered
  std::optional<std::string> app_id;
  // When the delivery became dead or delivered, both bounds inclusive: wall times of the
  // caller's clock at `as_of`, which the store moves onto its own clock (the store keeps finish
  // times on it), so "finished in the last 2 h" means the same whatever the two clocks say.
  std::optional<TimePoint> finished_since;
  std::optional<TimePoint> finished_until;
  std::optional<TimePoint> as_of;  // Engine::redeliver_matching sets it when unset
  std::size_t limit = 1000;  // deliveries queued per call, 1..1000
  // next_cursor of the previous call; empty for the first. It fixes the end of the range at the
  // first call's time, so deliveries that finish later (ones it queued that fail again among
  // them) are never queued by a later call of the same run.
  std::string cursor;
};

struct RedeliverBatch {
  std::vector<std::string> app_ids;  // the app of each delivery queued (its count is the total)
  std::string next_cursor;           // empty when nothing matching is left
};

// A number per state, indexed by DeliveryState.
using DeliveryCounts = std::array<std::size_t, 4>;

// What enqueue answers: the delivery for (app_id, task_id), new or already there.
struct EnqueueReceipt {
  std::string delivery_id;
  DeliveryState state = DeliveryState::kPending;
  bool created = false;  // false when the task was enqueued before (nothing was changed)
};

}  // namespace callbackd
