// Prometheus metrics: counters and histograms fed by the engine's observer, gauges read at
// scrape time. Thread-safe; updates are lock-free.
#pragma once

#include <callbackd/engine.h>

#include <array>
#include <atomic>
#include <string>
#include <vector>

namespace callbackd {

// A cumulative histogram with fixed upper bounds (seconds), in Prometheus' text format.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double seconds);
  // Appends the _bucket, _sum and _count lines of `name`.
  void write(std::string& out, const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> buckets_;  // one more than bounds_: +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micros_{0};
};

class Metrics final : public EngineObserver {
 public:
  Metrics();
  void on_enqueued(std::chrono::microseconds latency, bool created) override;
  void on_attempt(const Attempt& attempt, DeliveryState next_state) override;
  void on_stale_lease(std::string_view write) override;
  void on_breaker_transition(BreakerState to) override;
  void on_http_response(int status);

  // The exposition text. `engine` supplies the gauges (queue depth, in flight).
  std::string render(const Engine& engine) const;

 private:
  static constexpr std::size_t kErrorKinds = 9;  // AttemptError values
  std::array<std::atomic<std::uint64_t>, kErrorKinds> attempts_{};
  std::array<std::atomic<std::uint64_t>, 4> finished_{};  // by DeliveryState
  std::atomic<std::uint64_t> enqueued_created_{0};
  std::atomic<std::uint64_t> enqueued_existing_{0};
  std::array<std::atomic<std::uint64_t>, 6> http_responses_{};       // by status class 0xx..5xx
  std::array<std::atomic<std::uint64_t>, 3> stale_lease_writes_{};   // record, renew, release
  std::array<std::atomic<std::uint64_t>, 3> breaker_transitions_{};  // by BreakerState
  Histogram attempt_seconds_;
  Histogram enqueue_seconds_;
};

}  // namespace callbackd
