// Store faults cost nothing, black-box: real callbackd daemons on a real PostgreSQL that is
// restarted at once (pg_ctl restart -m immediate: every session cut, as a crash or failover
// does) under load, or reached through a TCP proxy that stops forwarding (a frozen link).
// A pipeline-like client hands tasks over and hands a refused one over again, the same task; a
// receiver counts what arrives. No attempt number of a delivery may arrive twice, and every
// task acknowledged must arrive.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "api_client.h"
#include "callback_json.h"
#include "daemon_process.h"
#include "postgres_cluster.h"
#include "receiver.h"
#include "stalling_proxy.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::DaemonProcess;
using testing::Receiver;
using Millis = std::chrono::milliseconds;

constexpr const char* kMasterKey =
    "CALLBACKD_MASTER_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

// What the receiver saw, by delivery and attempt number.
struct Arrivals {
  explicit Arrivals(const Receiver& receiver) {
    for (const auto& r : receiver.requests()) {
      const std::string key =
          r.headers.at("x-callback-id") + " #" + r.headers.at("x-callback-attempt");
      if (++per_attempt[key] == 2) repeated.push_back(key);
      tasks.insert(json::parse(r.body)["task_id"].get<std::string>());
    }
  }
  std::map<std::string, int> per_attempt;
  std::vector<std::string> repeated;  // (delivery, attempt) pairs that arrived more than once
  std::set<std::string> tasks;
};

class DaemonStoreFaultsTest : public ::testing::Test {
 protected:
  std::unique_ptr<DaemonProcess> start_daemon(int n, const std::string& store,
                                              std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"serve",
                                  "--listen=127.0.0.1:0",
                                  "--store=" + store,
                                  "--data-dir=" + (dir_ / ("data" + std::to_string(n))).string(),
                                  "--allow-networks=127.0.0.0/8",
                                  "--poll-interval=100ms",
                                  "--retry-schedule=200ms,200ms,200ms,200ms,200ms",
                                  "--breaker-enabled=false"};
    args.insert(args.end(), extra.begin(), extra.end());
    if (std::none_of(extra.begin(), extra.end(),
                     [](const std::string& a) { return a.starts_with("--attempt-timeout"); })) {
      args.push_back("--attempt-timeout=2s");
    }
    auto daemon = std::make_unique<DaemonProcess>(CALLBACKD_BINARY, args,
                                                  dir_ / ("daemon" + std::to_string(n) + ".log"),
                                                  std::vector<std::string>{kMasterKey});
    EXPECT_TRUE(daemon->wait_listening()) << daemon->log();
    return daemon;
  }

  std::string create_app(DaemonProcess& daemon) {
    auto app = call_api("POST", daemon.base_url(), "/v1/apps", "", R"({"name":"acme"})");
    EXPECT_TRUE(app.ok() && app->status == 201) << (app.ok() ? app->body : "no answer");
    return app.ok() ? json::parse(app->body)["app_id"].get<std::string>() : "";
  }

  testing::TempDir dir_;
};

// A pipeline: hands tasks over one after another, round robin across daemons, and a task that
// is refused (the store is gone) is handed over again until it is taken. Records how long each
// answer took.
class Pipeline {
 public:
  Pipeline(std::vector<DaemonProcess*> daemons, std::string app_id, std::string url)
      : daemons_(std::move(daemons)), app_id_(std::move(app_id)), url_(std::move(url)) {}

  void run_for(std::chrono::milliseconds span, Millis gap) {
    const auto end = std::chrono::steady_clock::now() + span;
    for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
      hand_over("t" + std::to_string(i), i);
      std::this_thread::sleep_for(gap);
    }
  }
  void hand_over(const std::string& task, int turn) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (int attempt = 0; std::chrono::steady_clock::now() < deadline; ++attempt) {
      DaemonProcess& daemon = *daemons_[(turn + attempt) % daemons_.size()];
      const auto sent = std::chrono::steady_clock::now();
      auto reply = call_api("POST", daemon.base_url(), "/v1/callbacks", "",
                            testing::completed_callback(app_id_, url_, task).dump());
      const Millis took =
          std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - sent);
      longest_answer = std::max(longest_answer, took);
      if (reply.ok() && (reply->status == 202 || reply->status == 200)) {
        acknowledged.insert(task);
        return;
      }
      ++refused;
      if (reply.ok() && reply->status != 503) unexpected.push_back(reply->body);
      std::this_thread::sleep_for(100ms);
    }
  }

  std::set<std::string> acknowledged;
  std::size_t refused = 0;
  std::vector<std::string> unexpected;  // answers other than 2xx and 503
  Millis longest_answer{0};

 private:
  std::vector<DaemonProcess*> daemons_;
  std::string app_id_;
  std::string url_;
};

bool all_arrived(const Receiver& receiver, const std::set<std::string>& tasks) {
  const Arrivals arrivals(receiver);
  return std::includes(arrivals.tasks.begin(), arrivals.tasks.end(), tasks.begin(), tasks.end());
}

// Two daemons on one database. Three times the database goes while attempts are in flight,
// records and renewals on their way, claims half done: twice a restart that cuts every session
// at once (pg_ctl restart -m immediate), then an outage longer than a lease (1 s attempt bound:
// 4 s leases), after which both daemons come back at the same moment and the one holding the
// leases must renew before the other recovers them. No attempt is sent twice, none is lost.
TEST_F(DaemonStoreFaultsTest, RestartsAndAnOutageLongerThanALeaseSendNoAttemptTwiceNorLose) {
  testing::PostgresCluster cluster;
  auto a = start_daemon(0, cluster.conninfo(), {"--attempt-timeout=1s"});
  auto b = start_daemon(1, cluster.conninfo(), {"--attempt-timeout=1s"});
  const std::string app_id = create_app(*a);
  // The first attempt of every callback is refused and the second taken, both a moment later:
  // records of both kinds, retries, and attempts in flight when the sessions are cut.
  Receiver receiver([](const testing::ReceivedRequest& r) {
    return testing::Reply{.status = r.headers.at("x-callback-attempt") == "1" ? 500 : 204,
                          .delay = 300ms};
  });
  Pipeline pipeline({a.get(), b.get()}, app_id, receiver.url());
  std::thread load([&] { pipeline.run_for(15s, 20ms); });
  std::this_thread::sleep_for(3s);
  cluster.restart_immediately();
  std::this_thread::sleep_for(2s);
  cluster.restart_immediately();
  std::this_thread::sleep_for(2s);
  cluster.halt();
  std::this_thread::sleep_for(6s);
  cluster.resume();
  load.join();

  ASSERT_TRUE(
      testing::wait_until([&] { return all_arrived(receiver, pipeline.acknowledged); }, 60s))
      << Arrivals(receiver).tasks.size() << " of " << pipeline.acknowledged.size() << " arrived";
  // Every acknowledged task gets its second, successful attempt, and nothing more comes.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        const Arrivals arrivals(receiver);
        return arrivals.per_attempt.size() >= 2 * pipeline.acknowledged.size();
      },
      60s));
  std::this_thread::sleep_for(1s);
  const Arrivals arrivals(receiver);
  EXPECT_EQ(arrivals.repeated, std::vector<std::string>{}) << "attempts sent twice";
  EXPECT_EQ(pipeline.unexpected, std::vector<std::string>{});
  EXPECT_GT(pipeline.acknowledged.size(), 100u);
  std::printf(
      "restart and outage: %zu tasks acknowledged, %zu refused and handed over again, %zu "
      "attempts received, %zu of them twice\n",
      pipeline.acknowledged.size(), pipeline.refused, arrivals.per_attempt.size(),
      arrivals.repeated.size());
}

// PostgreSQL behind a proxy that keeps every connection open and forwards nothing, for longer
// than every bound: /readyz says 503 within about a bound, every POST is answered within its
// bounds (503, or 202 once the link is back), nothing hangs; after the thaw everything
// acknowledged is delivered, no attempt twice.
TEST_F(DaemonStoreFaultsTest, AFrozenLinkIsNoticedWithinItsBoundsAndCostsNothing) {
  const std::string database = testing::fresh_postgres_database();
  auto proxy = testing::StallingProxy::for_postgres(database);
  auto daemon = start_daemon(0, proxy->conninfo(),
                             {"--postgres-connect-timeout=1s", "--postgres-statement-timeout=1s",
                              "--postgres-keepalive-idle=1s", "--postgres-tcp-user-timeout=1s"});
  const std::string app_id = create_app(*daemon);
  Receiver receiver;
  Pipeline pipeline({daemon.get()}, app_id, receiver.url());
  pipeline.run_for(1s, 20ms);

  proxy->freeze();
  const auto frozen_at = std::chrono::steady_clock::now();
  std::optional<Millis> not_ready_after;
  std::atomic<bool> freezing{true};
  std::thread load([&] {
    for (int i = 0; freezing; ++i) pipeline.hand_over("frozen" + std::to_string(i), i);
  });
  while (std::chrono::steady_clock::now() - frozen_at < 8s) {
    auto ready = call_api("GET", daemon->base_url(), "/readyz", "");
    ASSERT_TRUE(ready.ok()) << "/readyz did not answer";
    if (ready->status == 503 && !not_ready_after) {
      not_ready_after =
          std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - frozen_at);
    }
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(not_ready_after.has_value()) << "/readyz said ready throughout the freeze";
  EXPECT_LE(*not_ready_after, 5s) << "noticed after " << not_ready_after->count() << " ms";
  proxy->thaw();
  freezing = false;
  load.join();
  EXPECT_GT(pipeline.refused, 0u) << "every POST was taken while the database was frozen";
  // Within the bounds: a statement (1 s and a margin), a reconnect (1 s), and a look-up of a
  // commit whose answer was lost (1 s and a margin): never the 8 s of the freeze.
  EXPECT_LE(pipeline.longest_answer, 5s)
      << "a POST waited " << pipeline.longest_answer.count() << " ms";
  EXPECT_EQ(pipeline.unexpected, std::vector<std::string>{});

  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto ready = call_api("GET", daemon->base_url(), "/readyz", "");
        return ready.ok() && ready->status == 200;
      },
      20s))
      << "not ready again after the thaw";
  ASSERT_TRUE(
      testing::wait_until([&] { return all_arrived(receiver, pipeline.acknowledged); }, 30s))
      << Arrivals(receiver).tasks.size() << " of " << pipeline.acknowledged.size() << " arrived";
  std::this_thread::sleep_for(1s);
  const std::size_t repeated = Arrivals(receiver).repeated.size();
  EXPECT_EQ(repeated, 0u) << "attempts sent twice";
  std::printf(
      "frozen link: /readyz 503 after %lld ms, longest POST %lld ms, %zu acknowledged, "
      "%zu refused, %zu attempts twice\n",
      static_cast<long long>(not_ready_after->count()),
      static_cast<long long>(pipeline.longest_answer.count()), pipeline.acknowledged.size(),
      pipeline.refused, repeated);
}

}  // namespace
}  // namespace callbackd
