#include "svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

namespace callbackd::load {
namespace {

constexpr double kWidth = 900, kLeft = 70, kRight = 20, kPlot = kWidth - kLeft - kRight;
constexpr double kChart = 220;  // height of one chart's plot area

std::string num(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}
std::string label(double ms) {
  char buffer[32];
  if (ms >= 1000)
    std::snprintf(buffer, sizeof buffer, "%gs", ms / 1000);
  else
    std::snprintf(buffer, sizeof buffer, "%gms", ms);
  return buffer;
}
std::string text(double x, double y, const std::string& s, const char* anchor = "start",
                 const char* extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\" " + extra +
         ">" + s + "</text>\n";
}
std::string line(double x1, double y1, double x2, double y2, const char* style) {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" +
         num(y2) + "\" style=\"" + style + "\"/>\n";
}
std::string polyline(const std::vector<std::pair<double, double>>& points, const char* color) {
  std::string s = "<polyline fill=\"none\" stroke=\"" + std::string(color) +
                  "\" stroke-width=\"1.5\" points=\"";
  for (const auto& [x, y] : points) s += num(x) + "," + num(y) + " ";
  return s + "\"/>\n";
}
std::string legend(double x, double y, const char* color, const std::string& name) {
  return "<rect x=\"" + num(x) + "\" y=\"" + num(y - 9) + "\" width=\"12\" height=\"4\" fill=\"" +
         color + "\"/>" + text(x + 16, y, name);
}

// A chart with a time axis; y from `lo` to `hi`, log scale when asked.
struct TimeChart {
  double top, seconds, lo, hi;
  bool log;
  double x(double t) const { return kLeft + kPlot * (seconds > 0 ? t / seconds : 0); }
  double y(double v) const {
    double f =
        log ? (std::log10(std::max(v, lo)) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
            : (v - lo) / (hi - lo);
    return top + kChart * (1 - std::clamp(f, 0.0, 1.0));
  }
  std::string frame(const std::string& title, const std::vector<double>& ticks,
                    const std::function<std::string(double)>& tick_label) const {
    std::string s = text(kLeft, top - 8, title, "start", "font-weight=\"bold\"");
    s += line(kLeft, top + kChart, kLeft + kPlot, top + kChart, "stroke:#333");
    s += line(kLeft, top, kLeft, top + kChart, "stroke:#333");
    for (double v : ticks) {
      s += line(kLeft, y(v), kLeft + kPlot, y(v), "stroke:#ddd");
      s += text(kLeft - 4, y(v) + 4, tick_label(v), "end");
    }
    const double step =
        std::max(1.0, std::pow(10, std::floor(std::log10(std::max(seconds, 1.0)))) / 2);
    for (double t = 0; t <= seconds; t += step) {
      s += text(x(t), top + kChart + 14, num(t).substr(0, num(t).size() - 2) + "s", "middle");
    }
    return s;
  }
};

std::vector<double> decades(double lo, double hi) {
  std::vector<double> ticks;
  for (double v = lo; v <= hi * 1.001; v *= 10) ticks.push_back(v);
  return ticks;
}

}  // namespace

std::string render_svg(const std::string& title, const std::vector<Second>& seconds,
                       const Histogram& latency) {
  const double span = seconds.empty() ? 1 : std::max(1.0, seconds.back().t);
  const bool watched =
      std::any_of(seconds.begin(), seconds.end(), [](const Second& s) { return s.rss_kib >= 0; });
  const int charts = watched ? 4 : 3;
  const double height = 50 + charts * (kChart + 60);
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) +
                  "\" height=\"" + num(height) +
                  "\" font-family=\"sans-serif\" font-size=\"11\">\n"
                  "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += text(kLeft, 22, title, "start", "font-size=\"14\" font-weight=\"bold\"");
  double top = 60;

  // 1. Latency over time, per second, milliseconds on a log scale.
  double lo_ms = 0.1, hi_ms = 1;
  for (const auto& sec : seconds)
    if (sec.latencies) hi_ms = std::max(hi_ms, static_cast<double>(sec.max_us) / 1000);
  hi_ms = std::pow(10, std::ceil(std::log10(hi_ms)));
  TimeChart latency_chart{top, span, lo_ms, hi_ms, true};
  s += latency_chart.frame("enqueue → receive latency, per second (log scale)",
                           decades(lo_ms, hi_ms), [](double v) { return label(v); });
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#d62728"};
  const char* names[] = {"p50", "p99", "max"};
  for (int k = 0; k < 3; ++k) {
    std::vector<std::pair<double, double>> points;
    for (const auto& sec : seconds) {
      if (!sec.latencies) continue;
      const std::uint64_t us = k == 0 ? sec.p50_us : k == 1 ? sec.p99_us : sec.max_us;
      points.emplace_back(latency_chart.x(sec.t), latency_chart.y(static_cast<double>(us) / 1000));
    }
    s += polyline(points, colors[k]);
    s += legend(kLeft + kPlot - 180 + 60 * k, top - 8, colors[k], names[k]);
  }
  top += kChart + 60;

  // 2. Throughput per second.
  double hi_rate = 1;
  for (const auto& sec : seconds) hi_rate = std::max({hi_rate, sec.accepted, sec.delivered});
  TimeChart rate_chart{top, span, 0, hi_rate * 1.1, false};
  s += rate_chart.frame("per second: accepted (202) and delivered", {0, hi_rate / 2, hi_rate},
                        [](double v) { return num(v).substr(0, num(v).size() - 2); });
  const char* rate_colors[] = {"#2ca02c", "#9467bd"};
  for (int k = 0; k < 2; ++k) {
    std::vector<std::pair<double, double>> points;
    for (const auto& sec : seconds)
      points.emplace_back(rate_chart.x(sec.t), rate_chart.y(k == 0 ? sec.accepted : sec.delivered));
    s += polyline(points, rate_colors[k]);
    s += legend(kLeft + kPlot - 180 + 90 * k, top - 8, rate_colors[k],
                k == 0 ? "accepted" : "delivered");
  }
  top += kChart + 60;

  // 3. The watched process's memory and descriptors.
  if (watched) {
    double hi_rss = 1, hi_fds = 1;
    for (const auto& sec : seconds) {
      hi_rss = std::max(hi_rss, static_cast<double>(sec.rss_kib) / 1024);
      hi_fds = std::max(hi_fds, static_cast<double>(sec.fds));
    }
    TimeChart rss{top, span, 0, hi_rss * 1.2, false};
    TimeChart fds{top, span, 0, hi_fds * 1.2, false};
    s += rss.frame(
        "daemon RSS (MiB, left) and open fds (right scale, max " + num(hi_fds * 1.2) + ")",
        {0, hi_rss * 0.6, hi_rss * 1.2}, [](double v) { return num(v); });
    std::vector<std::pair<double, double>> rss_points, fd_points;
    for (const auto& sec : seconds) {
      if (sec.rss_kib < 0) continue;
      rss_points.emplace_back(rss.x(sec.t), rss.y(static_cast<double>(sec.rss_kib) / 1024));
      fd_points.emplace_back(fds.x(sec.t), fds.y(static_cast<double>(sec.fds)));
    }
    s += polyline(rss_points, "#8c564b");
    s += polyline(fd_points, "#7f7f7f");
    s += legend(kLeft + kPlot - 180, top - 8, "#8c564b", "RSS");
    s += legend(kLeft + kPlot - 120, top - 8, "#7f7f7f", "fds");
    top += kChart + 60;
  }

  // 4. Histogram of the whole run: log-spaced latency on x, share of deliveries on y.
  s += text(kLeft, top - 8,
            "latency histogram, whole run (" + std::to_string(latency.total()) +
                " deliveries, log count)",
            "start", "font-weight=\"bold\"");
  s += line(kLeft, top + kChart, kLeft + kPlot, top + kChart, "stroke:#333");
  const double lo_log = std::log10(lo_ms), hi_log = std::log10(hi_ms);
  auto hx = [&](double ms) {
    return kLeft +
           kPlot *
               std::clamp((std::log10(std::max(ms, lo_ms)) - lo_log) / (hi_log - lo_log), 0.0, 1.0);
  };
  std::uint64_t peak = 1;
  for (int i = 0; i < Histogram::kBuckets; ++i) peak = std::max(peak, latency.count(i));
  for (int i = 0; i < Histogram::kBuckets; ++i) {
    if (!latency.count(i)) continue;
    const double x1 = hx(static_cast<double>(Histogram::lower(i)) / 1000);
    const double x2 = std::max(x1 + 1, hx(static_cast<double>(Histogram::upper(i) + 1) / 1000));
    const double h = kChart * std::log10(static_cast<double>(latency.count(i)) + 1) /
                     std::log10(static_cast<double>(peak) + 1);  // log: the tail shows
    s += "<rect x=\"" + num(x1) + "\" y=\"" + num(top + kChart - h) + "\" width=\"" + num(x2 - x1) +
         "\" height=\"" + num(h) + "\" fill=\"#1f77b4\"/>\n";
  }
  for (double v : decades(lo_ms, hi_ms)) s += text(hx(v), top + kChart + 14, label(v), "middle");
  const char* marks[] = {"p50", "p99", "p999"};
  const double qs[] = {0.5, 0.99, 0.999};
  for (int k = 0; k < 3; ++k) {
    const double ms = static_cast<double>(latency.percentile(qs[k])) / 1000;
    if (!latency.total()) break;
    s += line(hx(ms), top, hx(ms), top + kChart, "stroke:#d62728;stroke-dasharray:3,3");
    s += text(hx(ms) + 3, top + 12 + 12 * k,
              std::string(marks[k]) + " " + label(std::round(ms * 100) / 100));
  }
  return s + "</svg>\n";
}

}  // namespace callbackd::load
