// callbackd on PostgreSQL, black-box: the daemon with `store` set to a real database, alone
// and three at once on one database with one of them killed (SIGKILL) mid-flight.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "api_client.h"
#include "callback_json.h"
#include "daemon_process.h"
#include "postgres_cluster.h"
#include "receiver.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::DaemonProcess;
using testing::ReceivedRequest;
using testing::Receiver;

// Every process on one database must seal secrets under the same key.
constexpr const char* kMasterKey =
    "CALLBACKD_MASTER_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

class DaemonPostgresTest : public ::testing::Test {
 protected:
  std::unique_ptr<DaemonProcess> start_daemon(int n) {
    auto daemon = std::make_unique<DaemonProcess>(
        CALLBACKD_BINARY,
        std::vector<std::string>{"serve", "--listen=127.0.0.1:0", "--store=" + store_,
                                 "--data-dir=" + (dir_ / ("data" + std::to_string(n))).string(),
                                 "--allow-networks=127.0.0.0/8", "--poll-interval=100ms",
                                 "--retry-schedule=200ms,200ms,200ms,200ms,200ms"},
        dir_ / ("daemon" + std::to_string(n) + ".log"), std::vector<std::string>{kMasterKey});
    EXPECT_TRUE(daemon->wait_listening()) << daemon->log();
    return daemon;
  }

  std::string create_app(DaemonProcess& daemon) {
    auto app = call_api("POST", daemon.base_url(), "/v1/apps", "", R"({"name":"acme"})");
    EXPECT_TRUE(app.ok() && app->status == 201) << (app.ok() ? app->body : "no answer");
    return app.ok() ? json::parse(app->body)["app_id"].get<std::string>() : "";
  }

  bool post(DaemonProcess& daemon, const std::string& app_id, const std::string& url,
            const std::string& task) {
    auto reply = call_api("POST", daemon.base_url(), "/v1/callbacks", "",
                          testing::completed_callback(app_id, url, task).dump());
    return reply.ok() && reply->status == 202;
  }

  testing::TempDir dir_;
  std::string store_ = testing::fresh_postgres_database();
};

TEST_F(DaemonPostgresTest, DeliversAndReportsLikeOnSqlite) {
  auto daemon = start_daemon(0);
  EXPECT_NE(daemon->log().find("store=postgres:"), std::string::npos) << daemon->log();
  EXPECT_EQ(daemon->log().find("password"), std::string::npos);
  const std::string app_id = create_app(*daemon);
  Receiver receiver;
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(post(*daemon, app_id, receiver.url(), "t" + std::to_string(i)));
  ASSERT_TRUE(receiver.wait_for_count(20, 10s));
  const std::string id = receiver.requests()[0].headers.at("x-callback-id");
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto d = call_api("GET", daemon->base_url(), "/v1/callbacks/" + id, "");
        return d.ok() && json::parse(d->body)["state"] == "delivered";
      },
      5s));
  auto metrics = call_api("GET", daemon->base_url(), "/metrics", "");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("callbackd_store_info{backend=\"postgres\"} 1"), std::string::npos);
  EXPECT_NE(metrics->body.find("callbackd_store_connections{state=\"idle\"}"), std::string::npos);
  // The same task again is the same delivery, across a restart.
  daemon.reset();
  daemon = start_daemon(0);
  auto again = call_api("POST", daemon->base_url(), "/v1/callbacks", "",
                        testing::completed_callback(app_id, receiver.url(), "t0").dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 200) << again->body;
}

// Three daemons, one database, 5,000 callbacks handed to any of them; one is killed
// mid-flight and started again. Every accepted callback arrives; no two attempts of one
// delivery overlap in time; an attempt number is sent twice only for deliveries the killed
// daemon held.
TEST_F(DaemonPostgresTest, ThreeDaemonsShareOneDatabaseThroughAKill) {
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  for (int n = 0; n < 3; ++n) daemons.push_back(start_daemon(n));
  const std::string app_id = create_app(*daemons[0]);
  Receiver receiver([](const ReceivedRequest&) { return testing::Reply{.delay = 5ms}; });

  constexpr int kCallbacks = 5000;
  std::mt19937 random(7);
  std::set<std::string> accepted;
  for (int i = 0; i < kCallbacks; ++i) {
    const std::string task = "t" + std::to_string(i);
    if (i == kCallbacks / 2) daemons[1]->signal(SIGKILL);
    int n = static_cast<int>(random() % 3);
    if (i >= kCallbacks / 2 && n == 1) n = 0;  // the killed one is down
    if (post(*daemons[n], app_id, receiver.url(), task)) accepted.insert(task);
  }
  ASSERT_EQ(daemons[1]->wait_exit(5s), 128 + SIGKILL);
  daemons[1] = start_daemon(1);

  auto arrived_tasks = [&] {
    std::set<std::string> tasks;
    for (const ReceivedRequest& r : receiver.requests()) {
      tasks.insert(json::parse(r.body)["task_id"].get<std::string>());
    }
    return tasks;
  };
  ASSERT_TRUE(testing::wait_until([&] { return arrived_tasks().size() >= accepted.size(); }, 60s))
      << arrived_tasks().size() << " of " << accepted.size();
  EXPECT_EQ(accepted.size(), static_cast<std::size_t>(kCallbacks)) << "every POST was accepted";
  const std::set<std::string> arrived = arrived_tasks();
  for (const std::string& task : accepted) EXPECT_TRUE(arrived.contains(task)) << task;

  std::map<std::pair<std::string, std::string>, int> sends;  // (delivery, attempt) -> times
  std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> arrivals;
  for (const ReceivedRequest& r : receiver.requests()) {
    ++sends[{r.headers.at("x-callback-id"), r.headers.at("x-callback-attempt")}];
    arrivals[r.headers.at("x-callback-id")].push_back(r.received_at);
  }
  // The receiver holds each request 5 ms: a later send of one delivery that arrived sooner
  // than that after the one before ran beside it.
  for (auto& [id, times] : arrivals) {
    std::sort(times.begin(), times.end());
    for (std::size_t k = 1; k < times.size(); ++k) {
      EXPECT_GE(times[k] - times[k - 1], 5ms) << id << " was sent twice at once";
    }
  }
  std::size_t repeated = 0;
  for (const auto& [key, times] : sends) repeated += times > 1 ? 1 : 0;
  std::printf("3 daemons, 1 killed: %zu accepted, %zu arrived, %zu attempts sent twice\n",
              accepted.size(), arrived.size(), repeated);
  // Only what the killed daemon had in flight can be sent again: at most its in-flight cap.
  EXPECT_LE(repeated, 256u);
}

// A user who outgrows one box copies the SQLite store into PostgreSQL and keeps everything:
// apps and their secrets, every delivery with its attempts, and the pending ones go out.
TEST_F(DaemonPostgresTest, ASqliteStoreCopiedIntoPostgresKeepsEveryDelivery) {
  const auto data_dir = (dir_ / "data0").string();
  auto sqlite_daemon = std::make_unique<DaemonProcess>(
      CALLBACKD_BINARY,
      std::vector<std::string>{"serve", "--listen=127.0.0.1:0", "--data-dir=" + data_dir,
                               "--allow-networks=127.0.0.0/8"},
      dir_ / "sqlite.log");
  ASSERT_TRUE(sqlite_daemon->wait_listening()) << sqlite_daemon->log();
  const std::string app_id = create_app(*sqlite_daemon);
  Receiver answered;
  Receiver failing([](const ReceivedRequest&) { return testing::Reply{.status = 500}; });
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(post(*sqlite_daemon, app_id, answered.url(), "ok" + std::to_string(i)));
  }
  ASSERT_TRUE(post(*sqlite_daemon, app_id, failing.url(), "failing"));
  ASSERT_TRUE(answered.wait_for_count(5, 10s));
  ASSERT_TRUE(failing.wait_for_count(1, 10s));
  // Every first attempt recorded (an arrival is not yet a record).
  json before;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto list = call_api("GET", sqlite_daemon->base_url(), "/v1/callbacks?limit=100", "");
        if (!list.ok()) return false;
        before = json::parse(list->body)["items"];
        return std::all_of(before.begin(), before.end(),
                           [](const json& item) { return item["attempts"].size() == 1; });
      },
      10s));
  sqlite_daemon->signal(SIGTERM);
  ASSERT_EQ(sqlite_daemon->wait_exit(20s), 0);

  const auto copied = testing::run_command(
      CALLBACKD_BINARY, {"store", "copy", "--data-dir=" + data_dir, "--store=" + store_});
  ASSERT_EQ(copied.exit_code, 0) << copied.output;
  EXPECT_NE(copied.output.find("copied 1 apps"), std::string::npos) << copied.output;
  EXPECT_NE(copied.output.find("6 deliveries"), std::string::npos) << copied.output;
  const auto again = testing::run_command(
      CALLBACKD_BINARY, {"store", "copy", "--data-dir=" + data_dir, "--store=" + store_});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("already holds callbackd data"), std::string::npos) << again.output;

  // Same data_dir: the same master key file opens the copied secrets.
  auto pg_daemon = std::make_unique<DaemonProcess>(
      CALLBACKD_BINARY,
      std::vector<std::string>{"serve", "--listen=127.0.0.1:0", "--data-dir=" + data_dir,
                               "--store=" + store_, "--allow-networks=127.0.0.0/8"},
      dir_ / "pg.log");
  ASSERT_TRUE(pg_daemon->wait_listening()) << pg_daemon->log();
  for (const json& item : before) {
    auto shown = call_api("GET", pg_daemon->base_url(),
                          "/v1/callbacks/" + item["delivery_id"].get<std::string>(), "");
    ASSERT_TRUE(shown.ok() && shown->status == 200) << item.dump();
    const json after = json::parse(shown->body);
    EXPECT_EQ(after["task_id"], item["task_id"]);
    EXPECT_EQ(after["attempts"].size(), item["attempts"].size()) << item.dump();
  }
  auto same = call_api("POST", pg_daemon->base_url(), "/v1/callbacks", "",
                       testing::completed_callback(app_id, answered.url(), "ok0").dump());
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->status, 200) << "the task is known in the copy";
  ASSERT_TRUE(post(*pg_daemon, app_id, answered.url(), "new"));
  ASSERT_TRUE(answered.wait_for_count(6, 10s)) << "signed with the copied secret and sent";
}

// PostgreSQL stops and starts again while callbacks keep coming: what was acknowledged is
// all delivered; while the database is gone the daemon answers 503 rather than 202.
TEST_F(DaemonPostgresTest, ADatabaseOutageUnderLoadLosesNothingAcknowledged) {
  testing::PostgresCluster cluster;
  store_ = cluster.conninfo();
  auto daemon = start_daemon(0);
  const std::string app_id = create_app(*daemon);
  Receiver receiver;

  std::set<std::string> acknowledged;
  std::size_t refused = 0;
  auto post_some = [&](int from, int count) {
    for (int i = from; i < from + count; ++i) {
      const std::string task = "t" + std::to_string(i);
      auto reply = call_api("POST", daemon->base_url(), "/v1/callbacks", "",
                            testing::completed_callback(app_id, receiver.url(), task).dump());
      if (reply.ok() && (reply->status == 202 || reply->status == 200)) {
        acknowledged.insert(task);
      } else {
        ++refused;
        EXPECT_TRUE(reply.ok() && reply->status == 503) << (reply.ok() ? reply->body : "");
      }
    }
  };
  post_some(0, 200);
  cluster.halt();
  post_some(200, 50);
  EXPECT_GT(refused, 0u) << "the database was gone";
  auto ready = call_api("GET", daemon->base_url(), "/readyz", "");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 503) << "not ready while the database is gone";
  cluster.resume();
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto reply = call_api("POST", daemon->base_url(), "/v1/callbacks", "",
                              testing::completed_callback(app_id, receiver.url(), "probe").dump());
        return reply.ok() && (reply->status == 202 || reply->status == 200);
      },
      20s))
      << "the daemon recovers alone";
  acknowledged.insert("probe");
  EXPECT_TRUE(testing::wait_until(
      [&] {
        auto again = call_api("GET", daemon->base_url(), "/readyz", "");
        return again.ok() && again->status == 200;
      },
      10s))
      << "ready again, alone";
  post_some(250, 200);

  auto arrived = [&] {
    std::set<std::string> tasks;
    for (const ReceivedRequest& r : receiver.requests()) {
      tasks.insert(json::parse(r.body)["task_id"].get<std::string>());
    }
    return tasks;
  };
  ASSERT_TRUE(testing::wait_until(
      [&] {
        const auto tasks = arrived();
        return std::includes(tasks.begin(), tasks.end(), acknowledged.begin(), acknowledged.end());
      },
      60s))
      << arrived().size() << " arrived of " << acknowledged.size() << " acknowledged";
  std::printf("outage: %zu acknowledged, %zu refused with 503, all acknowledged delivered\n",
              acknowledged.size(), refused);
}

}  // namespace
}  // namespace callbackd
