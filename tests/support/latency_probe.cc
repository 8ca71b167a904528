#include "latency_probe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "api_client.h"
#include "callback_json.h"

namespace callbackd::testing {

double LatencyReport::percentile(double p) const {
  if (latencies_ms.empty()) return 0;
  const double rank = std::ceil(p / 100.0 * static_cast<double>(latencies_ms.size()));
  const std::size_t index = static_cast<std::size_t>(std::max(1.0, rank)) - 1;
  return latencies_ms[std::min(index, latencies_ms.size() - 1)];
}

std::string LatencyReport::summary() const {
  char text[200];
  std::snprintf(text, sizeof text,
                "sent=%zu refused=%zu arrived=%zu p50=%.1fms p90=%.1fms p99=%.1fms max=%.1fms",
                sent, refused, arrived, percentile(50), percentile(90), percentile(99), max());
  return text;
}

LatencyReport run_latency_probe(const LatencyProbe& probe, Receiver& receiver) {
  using Clock = std::chrono::steady_clock;
  LatencyReport report;
  std::map<std::string, Clock::time_point> sent_at;  // by task id
  const auto interval = std::chrono::microseconds(1'000'000 / std::max(1, probe.per_second));
  const auto start = Clock::now();
  for (auto next = start; Clock::now() - start < probe.duration; next += interval) {
    std::this_thread::sleep_until(next);
    const std::string task = "healthy-" + std::to_string(report.sent++);
    sent_at[task] = Clock::now();
    Result<ApiReply> reply =
        call_api("POST", probe.base_url, "/v1/callbacks", "",
                 completed_callback(probe.app_id, receiver.url(), task).dump());
    if (!reply.ok() || reply->status != 202) ++report.refused;
  }
  receiver.wait_for_count(report.sent - report.refused, probe.drain);
  for (const ReceivedRequest& r : receiver.requests()) {
    const auto body = nlohmann::json::parse(r.body, nullptr, false);
    if (!body.is_object() || !body.contains("task_id")) continue;
    auto it = sent_at.find(body["task_id"].get<std::string>());
    if (it == sent_at.end()) continue;
    report.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(r.received_at - it->second).count());
    sent_at.erase(it);  // a duplicate arrival counts once
  }
  report.arrived = report.latencies_ms.size();
  std::sort(report.latencies_ms.begin(), report.latencies_ms.end());
  return report;
}

}  // namespace callbackd::testing
