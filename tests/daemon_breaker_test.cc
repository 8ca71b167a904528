// Endpoint health through the daemon, black-box: GET /v1/endpoints, the metrics and the log
// while a receiver fails every request and after it recovers.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <nlohmann/json.hpp>

#include "api_client.h"
#include "callback_json.h"
#include "daemon_process.h"
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
using testing::Reply;
using testing::wait_until;

class DaemonBreakerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<DaemonProcess>(
        CALLBACKD_BINARY,
        std::vector<std::string>{
            "serve", "--listen=127.0.0.1:0", "--data-dir=" + (dir_ / "data").string(),
            "--allow-networks=127.0.0.0/8", "--poll-interval=10ms",
            "--retry-schedule=200ms,200ms,200ms,200ms,200ms", "--breaker-min-attempts=4",
            "--breaker-cooldown=1s", "--breaker-max-cooldown=4s"},
        dir_ / "daemon.log");
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->log();
    Result<ApiReply> app = call("POST", "/v1/apps", R"({"name":"acme"})");
    ASSERT_TRUE(app.ok() && app->status == 201) << app.status().to_string();
    app_id_ = json::parse(app->body)["app_id"];
  }

  Result<ApiReply> call(const std::string& method, const std::string& path,
                        const std::string& body = "") {
    return call_api(method, daemon_->base_url(), path, "", body);
  }
  json get(const std::string& path) {
    Result<ApiReply> reply = call("GET", path);
    return reply.ok() ? json::parse(reply->body, nullptr, false) : json();
  }
  std::string post(const Receiver& to, const std::string& task) {
    Result<ApiReply> reply =
        call("POST", "/v1/callbacks", testing::completed_callback(app_id_, to.url(), task).dump());
    EXPECT_TRUE(reply.ok() && reply->status == 202) << (reply.ok() ? reply->body : "");
    return reply.ok() ? json::parse(reply->body).value("delivery_id", "") : "";
  }
  std::string metrics() {
    Result<ApiReply> reply = call("GET", "/metrics");
    return reply.ok() ? reply->body : "";
  }
  json endpoint(const std::string& key) {
    const json all = get("/v1/endpoints");
    for (const json& item : all["items"]) {
      if (item["endpoint"] == key) return item;
    }
    return json::object();
  }
  bool delivered(const std::vector<std::string>& ids) {
    for (const std::string& id : ids) {
      if (get("/v1/callbacks/" + id)["state"] != "delivered") return false;
    }
    return true;
  }

  testing::TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::string app_id_;
};

TEST_F(DaemonBreakerTest, ShowsAnOpenEndpointInTheApiMetricsAndLogUntilItRecovers) {
  std::atomic<bool> failing = true;
  Receiver down([&](const ReceivedRequest&) { return Reply{.status = failing ? 503 : 204}; });
  Receiver healthy;
  const std::string down_key = "http://127.0.0.1:" + std::to_string(down.port());
  std::vector<std::string> held;
  for (int i = 0; i < 4; ++i) held.push_back(post(down, "d" + std::to_string(i)));

  ASSERT_TRUE(wait_until([&] { return endpoint(down_key).value("state", "") == "open"; }, 20s))
      << get("/v1/endpoints").dump();
  const json open = get("/v1/endpoints?state=open");
  ASSERT_EQ(open["items"].size(), 1u) << open.dump();
  const json& e = open["items"][0];
  EXPECT_EQ(e["endpoint"], down_key);
  EXPECT_GE(e["attempts"].get<int>(), 4);
  EXPECT_EQ(e["failures"], e["attempts"]);
  EXPECT_EQ(e["failure_rate"], 1.0);
  EXPECT_EQ(e["last_error"], "status");
  EXPECT_TRUE(e["last_failure_at"].is_string());
  EXPECT_TRUE(e["opened_at"].is_string());
  EXPECT_TRUE(e["next_probe_at"].is_string());
  EXPECT_TRUE(e["in_flight"].is_number_unsigned());
  EXPECT_EQ(e["success_rate"], 0.0);
  EXPECT_EQ(e.size(), 12u) << e.dump();
  // What waits for it: the held deliveries, pending in the store (all four between probes).
  EXPECT_TRUE(wait_until([&] { return endpoint(down_key).value("waiting", -1) == 4; }, 10s))
      << get("/v1/endpoints").dump();
  EXPECT_TRUE(wait_until(
      [&] {
        const std::string m = metrics();
        return m.find("callbackd_endpoints{state=\"open\"} 1\n") != std::string::npos &&
               m.find("callbackd_breaker_transitions_total{to=\"open\"} ") != std::string::npos &&
               m.find("callbackd_breaker_transitions_total{to=\"open\"} 0\n") == std::string::npos;
      },
      10s))
      << metrics();
  EXPECT_NE(daemon_->log().find("event=breaker_open endpoint=" + down_key + " failure_rate=1.00"),
            std::string::npos)
      << daemon_->log();

  // Another host keeps flowing meanwhile.
  std::vector<std::string> flowing;
  for (int i = 0; i < 3; ++i) flowing.push_back(post(healthy, "h" + std::to_string(i)));
  ASSERT_TRUE(wait_until([&] { return delivered(flowing); }, 20s));
  const json first = get("/v1/endpoints?limit=1")["items"];
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0]["endpoint"], down_key) << "most failures first";
  EXPECT_EQ(get("/v1/endpoints?state=closed")["items"].size(), 1u);

  // Bad queries are named.
  for (const char* bad : {"/v1/endpoints?state=sick", "/v1/endpoints?limit=0",
                          "/v1/endpoints?limit=1001", "/v1/endpoints?color=red"}) {
    Result<ApiReply> reply = call("GET", bad);
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->status, 400) << bad;
    EXPECT_EQ(json::parse(reply->body)["error"]["code"], "invalid_field") << bad;
  }
  EXPECT_EQ(call("POST", "/v1/endpoints")->status, 405);

  // It recovers: a probe closes it and every held delivery arrives, attempts without a gap.
  failing = false;
  ASSERT_TRUE(wait_until([&] { return delivered(held); }, 30s)) << get("/v1/endpoints").dump();
  EXPECT_EQ(endpoint(down_key)["state"], "closed");
  EXPECT_EQ(endpoint(down_key)["waiting"], 0);
  std::map<std::string, std::vector<std::string>> numbers;
  for (const ReceivedRequest& r : down.requests()) {
    numbers[r.headers.at("x-callback-id")].push_back(r.headers.at("x-callback-attempt"));
  }
  for (const std::string& id : held) {
    const json attempts = get("/v1/callbacks/" + id)["attempts"];
    ASSERT_EQ(attempts.size(), numbers[id].size()) << id;
    for (std::size_t k = 0; k < attempts.size(); ++k) {
      EXPECT_EQ(attempts[k]["n"], k + 1) << id;
      EXPECT_EQ(numbers[id][k], std::to_string(k + 1)) << id;
    }
  }
  const std::string m = metrics();
  EXPECT_NE(m.find("callbackd_endpoints{state=\"closed\"} 2\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("callbackd_breaker_transitions_total{to=\"closed\"} 0\n"), std::string::npos)
      << m;
  EXPECT_NE(daemon_->log().find("event=breaker_closed endpoint=" + down_key), std::string::npos);
}

}  // namespace
}  // namespace callbackd
