// Bad customers next to a good one, black-box against a callbackd binary: how long a healthy
// host's callbacks take while other endpoints are silent or down, and whether endpoints that
// never answer, or answer just inside the bound, are ever sent the same attempt twice.
//
//   callbackd_isolation_bench [--daemon PATH] [--scenario all|silent|down|never|slow]
//                             [--down-hosts N] [--seconds S]
//
// --daemon runs any build (an older one for a before/after comparison); it must take the
// `serve` flags used here. Prints one line of figures per scenario.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api_client.h"
#include "callback_json.h"
#include "daemon_process.h"
#include "latency_probe.h"
#include "receiver.h"
#include "temp_dir.h"
#include "unreachable_hosts.h"

namespace {

using namespace std::chrono_literals;
using namespace callbackd;
using namespace callbackd::testing;
using nlohmann::json;

struct Settings {
  std::string daemon = CALLBACKD_BINARY;
  std::string scenario = "all";
  std::size_t down_hosts = 10000;
  int seconds = 10;
};

// One daemon on a fresh data directory with one app; loopback receivers allowed.
class Daemon {
 public:
  Daemon(const Settings& settings, std::vector<std::string> extra) {
    std::vector<std::string> args = {"serve", "--listen=127.0.0.1:0",
                                     "--data-dir=" + (dir_ / "data").string(),
                                     "--allow-networks=127.0.0.0/8"};
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = std::make_unique<DaemonProcess>(settings.daemon, args, dir_ / "daemon.log");
    if (!process_->wait_listening()) {
      std::fprintf(stderr, "daemon did not start:\n%s\n", process_->log().c_str());
      std::exit(1);
    }
    auto app = call_api("POST", process_->base_url(), "/v1/apps", "", R"({"name":"bench"})");
    if (!app.ok() || app->status != 201) {
      std::fprintf(stderr, "could not create an app\n");
      std::exit(1);
    }
    app_id_ = json::parse(app->body)["app_id"];
  }

  bool post(const std::string& url, const std::string& task) {
    auto reply = call_api("POST", process_->base_url(), "/v1/callbacks", "",
                          completed_callback(app_id_, url, task).dump());
    return reply.ok() && reply->status == 202;
  }

  LatencyReport probe_healthy(int seconds) {
    Receiver healthy({}, true);
    LatencyProbe probe{.base_url = process_->base_url(),
                       .app_id = app_id_,
                       .duration = std::chrono::seconds(seconds),
                       .drain = 60s};  // an old build can be that late
    return run_latency_probe(probe, healthy);
  }

 private:
  TempDir dir_;
  std::unique_ptr<DaemonProcess> process_;
  std::string app_id_;
};

// Requests per (delivery, attempt number), over every receiver.
struct SendCounts {
  std::size_t requests = 0;
  std::size_t deliveries = 0;
  std::size_t repeated_attempts = 0;  // (delivery, attempt) pairs sent more than once
  std::size_t over_six = 0;           // deliveries sent more than 6 times
  int max_attempt = 0;
};

SendCounts count_sends(const std::vector<ReceivedRequest>& requests) {
  SendCounts counts;
  std::map<std::pair<std::string, std::string>, int> per_attempt;
  std::map<std::string, int> per_delivery;
  for (const ReceivedRequest& r : requests) {
    auto id = r.headers.find("x-callback-id");
    auto attempt = r.headers.find("x-callback-attempt");
    if (id == r.headers.end() || attempt == r.headers.end()) continue;
    ++counts.requests;
    if (++per_attempt[{id->second, attempt->second}] == 2) ++counts.repeated_attempts;
    if (++per_delivery[id->second] == 7) ++counts.over_six;
    counts.max_attempt = std::max(counts.max_attempt, std::stoi(attempt->second));
  }
  counts.deliveries = per_delivery.size();
  return counts;
}

void print_sends(const char* scenario, const SendCounts& c, std::size_t posted) {
  std::printf(
      "%-7s posted=%zu requests=%zu deliveries=%zu repeated_attempts=%zu "
      "sent_over_6_times=%zu max_attempt=%d\n",
      scenario, posted, c.requests, c.deliveries, c.repeated_attempts, c.over_six, c.max_attempt);
}

// Ten endpoints that accept and never answer, 100 callbacks each, shipped settings.
void silent(const Settings& settings) {
  Daemon daemon(settings, {});
  std::vector<std::unique_ptr<Receiver>> hosts;
  for (int h = 0; h < 10; ++h) {
    hosts.push_back(std::make_unique<Receiver>(
        [](const ReceivedRequest&) { return Reply{.hang = true}; }, false));
    for (int i = 0; i < 100; ++i) {
      daemon.post(hosts.back()->url(), "s" + std::to_string(h) + "-" + std::to_string(i));
    }
  }
  std::printf("silent  10 hosts x 100, healthy at 100/s: %s\n",
              daemon.probe_healthy(settings.seconds).summary().c_str());
}

// Endpoints whose TCP connects never complete; attempts end at a 3 s bound.
void down(const Settings& settings) {
  UnreachableHosts unreachable;
  Daemon daemon(settings, {"--attempt-timeout=3s"});
  const auto posting = std::chrono::steady_clock::now();
  for (std::size_t h = 0; h < settings.down_hosts; ++h) {
    daemon.post(unreachable.url(h), "d" + std::to_string(h));
  }
  const double post_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - posting).count();
  std::printf("down    %zu hosts (posted in %.1f s), healthy at 100/s: %s\n", settings.down_hosts,
              post_s, daemon.probe_healthy(settings.seconds).summary().c_str());
}

// One endpoint that never answers, 400 callbacks, 2 s bound, quick retries: every attempt of
// every delivery should arrive once, and no delivery more than 6 times.
void never(const Settings& settings) {
  Daemon daemon(settings, {"--attempt-timeout=2s", "--retry-schedule=100ms,100ms,100ms,100ms,100ms",
                           "--poll-interval=100ms"});
  Receiver hang([](const ReceivedRequest&) { return Reply{.hang = true}; });
  for (int i = 0; i < 400; ++i) daemon.post(hang.url(), "n" + std::to_string(i));
  std::this_thread::sleep_for(std::chrono::seconds(std::max(30, settings.seconds * 3)));
  print_sends("never", count_sends(hang.requests()), 400);
}

// One endpoint that answers after 1.9 s of a 2 s bound, 1500 callbacks: each should arrive
// once, as attempt 1.
void slow(const Settings& settings) {
  Daemon daemon(settings, {"--attempt-timeout=2s"});
  Receiver slow_host([](const ReceivedRequest&) { return Reply{.delay = 1900ms}; });
  for (int i = 0; i < 1500; ++i) daemon.post(slow_host.url(), "w" + std::to_string(i));
  slow_host.wait_for_count(1500, std::chrono::seconds(std::max(90, settings.seconds * 9)));
  std::this_thread::sleep_for(5s);  // anything sent twice has time to show
  print_sends("slow", count_sends(slow_host.requests()), 1500);
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--daemon") {
      settings.daemon = value;
    } else if (flag == "--scenario") {
      settings.scenario = value;
    } else if (flag == "--down-hosts") {
      settings.down_hosts = std::stoul(value);
    } else if (flag == "--seconds") {
      settings.seconds = std::stoi(value);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::printf("daemon: %s\n", settings.daemon.c_str());
  const auto run = [&](const char* name, void (*scenario)(const Settings&)) {
    if (settings.scenario == "all" || settings.scenario == name) {
      scenario(settings);
      std::fflush(stdout);
    }
  };
  run("silent", silent);
  run("down", down);
  run("never", never);
  run("slow", slow);
  return 0;
}
