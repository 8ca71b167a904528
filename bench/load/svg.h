// The load tool's picture: latency over time (p50, p99 and max of each second, log scale),
// accepted and delivered per second, the daemon's RSS and fds when watched, and the latency
// histogram of the whole run — one self-contained SVG file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "histogram.h"

namespace callbackd::load {

struct Second {
  double t = 0;                        // seconds since the start
  double accepted = 0, delivered = 0;  // in this second
  std::uint64_t latencies = 0;         // good deliveries timed in this second
  std::uint64_t p50_us = 0, p99_us = 0, max_us = 0;
  long rss_kib = -1;  // of the watched process; -1 when none
  long fds = -1;
};

std::string render_svg(const std::string& title, const std::vector<Second>& seconds,
                       const Histogram& latency);

}  // namespace callbackd::load
