// The daemon under bad customers, black-box: endpoints that never answer, that accept and stay
// silent, or whose connects never complete, next to a healthy one; two daemons on one data
// directory; SIGTERM while attempts run.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "api_client.h"
#include "callback_json.h"
#include "daemon_process.h"
#include "latency_probe.h"
#include "receiver.h"
#include "temp_dir.h"
#include "unreachable_hosts.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::DaemonProcess;
using testing::ReceivedRequest;
using testing::Receiver;
using testing::Reply;
using testing::wait_until;

class DaemonDispatchTest : public ::testing::Test {
 protected:
  // Defaults as shipped, but for loopback receivers being allowed.
  void start(std::vector<std::string> extra_args = {}) {
    std::vector<std::string> args = {"serve", "--listen=127.0.0.1:0",
                                     "--data-dir=" + (dir_ / "data").string(),
                                     "--allow-networks=127.0.0.0/8"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    daemon_ = std::make_unique<DaemonProcess>(CALLBACKD_BINARY, args, dir_ / "daemon.log");
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->log();
    Result<ApiReply> app =
        call_api("POST", daemon_->base_url(), "/v1/apps", "", R"({"name":"acme"})");
    ASSERT_TRUE(app.ok() && app->status == 201) << app.status().to_string();
    app_id_ = json::parse(app->body)["app_id"];
  }

  // Posts one callback; success when it was accepted (202), else what came back instead.
  ::testing::AssertionResult post(const std::string& url, const std::string& task) {
    Result<ApiReply> reply = call_api("POST", daemon_->base_url(), "/v1/callbacks", "",
                                      testing::completed_callback(app_id_, url, task).dump());
    if (!reply.ok()) return ::testing::AssertionFailure() << reply.status().to_string();
    if (reply->status != 202) {
      return ::testing::AssertionFailure() << reply->status << " " << reply->body;
    }
    return ::testing::AssertionSuccess();
  }

  json get(const std::string& path) {
    Result<ApiReply> reply = call_api("GET", daemon_->base_url(), path, "");
    return reply.ok() ? json::parse(reply->body, nullptr, false) : json();
  }

  // The daemon's warnings and errors, to explain a failure.
  std::string log_problems() {
    std::string problems, line;
    std::istringstream log(daemon_->log());
    while (std::getline(log, line)) {
      if (line.find("level=warn") != std::string::npos ||
          line.find("level=err") != std::string::npos) {
        problems += line + "\n";
      }
    }
    return problems.substr(0, 4000);
  }

  testing::LatencyReport probe_healthy_latency() {
    Receiver healthy;
    testing::LatencyProbe probe{.base_url = daemon_->base_url(), .app_id = app_id_};
    testing::LatencyReport report = testing::run_latency_probe(probe, healthy);
    std::printf("healthy host beside sick ones: %s\n", report.summary().c_str());
    return report;
  }

  testing::TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::string app_id_;
};

// Endpoints that never answer: every delivery gets exactly six attempts, numbered 1 to 6, one
// after the other (never two of one delivery at once), and is dead after the sixth.
TEST_F(DaemonDispatchTest, NeverAnsweringEndpointsGetExactlySixSequentialAttempts) {
  constexpr std::chrono::milliseconds kTimeout = 400ms;
  // The schedule exactly as published: 36 timeouts per host would open its circuit breaker
  // (daemon_breaker_test covers that).
  start({"--attempt-timeout=400ms", "--retry-schedule=20ms,20ms,20ms,20ms,20ms",
         "--poll-interval=10ms", "--max-in-flight-per-host=4", "--breaker-enabled=false"});
  std::vector<std::unique_ptr<Receiver>> silent;
  std::set<std::string> ids;
  for (int host = 0; host < 3; ++host) {
    silent.push_back(
        std::make_unique<Receiver>([](const ReceivedRequest&) { return Reply{.hang = true}; }));
    for (int i = 0; i < 6; ++i) {
      ASSERT_TRUE(post(silent.back()->url(), "t" + std::to_string(host) + "-" + std::to_string(i)));
    }
  }
  ASSERT_TRUE(wait_until(
      [&] { return get("/v1/callbacks?state=dead&limit=100")["items"].size() == 18; }, 60s))
      << get("/v1/callbacks?limit=100").dump();

  std::map<std::string, std::vector<ReceivedRequest>> by_delivery;
  for (const auto& receiver : silent) {
    for (const ReceivedRequest& r : receiver->requests()) {
      by_delivery[r.headers.at("x-callback-id")].push_back(r);
    }
  }
  ASSERT_EQ(by_delivery.size(), 18u);
  for (auto& [id, requests] : by_delivery) {
    ASSERT_EQ(requests.size(), 6u) << id << " was sent " << requests.size() << " times";
    std::sort(requests.begin(), requests.end(),
              [](const auto& a, const auto& b) { return a.received_at < b.received_at; });
    for (std::size_t k = 0; k < requests.size(); ++k) {
      EXPECT_EQ(requests[k].headers.at("x-callback-attempt"), std::to_string(k + 1)) << id;
      // Attempt k+1 starts only after attempt k ran out its bound (less a little for the
      // two clocks that timed it).
      if (k > 0) {
        EXPECT_GE(requests[k].received_at - requests[k - 1].received_at, kTimeout - 20ms) << id;
      }
    }
    const json delivery = get("/v1/callbacks/" + id);
    EXPECT_EQ(delivery["state"], "dead");
    EXPECT_EQ(delivery["attempts"].size(), 6u);
  }
  Result<ApiReply> metrics = call_api("GET", daemon_->base_url(), "/metrics", "");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("callbackd_stale_lease_writes_total{write=\"record\"} 0"),
            std::string::npos);
}

// Ten endpoints that accept connections and never answer, a hundred callbacks each, with the
// shipped settings (10 s bound, 256 in flight, 32 per host): a healthy customer's callbacks,
// sent at 100/s meanwhile, are not held up. (bench/isolation_bench reports the percentiles.)
TEST_F(DaemonDispatchTest, SilentEndpointsDoNotDelayAHealthyOne) {
  start();
  std::vector<std::unique_ptr<Receiver>> silent;
  for (int host = 0; host < 10; ++host) {
    silent.push_back(
        std::make_unique<Receiver>([](const ReceivedRequest&) { return Reply{.hang = true}; }));
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(post(silent.back()->url(), "s" + std::to_string(host) + "-" + std::to_string(i)));
    }
  }
  const testing::LatencyReport report = probe_healthy_latency();
  EXPECT_EQ(report.refused, 0u);
  EXPECT_EQ(report.arrived, report.sent) << report.summary();
  EXPECT_LT(report.max(), 2000) << report.summary();
}

// Two thousand endpoints whose connects never complete (3 s bound): the healthy customer's
// callbacks at 100/s are not held up either.
TEST_F(DaemonDispatchTest, DownEndpointsDoNotDelayAHealthyOne) {
  testing::UnreachableHosts down;
  start({"--attempt-timeout=3s"});
  for (int host = 0; host < 2000; ++host) {
    ASSERT_TRUE(post(down.url(static_cast<std::size_t>(host)), "d" + std::to_string(host)));
  }
  const testing::LatencyReport report = probe_healthy_latency();
  EXPECT_EQ(report.refused, 0u) << log_problems();
  EXPECT_EQ(report.arrived, report.sent) << report.summary() << "\n" << log_problems();
  EXPECT_LT(report.max(), 2000) << report.summary();
}

TEST_F(DaemonDispatchTest, ASecondDaemonOnTheSameDataDirExitsNamingTheFirst) {
  start();
  const auto second = testing::run_command(
      CALLBACKD_BINARY,
      {"serve", "--listen=127.0.0.1:0", "--data-dir=" + (dir_ / "data").string()});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(
      second.output.find("in use by another process (pid " + std::to_string(daemon_->pid()) + ","),
      std::string::npos)
      << second.output;
  // The first one is unharmed.
  Receiver receiver;
  ASSERT_TRUE(post(receiver.url(), "after"));
  EXPECT_TRUE(receiver.wait_for_count(1, 10s));
}

// SIGTERM stops claiming at once: attempts already running finish, nothing new starts, and the
// daemon exits well inside the 30 s a supervisor gives it.
TEST_F(DaemonDispatchTest, SigtermStartsNoNewAttempt) {
  Receiver slow([](const ReceivedRequest&) { return Reply{.status = 204, .delay = 1500ms}; });
  start({"--max-in-flight-per-host=2"});
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(post(slow.url(), "t" + std::to_string(i)));
  ASSERT_TRUE(slow.wait_for_count(2, 10s));
  ASSERT_EQ(slow.count(), 2u);
  const auto signalled = std::chrono::steady_clock::now();
  daemon_->signal(SIGTERM);
  EXPECT_EQ(daemon_->wait_exit(20s), 0) << daemon_->log();
  const auto exited = std::chrono::steady_clock::now();
  // The next attempts would have started as the first two finished, 1.5 s in.
  EXPECT_EQ(slow.count(), 2u) << "an attempt started after SIGTERM";
  EXPECT_LT(exited - signalled, 5s) << "attempts in flight take 1.5 s; shutdown took longer";
}

}  // namespace
}  // namespace callbackd
