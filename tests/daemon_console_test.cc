// The daemon's console routes, black-box: the static files (no token, strict headers), GET
// /v1/stats and GET /v1/apps.
#include <gtest/gtest.h>

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

constexpr const char* kToken = "console-t0ken";

class DaemonConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<DaemonProcess>(
        CALLBACKD_BINARY,
        std::vector<std::string>{
            "serve", "--listen=127.0.0.1:0", "--data-dir=" + (dir_ / "data").string(),
            "--retry-schedule=20ms,20ms,20ms,20ms,20ms", "--attempt-timeout=2s",
            "--poll-interval=10ms", "--allow-networks=127.0.0.0/8",
            std::string("--api-token=") + kToken},
        dir_ / "daemon.log");
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->log();
  }

  ApiReply call(const std::string& method, const std::string& path, const std::string& body = "",
                const std::string& token = kToken) {
    Result<ApiReply> reply = call_api(method, daemon_->base_url(), path, token, body);
    EXPECT_TRUE(reply.ok()) << reply.status().to_string();
    return reply.ok() ? *reply : ApiReply{};
  }

  json call_json(const std::string& method, const std::string& path, const std::string& body = "",
                 long expected_status = 200) {
    ApiReply reply = call(method, path, body);
    EXPECT_EQ(reply.status, expected_status) << method << " " << path << ": " << reply.body;
    return json::parse(reply.body, nullptr, false);
  }

  std::string state_of(const std::string& id) {
    return call_json("GET", "/v1/callbacks/" + id).value("state", "");
  }

  testing::TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(DaemonConsoleTest, ConsoleFilesAreServedWithoutATokenUnderAStrictPolicy) {
  const ApiReply root = call("GET", "/", "", "");
  EXPECT_EQ(root.status, 302);
  EXPECT_EQ(root.header("Location"), "/console/");

  const ApiReply index = call("GET", "/console/", "", "");
  ASSERT_EQ(index.status, 200) << index.body;
  EXPECT_EQ(index.header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(index.header("Cache-Control"), "no-cache");
  EXPECT_NE(index.header("Content-Security-Policy").find("default-src 'self'"), std::string::npos);
  EXPECT_NE(index.header("Content-Security-Policy").find("frame-ancestors 'none'"),
            std::string::npos);
  EXPECT_EQ(index.header("X-Content-Type-Options"), "nosniff");
  EXPECT_NE(index.body.find(R"(<script type="module" src="js/main.js">)"), std::string::npos);
  EXPECT_EQ(call("GET", "/console/index.html", "", "").body, index.body);

  const ApiReply script = call("GET", "/console/js/main.js", "", "");
  EXPECT_EQ(script.status, 200);
  EXPECT_EQ(script.header("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(call("GET", "/console/console.css", "", "").header("Content-Type"),
            "text/css; charset=utf-8");

  const ApiReply missing = call("GET", "/console/js/nope.js", "", "");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("no console file /console/js/nope.js"), std::string::npos);
  const ApiReply post = call("POST", "/console/", "{}", "");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.header("Allow"), "GET, HEAD");
  // The data behind the console still needs the token.
  EXPECT_EQ(call("GET", "/v1/stats", "", "").status, 401);
  EXPECT_EQ(call("GET", "/v1/apps", "", "wrong").status, 401);
}

TEST_F(DaemonConsoleTest, StatsCountDeliveriesByStateAndTheLastHoursAttempts) {
  Receiver receiver([](const ReceivedRequest& r) {
    return Reply{.status = r.body.find("\"bad\"") != std::string::npos ? 500 : 204};
  });
  const json empty = call_json("GET", "/v1/stats");
  EXPECT_TRUE(empty["success_rate"].is_null()) << empty.dump();
  EXPECT_EQ(empty["attempts_per_minute"].size(), 60u);

  const std::string app_id = call_json("POST", "/v1/apps", R"({"name":"acme"})", 201)["app_id"];
  std::vector<std::string> ids;
  for (const char* task : {"good0", "good1", "bad"}) {
    ids.push_back(call_json("POST", "/v1/callbacks",
                            testing::completed_callback(app_id, receiver.url(), task).dump(),
                            202)["delivery_id"]);
  }
  ASSERT_TRUE(wait_until(
      [&] {
        return state_of(ids[0]) == "delivered" && state_of(ids[1]) == "delivered" &&
               state_of(ids[2]) == "dead";
      },
      15s));

  // The counts are at most a second old (the console polls them): they catch up.
  const json expected = json::parse(R"({"pending":0,"in_flight":0,"delivered":2,"dead":1})");
  json stats;
  EXPECT_TRUE(wait_until(
      [&] {
        stats = call_json("GET", "/v1/stats");
        return stats["deliveries"] == expected;
      },
      3s))
      << stats.dump();
  const json& minutes = stats["attempts_per_minute"];
  ASSERT_EQ(minutes.size(), 60u);
  std::size_t attempts = 0, succeeded = 0, failed = 0;
  for (const json& m : minutes) {
    EXPECT_EQ(m["attempts"].get<std::size_t>(),
              m["succeeded"].get<std::size_t>() + m["failed"].get<std::size_t>());
    attempts += m["attempts"].get<std::size_t>();
    succeeded += m["succeeded"].get<std::size_t>();
    failed += m["failed"].get<std::size_t>();
  }
  EXPECT_EQ(attempts, 8u);  // two first-time successes, six failures of "bad"
  EXPECT_EQ(succeeded, 2u);
  EXPECT_EQ(failed, 6u);
  EXPECT_DOUBLE_EQ(stats["success_rate"].get<double>(), 0.25);
  // Oldest first, a minute apart, the last one the minute now.
  EXPECT_LT(minutes.front()["minute"].get<std::string>(),
            minutes.back()["minute"].get<std::string>());
  EXPECT_EQ(minutes.back()["minute"].get<std::string>().substr(16), ":00.000Z");
}

TEST_F(DaemonConsoleTest, AppsAreListedInPagesWithoutTheirSecrets) {
  std::vector<json> created;
  for (const char* name : {"one", "two", "three"}) {
    created.push_back(call_json(
        "POST", "/v1/apps", json{{"name", name}, {"signature_scheme", "standard"}}.dump(), 201));
  }
  const ApiReply first_reply = call("GET", "/v1/apps?limit=2");
  ASSERT_EQ(first_reply.status, 200) << first_reply.body;
  for (const json& app : created) {
    EXPECT_EQ(first_reply.body.find(app["signing_secret"].get<std::string>()), std::string::npos);
  }
  // By id: creation order, up to apps made within the same millisecond.
  std::map<std::string, std::string> names;
  for (const json& app : created) names[app["app_id"]] = app["name"];
  const json first = json::parse(first_reply.body);
  ASSERT_EQ(first["items"].size(), 2u);
  const json& item = first["items"][0];
  EXPECT_EQ(item["app_id"], names.begin()->first);
  EXPECT_EQ(item["name"], names.begin()->second);
  EXPECT_EQ(item["signature_scheme"], "standard");
  EXPECT_TRUE(item["created_at"].is_string());
  EXPECT_FALSE(item.contains("signing_secret"));
  EXPECT_EQ(first["items"][1]["app_id"], std::next(names.begin())->first);
  ASSERT_TRUE(first["next_cursor"].is_string());

  const json second =
      call_json("GET", "/v1/apps?limit=2&cursor=" + first["next_cursor"].get<std::string>());
  ASSERT_EQ(second["items"].size(), 1u);
  EXPECT_EQ(second["items"][0]["app_id"], names.rbegin()->first);
  EXPECT_TRUE(second["next_cursor"].is_null());

  EXPECT_EQ(call_json("GET", "/v1/apps?limit=0", "", 400)["error"]["message"],
            "limit: must be a number from 1 to 1000");
  EXPECT_EQ(call_json("GET", "/v1/apps?sort=name", "", 400)["error"]["message"],
            "sort: unknown query parameter");
  EXPECT_EQ(call("DELETE", "/v1/apps").status, 405);
}

}  // namespace
}  // namespace callbackd
