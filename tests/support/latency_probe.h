// A healthy customer beside sick ones: sends callbacks through a running daemon at a steady
// rate to a receiver that answers at once, and measures each one's time from just before its
// POST to its arrival at the receiver.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "receiver.h"

namespace callbackd::testing {

struct LatencyProbe {
  std::string base_url;  // the daemon's API
  std::string app_id;
  int per_second = 100;
  std::chrono::milliseconds duration{3000};
  // How long to wait for the last callbacks to arrive after sending stops.
  std::chrono::milliseconds drain{10000};
};

struct LatencyReport {
  std::size_t sent = 0;
  std::size_t refused = 0;  // POSTs not answered 202
  std::size_t arrived = 0;
  std::vector<double> latencies_ms;   // of those that arrived, sorted
  double percentile(double p) const;  // p in [0, 100]; 0 when none arrived
  double max() const { return latencies_ms.empty() ? 0 : latencies_ms.back(); }
  std::string summary() const;  // "sent=… arrived=… p50=…ms p99=…ms max=…ms"
};

// `receiver` must be the fresh, healthy receiver the probe's callbacks go to.
LatencyReport run_latency_probe(const LatencyProbe& probe, Receiver& receiver);

}  // namespace callbackd::testing
