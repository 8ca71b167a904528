// Counts the store is asked for on behalf of reports (/metrics, GET /v1/endpoints), kept for a
// moment: a scrape every second, or a console page of a hundred endpoints, then costs one count
// query per period instead of one per request and per endpoint. Thread-safe.
#pragma once

#include <callbackd/delivery.h>
#include <callbackd/queue.h>

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace callbackd {

class ReportCounts {
 public:
  // Deliveries in each state, at most `max_age` old (zero: asked now).
  Result<DeliveryCounts> by_state(Queue& queue, SteadyTime now, Millis max_age) {
    std::lock_guard lock(mutex_);
    if (by_state_at_ && now - *by_state_at_ < max_age) return by_state_;
    Result<DeliveryCounts> counts = queue.count_by_state();
    if (!counts.ok()) return counts;
    by_state_ = *counts;
    by_state_at_ = now;
    return counts;
  }

  // Pending deliveries of one endpoint, at most `max_age` old.
  Result<std::size_t> pending_for_host(Queue& queue, std::string_view host, SteadyTime now,
                                       Millis max_age) {
    std::lock_guard lock(mutex_);
    if (auto it = pending_.find(std::string(host));
        it != pending_.end() && now - it->second.at < max_age) {
      return it->second.count;
    }
    Result<std::size_t> count = queue.count_pending_for_host(host);
    if (!count.ok()) return count;
    // Bounded: past the bound, the entries too old to be answered with go.
    if (pending_.size() >= kMaxHosts) {
      std::erase_if(pending_, [&](const auto& e) { return now - e.second.at >= max_age; });
      if (pending_.size() >= kMaxHosts) pending_.clear();
    }
    pending_[std::string(host)] = Pending{now, *count};
    return count;
  }

 private:
  static constexpr std::size_t kMaxHosts = 10000;
  struct Pending {
    SteadyTime at;
    std::size_t count = 0;
  };
  std::mutex mutex_;
  std::optional<SteadyTime> by_state_at_;
  DeliveryCounts by_state_{};
  std::unordered_map<std::string, Pending> pending_;
};

}  // namespace callbackd
