// callbackd-load: drives a running callbackd the way a pipeline does and reports what came of
// it. Creates an app (one more per hostile kind), posts unique completed/failed tasks over
// keep-alive connections at a fixed rate (open loop) or flat out, receives and verifies the
// callbacks itself (or lets them go to
// --receiver-url), and reports accepted/s, delivered/s, errors by kind and enqueue→receive
// latency: a progress line each second on stderr, a JSON summary on stdout, an SVG picture.
//   callbackd-load --daemon http://127.0.0.1:7780 --token T --rate 1000 --duration 60 --svg run.svg
// Run with --help for every option.
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include "client.h"
#include "proc_watch.h"
#include "receiver.h"
#include "svg.h"

namespace callbackd::load {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using nlohmann::json;

constexpr const char* kUsage = R"(usage: callbackd-load --daemon URL [options]

  --daemon URL           the daemon's API, http://host:port (required)
  --token T              API bearer token (default: $CALLBACKD_API_TOKEN)
  --rate R|max           sends per second on a fixed schedule, or flat out (default 1000)
  --duration S           seconds of sending (default 10)
  --count N              sends in all, instead of --duration
  --connections N        keep-alive connections (default 64)
  --timeout S            per-request bound (default 10)
  --failed-percent P     share of tasks posted as "failed" (default 10)
  --receiver-bind ADDR   address the built-in receiver listens on (default 127.0.0.1; the
                         daemon must allow it: --allow-networks 127.0.0.0/8 for loopback)
  --receiver-url URL     send callbacks there instead (no signature check, no delivery
                         latency; delivered is read from the daemon's /metrics)
  --receiver-mix MIX     hostile customers, percent of tasks: silent=5,slow=5,fail=5 (silent
                         never answers, slow answers after --slow-seconds, fail answers 500);
                         each hostile kind posts under an app of its own
  --slow-seconds S       (default 3)
  --drain-timeout S      how long to wait for deliveries after the last send (default 30)
  --metrics-url URL      Prometheus endpoint to read deliveries from (default DAEMON/metrics;
                         "none" to skip)
  --watch-pid PID        sample this process's RSS and open fds each second (the daemon)
  --report-every S       print an interval summary every S seconds (e.g. 60 for a soak)
  --json FILE            also write the JSON summary there
  --svg FILE             write the picture there
  --quiet                no progress line
exit status: 0, or 1 when a callback was lost, duplicated or badly signed, 2 on bad usage
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "callbackd-load: %s\n(see --help)\n", message.c_str());
  std::exit(2);
}

struct Url {
  std::string host, port, target;
};
Url parse_url(const std::string& text, const char* what) {
  static const std::regex pattern(R"(http://([^/:]+|\[[^\]]+\])(?::(\d+))?(/.*)?)");
  std::smatch m;
  if (!std::regex_match(text, m, pattern))
    usage_error(std::string(what) + ": \"" + text + "\" is not an http://host:port URL");
  return {m[1].str(), m[2].matched ? m[2].str() : "80", m[3].matched ? m[3].str() : "/"};
}

struct Options {
  Url daemon;
  std::string daemon_text, token, receiver_bind = "127.0.0.1", receiver_url, metrics_url;
  std::string json_file, svg_file;
  std::array<int, kKinds> mix{100, 0, 0, 0};
  double rate = 1000, duration = 10, timeout = 10, slow_seconds = 3, drain_timeout = 30;
  double report_every = 0;
  std::uint64_t count = 0;
  int connections = 64, failed_percent = 10;
  pid_t watch_pid = 0;
  bool quiet = false;
};

std::string fmt_number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

double number(const std::string& flag, const std::string& value, double min, double max) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !(v >= min && v <= max))
    usage_error(flag + ": \"" + value + "\" is not a number from " + fmt_number(min) + " to " +
                fmt_number(max));
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  if (const char* token = std::getenv("CALLBACKD_API_TOKEN")) o.token = token;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (i + 1 >= argc) usage_error(flag + ": needs a value");
    const std::string v = argv[++i];
    if (flag == "--daemon")
      o.daemon_text = v;
    else if (flag == "--token")
      o.token = v;
    else if (flag == "--rate")
      o.rate = v == "max" ? 0 : number(flag, v, 0.001, 1e7);
    else if (flag == "--duration")
      o.duration = number(flag, v, 0.001, 1e7);
    else if (flag == "--count")
      o.count = static_cast<std::uint64_t>(number(flag, v, 1, 1e10));
    else if (flag == "--connections")
      o.connections = static_cast<int>(number(flag, v, 1, 10000));
    else if (flag == "--timeout")
      o.timeout = number(flag, v, 0.001, 3600);
    else if (flag == "--failed-percent")
      o.failed_percent = static_cast<int>(number(flag, v, 0, 100));
    else if (flag == "--receiver-bind")
      o.receiver_bind = v;
    else if (flag == "--receiver-url")
      o.receiver_url = v;
    else if (flag == "--slow-seconds")
      o.slow_seconds = number(flag, v, 0, 3600);
    else if (flag == "--drain-timeout")
      o.drain_timeout = number(flag, v, 0, 1e6);
    else if (flag == "--metrics-url")
      o.metrics_url = v;
    else if (flag == "--watch-pid")
      o.watch_pid = static_cast<pid_t>(number(flag, v, 1, 1e9));
    else if (flag == "--report-every")
      o.report_every = number(flag, v, 1, 1e6);
    else if (flag == "--json")
      o.json_file = v;
    else if (flag == "--svg")
      o.svg_file = v;
    else if (flag == "--receiver-mix") {
      static const std::regex item(R"((silent|slow|fail)=(\d+))");
      std::stringstream list(v);
      std::string part;
      while (std::getline(list, part, ',')) {
        std::smatch m;
        if (!std::regex_match(part, m, item))
          usage_error("--receiver-mix: \"" + part + "\" is not silent=N, slow=N or fail=N");
        const int k = m[1] == "silent" ? 1 : m[1] == "slow" ? 2 : 3;
        o.mix[k] = std::stoi(m[2]);
      }
      o.mix[0] = 100 - o.mix[1] - o.mix[2] - o.mix[3];
      if (o.mix[0] < 0) usage_error("--receiver-mix: the shares add up to more than 100");
    } else
      usage_error("unknown option " + flag);
  }
  if (o.daemon_text.empty()) usage_error("--daemon: required");
  o.daemon = parse_url(o.daemon_text, "--daemon");
  if (!o.receiver_url.empty()) {
    parse_url(o.receiver_url, "--receiver-url");
    if (o.mix[0] != 100)
      usage_error("--receiver-mix needs the built-in receiver, not --receiver-url");
  }
  if (o.metrics_url.empty())
    o.metrics_url = "http://" + o.daemon.host + ":" + o.daemon.port + "/metrics";
  return o;
}

struct Reply {
  int status = 0;
  std::string body;
};
std::optional<Reply> call(const Url& url, http::verb method, const std::string& target,
                          const std::string& body, const std::string& token) {
  try {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(tcp::resolver(io).resolve(url.host, url.port));
    http::request<http::string_body> request(method, target, 11);
    request.set(http::field::host, url.host);
    if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    return Reply{static_cast<int>(response.result_int()), response.body()};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// callbackd_deliveries_finished_total{state="delivered"}, or nothing when unreadable.
std::optional<std::uint64_t> delivered_metric(const std::optional<Url>& metrics) {
  if (!metrics) return std::nullopt;
  auto reply = call(*metrics, http::verb::get, metrics->target, "", "");
  if (!reply || reply->status != 200) return std::nullopt;
  constexpr std::string_view key = "callbackd_deliveries_finished_total{state=\"delivered\"} ";
  const auto at = reply->body.find(key);
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(reply->body.c_str() + at + key.size(), nullptr, 10);
}

json latency_json(const Histogram& h) {
  auto ms = [](std::uint64_t us) { return std::round(static_cast<double>(us) / 10) / 100; };
  return {{"count", h.total()},
          {"p50", ms(h.percentile(0.5))},
          {"p99", ms(h.percentile(0.99))},
          {"p999", ms(h.percentile(0.999))},
          {"max", ms(h.max())}};
}

std::string short_latency(const Histogram& h) {
  char buffer[160];
  std::snprintf(
      buffer, sizeof buffer, "p50 %.2f p99 %.2f p999 %.2f max %.1f ms",
      static_cast<double>(h.percentile(0.5)) / 1000, static_cast<double>(h.percentile(0.99)) / 1000,
      static_cast<double>(h.percentile(0.999)) / 1000, static_cast<double>(h.max()) / 1000);
  return buffer;
}

// An app for one kind of customer: {app_id, signing_secret}.
std::pair<std::string, std::string> create_app(const Options& o, const std::string& name) {
  auto app = call(o.daemon, http::verb::post, "/v1/apps", json{{"name", name}}.dump(), o.token);
  if (!app) usage_error("cannot reach " + o.daemon_text);
  if (app->status != 201)
    usage_error("POST /v1/apps answered " + std::to_string(app->status) + ": " + app->body);
  const json created = json::parse(app->body);
  return {created.at("app_id"), created.at("signing_secret")};
}

int run(const Options& o) {
  // Each hostile kind is a customer of its own, as in production: its backlog counts against
  // its own app's quota, not against the healthy customer's.
  std::array<std::string, kKinds> app_ids, secrets;
  for (int k = 0; k < kKinds; ++k) {
    if (k != static_cast<int>(Kind::kGood) && o.mix[k] == 0) continue;
    const std::string name = k == 0
                                 ? "callbackd-load"
                                 : "callbackd-load-" + std::string(kind_name(static_cast<Kind>(k)));
    std::tie(app_ids[k], secrets[k]) = create_app(o, name);
  }

  std::optional<Receiver> receiver;
  ClientOptions c;
  c.host = o.daemon.host;
  c.port = o.daemon.port;
  c.token = o.token;
  c.app_ids = app_ids;
  c.run = "ld" + std::to_string(getpid()) + "x" + std::to_string(std::time(nullptr));
  c.percent = o.mix;
  c.failed_percent = o.failed_percent;
  c.connections = o.connections;
  c.rate = o.rate;
  c.count = o.count;
  c.duration = o.duration;
  c.timeout = o.timeout;
  if (o.receiver_url.empty()) {
    receiver.emplace(ReceiverOptions{o.receiver_bind, secrets, o.slow_seconds, o.mix[0] != 100});
    for (int k = 0; k < kKinds; ++k) c.urls[k] = receiver->url(static_cast<Kind>(k));
  } else {
    c.urls.fill(o.receiver_url);
  }
  std::optional<Url> metrics;
  if (o.metrics_url != "none") metrics = parse_url(o.metrics_url, "--metrics-url");
  const std::optional<std::uint64_t> metric_base = delivered_metric(metrics);
  if (!receiver && !metric_base)
    usage_error("with --receiver-url, delivered is read from " + o.metrics_url +
                ", which did not answer");

  Client client(c);
  const std::int64_t start = steady_micros();
  client.start(start);

  Histogram accept_total, deliver_total, interval;
  std::vector<Second> seconds;
  json intervals = json::array();
  std::uint64_t metric_delivered = 0, last_accepted = 0, last_delivered = 0;
  std::int64_t metric_change_us = start, drain_started = 0;
  long rss_max = -1, fds_max = -1, interval_rss = -1, interval_fds = -1;
  std::uint64_t interval_start_delivered = 0;
  double next_interval = o.report_every;

  auto delivered_now = [&] { return receiver ? receiver->counts().delivered : metric_delivered; };
  for (int tick = 1;; ++tick) {
    std::this_thread::sleep_until(
        std::chrono::steady_clock::time_point(std::chrono::microseconds(start + tick * 100'000LL)));
    if (auto m = delivered_metric(metrics); m && metric_base) {
      const std::uint64_t now_delivered = *m - *metric_base;
      if (now_delivered != metric_delivered) metric_change_us = steady_micros();
      metric_delivered = now_delivered;
    }
    const ClientCounts cc = client.counts();
    const std::uint64_t delivered = delivered_now();
    std::uint64_t expected = 0;  // good tasks accepted, when the receiver can tell
    if (cc.done && drain_started == 0) drain_started = steady_micros();
    if (tick % 10 == 0) {
      Second s;
      s.t = tick / 10.0;
      s.accepted = static_cast<double>(cc.accepted - last_accepted);
      s.delivered = static_cast<double>(delivered - last_delivered);
      last_accepted = cc.accepted;
      last_delivered = delivered;
      accept_total.merge(client.take_recent());
      if (receiver) {
        const Histogram recent = receiver->take_recent();
        deliver_total.merge(recent);
        interval.merge(recent);
        s.latencies = recent.total();
        s.p50_us = recent.percentile(0.5);
        s.p99_us = recent.percentile(0.99);
        s.max_us = recent.max();
      }
      if (o.watch_pid) {
        const ProcSample p = sample_process(o.watch_pid);
        s.rss_kib = p.rss_kib;
        s.fds = p.fds;
        rss_max = std::max(rss_max, p.rss_kib);
        fds_max = std::max(fds_max, p.fds);
        interval_rss = std::max(interval_rss, p.rss_kib);
        interval_fds = std::max(interval_fds, p.fds);
      }
      seconds.push_back(s);
      if (!o.quiet) {
        std::string errors;
        for (const auto& [kind, n] : cc.errors) errors += " " + kind + "=" + std::to_string(n);
        std::fprintf(stderr,
                     "%5.0fs sent %llu accepted %llu (%.0f/s) delivered %llu (%.0f/s) in-flight "
                     "%llu%s%s%s\n",
                     s.t, static_cast<unsigned long long>(cc.sent),
                     static_cast<unsigned long long>(cc.accepted), s.accepted,
                     static_cast<unsigned long long>(delivered), s.delivered,
                     static_cast<unsigned long long>(cc.in_flight),
                     s.latencies
                         ? (" p50 " + std::to_string(s.p50_us / 1000.0).substr(0, 5) + "ms p99 " +
                            std::to_string(s.p99_us / 1000.0).substr(0, 5) + "ms")
                               .c_str()
                         : "",
                     errors.c_str(), cc.done ? " (draining)" : "");
      }
      if (o.report_every > 0 && s.t >= next_interval) {
        const ReceiverCounts rc = receiver ? receiver->counts() : ReceiverCounts{};
        json item = {{"end_s", s.t},
                     {"delivered", delivered - interval_start_delivered},
                     {"latency_ms", latency_json(interval)},
                     {"duplicates", rc.duplicates},
                     {"bad_signature", rc.bad_signature},
                     {"daemon_rss_kib", interval_rss},
                     {"daemon_fds", interval_fds}};
        std::fprintf(stderr,
                     "== %.0fs: delivered %llu, %s, rss %.1f MiB, fds %ld, duplicates %llu, bad "
                     "signatures %llu\n",
                     s.t, static_cast<unsigned long long>(delivered - interval_start_delivered),
                     short_latency(interval).c_str(), static_cast<double>(interval_rss) / 1024,
                     interval_fds, static_cast<unsigned long long>(rc.duplicates),
                     static_cast<unsigned long long>(rc.bad_signature));
        intervals.push_back(item);
        interval.reset();
        interval_rss = interval_fds = -1;
        interval_start_delivered = delivered;
        next_interval += o.report_every;
      }
    }
    if (!cc.done) continue;
    if (receiver) {
      const auto accepted = client.accepted();
      for (std::size_t i = 0; i < accepted.size(); ++i)
        if (accepted[i] && kind_of(i, o.mix) == Kind::kGood) ++expected;
    } else {
      expected = cc.accepted;
    }
    if (delivered >= expected ||
        steady_micros() - drain_started > static_cast<std::int64_t>(o.drain_timeout * 1e6))
      break;
  }
  client.join();
  accept_total.merge(client.take_recent());
  const ClientCounts cc = client.counts();

  json errors = json::object();
  for (const auto& [kind, n] : cc.errors) errors[kind] = n;
  std::uint64_t delivered = 0, lost = 0;
  std::int64_t last_delivery = metric_change_us;
  json hostile = json::object();
  if (receiver) {
    receiver->stop();
    deliver_total.merge(receiver->take_recent());
    const ReceiverCounts rc = receiver->counts();
    delivered = rc.delivered;
    last_delivery = rc.last_delivery_us;
    const auto accepted = client.accepted();
    const auto seen = receiver->seen();
    for (std::size_t i = 0; i < accepted.size(); ++i)
      if (accepted[i] && kind_of(i, o.mix) == Kind::kGood && (i >= seen.size() || !seen[i])) ++lost;
    errors["bad_signature"] = rc.bad_signature;
    errors["duplicate"] = rc.duplicates;
    errors["lost"] = lost;
    if (rc.unparsable) errors["unparsable"] = rc.unparsable;
    for (int k = 1; k < kKinds; ++k)
      if (o.mix[k]) hostile[kind_name(static_cast<Kind>(k))] = rc.requests[k];
    if (rc.bad_signature || rc.duplicates || lost)
      std::fprintf(stderr, "callbackd-load: lost, duplicated or badly signed callbacks\n");
  } else {
    delivered = metric_delivered;
    errors["lost"] = cc.accepted > delivered ? cc.accepted - delivered : 0;
  }
  auto per_second = [&](std::uint64_t n, std::int64_t until) {
    const double s = static_cast<double>(until - start) / 1e6;
    return n && s > 0 ? std::round(static_cast<double>(n) / s) : 0.0;
  };
  json summary = {
      {"daemon", o.daemon_text},
      {"rate", o.rate > 0 ? json(o.rate) : json("max")},
      {"connections", o.connections},
      {"sent", cc.sent},
      {"accepted", cc.accepted},
      {"accepted_per_s", per_second(cc.accepted, cc.last_accept_us)},
      {"delivered", delivered},
      {"delivered_per_s", per_second(delivered, last_delivery)},
      {"delivered_counted_by", receiver ? "receiver" : "metrics"},
      {"errors", errors},
      {"accept_latency_ms", latency_json(accept_total)},
      {"delivery_latency_ms", receiver ? latency_json(deliver_total) : json(nullptr)},
  };
  if (!hostile.empty()) summary["hostile_requests"] = hostile;
  if (o.watch_pid) summary["daemon_process"] = {{"rss_kib_max", rss_max}, {"fds_max", fds_max}};
  if (o.report_every > 0) summary["intervals"] = intervals;
  const std::string text = summary.dump(2);
  std::printf("%s\n", text.c_str());
  if (!o.json_file.empty()) std::ofstream(o.json_file) << text << "\n";
  if (!o.svg_file.empty()) {
    char title[256];
    std::snprintf(
        title, sizeof title, "callbackd-load: %s, rate %s, %d connections — %llu delivered, %s",
        o.daemon_text.c_str(),
        o.rate > 0 ? std::to_string(static_cast<long>(o.rate)).c_str() : "max", o.connections,
        static_cast<unsigned long long>(delivered), short_latency(deliver_total).c_str());
    std::ofstream(o.svg_file) << render_svg(title, seconds, deliver_total);
  }
  const bool bad =
      lost || (receiver && (receiver->counts().duplicates || receiver->counts().bad_signature));
  return bad ? 1 : 0;
}

}  // namespace
}  // namespace callbackd::load

int main(int argc, char** argv) { return callbackd::load::run(callbackd::load::parse(argc, argv)); }
