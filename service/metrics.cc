#include "metrics.h"

#include <cstdio>

namespace callbackd {

namespace {

// Scrapes may come often: the store's counts in them are at most this old.
constexpr Millis kCountsMaxAge{1000};

std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels,
            std::uint64_t value) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}

void Histogram::observe(double seconds) {
  std::size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Histogram::write(std::string& out, const std::string& name) const {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    const std::string le = i < bounds_.size() ? format_number(bounds_[i]) : "+Inf";
    sample(out, name + "_bucket", "le=\"" + le + "\"", cumulative);
  }
  out += name + "_sum " + format_number(sum_micros_.load() / 1e6) + "\n";
  sample(out, name + "_count", "", count_.load(std::memory_order_relaxed));
}

Metrics::Metrics()
    : attempt_seconds_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      enqueue_seconds_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}) {}

void Metrics::on_enqueued(std::chrono::microseconds latency, bool created) {
  (created ? enqueued_created_ : enqueued_existing_).fetch_add(1, std::memory_order_relaxed);
  enqueue_seconds_.observe(static_cast<double>(latency.count()) / 1e6);
}

void Metrics::on_attempt(const Attempt& attempt, DeliveryState next_state) {
  attempts_[static_cast<std::size_t>(attempt.error)].fetch_add(1, std::memory_order_relaxed);
  attempt_seconds_.observe(static_cast<double>(attempt.duration.count()) / 1e3);
  if (next_state == DeliveryState::kDelivered || next_state == DeliveryState::kDead) {
    finished_[static_cast<std::size_t>(next_state)].fetch_add(1, std::memory_order_relaxed);
  }
}

namespace {
constexpr std::array<std::string_view, 3> kLeaseWrites = {"record", "renew", "release"};
}  // namespace

void Metrics::on_stale_lease(std::string_view write) {
  for (std::size_t i = 0; i < kLeaseWrites.size(); ++i) {
    if (kLeaseWrites[i] == write) stale_lease_writes_[i].fetch_add(1, std::memory_order_relaxed);
  }
}

void Metrics::on_breaker_transition(BreakerState to) {
  breaker_transitions_[static_cast<std::size_t>(to)].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::on_http_response(int status) {
  const int family = status / 100;
  if (family >= 0 && family < static_cast<int>(http_responses_.size())) {
    http_responses_[static_cast<std::size_t>(family)].fetch_add(1, std::memory_order_relaxed);
  }
}

std::string Metrics::render(const Engine& engine) const {
  std::string out;
  out.reserve(4096);

  header(out, "callbackd_attempts_total", "counter", "Delivery attempts by outcome.");
  for (std::size_t i = 0; i < kErrorKinds; ++i) {
    const auto error = static_cast<AttemptError>(i);
    const std::string outcome =
        error == AttemptError::kNone ? "success" : std::string(to_string(error));
    sample(out, "callbackd_attempts_total", "outcome=\"" + outcome + "\"", attempts_[i].load());
  }

  header(out, "callbackd_deliveries_finished_total", "counter",
         "Deliveries that reached a final state.");
  for (DeliveryState s : {DeliveryState::kDelivered, DeliveryState::kDead}) {
    sample(out, "callbackd_deliveries_finished_total",
           "state=\"" + std::string(to_string(s)) + "\"",
           finished_[static_cast<std::size_t>(s)].load());
  }

  header(out, "callbackd_enqueued_total", "counter",
         "Callbacks accepted: created, or an existing delivery returned for a repeated task.");
  sample(out, "callbackd_enqueued_total", "result=\"created\"", enqueued_created_.load());
  sample(out, "callbackd_enqueued_total", "result=\"existing\"", enqueued_existing_.load());

  if (Result<DeliveryCounts> counts = engine.count_by_state(kCountsMaxAge); counts.ok()) {
    header(out, "callbackd_deliveries", "gauge", "Deliveries in the store by state.");
    for (DeliveryState s : {DeliveryState::kPending, DeliveryState::kInFlight,
                            DeliveryState::kDelivered, DeliveryState::kDead}) {
      sample(out, "callbackd_deliveries", "state=\"" + std::string(to_string(s)) + "\"",
             (*counts)[static_cast<std::size_t>(s)]);
    }
  }

  header(out, "callbackd_stale_lease_writes_total", "counter",
         "Writes refused because the delivery's lease had ended and it was claimed again.");
  for (std::size_t i = 0; i < kLeaseWrites.size(); ++i) {
    sample(out, "callbackd_stale_lease_writes_total",
           "write=\"" + std::string(kLeaseWrites[i]) + "\"", stale_lease_writes_[i].load());
  }

  const QueueStats store = engine.store_stats();
  header(out, "callbackd_store_info", "gauge", "The store's backend.");
  sample(out, "callbackd_store_info", "backend=\"" + store.backend + "\"", 1);
  if (store.connections > 0) {
    header(out, "callbackd_store_connections", "gauge", "Connections to the database server.");
    sample(out, "callbackd_store_connections", "state=\"in_use\"", store.connections_in_use);
    sample(out, "callbackd_store_connections", "state=\"idle\"",
           store.connections - store.connections_in_use);
  }

  // Counts only: a label per endpoint would grow without bound (GET /v1/endpoints names them).
  const EndpointCounts endpoints = engine.endpoint_counts();
  header(out, "callbackd_endpoints", "gauge",
         "Endpoints seen by this process, by circuit breaker state.");
  for (BreakerState s : {BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen}) {
    sample(out, "callbackd_endpoints", "state=\"" + std::string(to_string(s)) + "\"",
           endpoints[static_cast<std::size_t>(s)]);
  }
  header(out, "callbackd_breaker_transitions_total", "counter",
         "Endpoint circuit breaker state changes, by the state entered.");
  for (BreakerState s : {BreakerState::kOpen, BreakerState::kHalfOpen, BreakerState::kClosed}) {
    sample(out, "callbackd_breaker_transitions_total", "to=\"" + std::string(to_string(s)) + "\"",
           breaker_transitions_[static_cast<std::size_t>(s)].load());
  }

  header(out, "callbackd_attempts_in_flight", "gauge", "Attempts running now.");
  sample(out, "callbackd_attempts_in_flight", "", engine.in_flight());

  header(out, "callbackd_attempt_duration_seconds", "histogram",
         "Time from an attempt's start to its end.");
  attempt_seconds_.write(out, "callbackd_attempt_duration_seconds");
  header(out, "callbackd_enqueue_duration_seconds", "histogram",
         "Time to store a callback durably (commit included).");
  enqueue_seconds_.write(out, "callbackd_enqueue_duration_seconds");

  header(out, "callbackd_http_responses_total", "counter", "API responses by status class.");
  for (std::size_t family = 1; family < http_responses_.size(); ++family) {
    sample(out, "callbackd_http_responses_total", "code=\"" + std::to_string(family) + "xx\"",
           http_responses_[family].load());
  }
  return out;
}

}  // namespace callbackd
