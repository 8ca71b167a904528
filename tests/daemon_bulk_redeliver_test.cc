// Bulk recovery through the real daemon: deliveries made dead by a failing receiver on a
// millisecond retry schedule, queued again with POST /v1/callbacks/redeliver and with the
// CLI, and seen delivered.
#include <gtest/gtest.h>

#include <atomic>
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
using testing::ReceivedRequest;
using testing::Receiver;
using testing::Reply;
using testing::wait_until;

class DaemonBulkRedeliverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Deliveries must die on the schedule: two dozen quick failures to one receiver would open
    // its circuit breaker and hold them pending instead (daemon_breaker_test covers that).
    daemon_ = std::make_unique<testing::DaemonProcess>(
        CALLBACKD_BINARY,
        std::vector<std::string>{
            "serve", "--listen=127.0.0.1:0", "--data-dir=" + (dir_ / "data").string(),
            "--retry-schedule=5ms,5ms,5ms,5ms,5ms", "--poll-interval=10ms",
            "--allow-networks=127.0.0.0/8", "--api-token=" + kToken, "--breaker-enabled=false"},
        dir_ / "daemon.log");
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->log();
  }

  ApiReply call(const std::string& method, const std::string& path, const std::string& body = "") {
    Result<ApiReply> reply = call_api(method, daemon_->base_url(), path, kToken, body);
    EXPECT_TRUE(reply.ok()) << reply.status().to_string();
    return reply.ok() ? *reply : ApiReply{};
  }
  json call_json(const std::string& method, const std::string& path, const std::string& body,
                 long expected_status) {
    ApiReply reply = call(method, path, body);
    EXPECT_EQ(reply.status, expected_status)
        << method << " " << path << " " << body << ": " << reply.body;
    return json::parse(reply.body, nullptr, false);
  }
  std::string enqueue(const std::string& app_id, const std::string& task) {
    return call_json("POST", "/v1/callbacks",
                     testing::completed_callback(app_id, receiver_.url(), task).dump(),
                     202)["delivery_id"];
  }
  std::size_t count(const std::string& query) {
    return call_json("GET", "/v1/callbacks?" + query, "", 200)["items"].size();
  }
  bool wait_count(const std::string& query, std::size_t n) {
    return wait_until([&] { return count(query) == n; }, 15s);
  }
  testing::CommandResult cli(std::vector<std::string> args) {
    args.push_back("--listen=127.0.0.1:" + daemon_->base_url().substr(17));
    return testing::run_command(CALLBACKD_BINARY, args, "", {"CALLBACKD_API_TOKEN=" + kToken});
  }

  const std::string kToken = "bulk-token";
  std::atomic<int> status_{500};
  Receiver receiver_{[this](const ReceivedRequest&) { return Reply{.status = status_.load()}; }};
  testing::TempDir dir_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
};

TEST_F(DaemonBulkRedeliverTest, DeadDeliveriesAreQueuedInBatchesByApiAndCliAndDelivered) {
  const std::string a = call_json("POST", "/v1/apps", R"({"name":"a"})", 201)["app_id"];
  const std::string b = call_json("POST", "/v1/apps", R"({"name":"b"})", 201)["app_id"];
  for (const char* task : {"a0", "a1", "a2"}) enqueue(a, task);
  const std::string b_id = enqueue(b, "b0");
  ASSERT_TRUE(wait_count("state=dead", 4)) << daemon_->log();
  EXPECT_EQ(count("task_id=a1"), 1u);
  EXPECT_EQ(count("task_id=a1&app_id=" + b), 0u);

  // Bad filters name the field; nothing is queued.
  const auto refused = [&](const std::string& body, long status, const std::string& code,
                           const std::string& field) {
    const json error = call_json("POST", "/v1/callbacks/redeliver", body, status)["error"];
    EXPECT_EQ(error["code"], code) << body;
    EXPECT_EQ(error["message"].get<std::string>().rfind(field, 0), 0u) << error;
  };
  refused(R"({"state":"pending"})", 400, "invalid_field", "state:");
  refused(R"({"since":"yesterday"})", 400, "invalid_field", "since:");
  refused(R"({"until":"2026-01-01T00:00:00Z","since":"2026-02-01T00:00:00Z"})", 400,
          "invalid_field", "until:");
  refused(R"({"limit":1001})", 400, "invalid_field", "limit:");
  refused(R"({"cursor":"nonsense"})", 400, "invalid_field", "cursor:");
  refused(R"({"colour":"red"})", 400, "invalid_field", "colour:");
  refused(R"({"app_id":"app_nope"})", 404, "app_not_found", "app");
  EXPECT_EQ(call("GET", "/v1/callbacks/redeliver").status, 405);
  EXPECT_EQ(count("state=dead"), 4u);

  // Bounded and resumable: two calls of at most 2 go through app a's three.
  status_ = 204;
  const json first =
      call_json("POST", "/v1/callbacks/redeliver", json{{"app_id", a}, {"limit", 2}}.dump(), 200);
  EXPECT_EQ(first["queued"], 2);
  ASSERT_TRUE(first["next_cursor"].is_string()) << first;
  const json second =
      call_json("POST", "/v1/callbacks/redeliver",
                json{{"app_id", a}, {"limit", 2}, {"cursor", first["next_cursor"]}}.dump(), 200);
  EXPECT_EQ(second["queued"], 1);
  EXPECT_TRUE(second["next_cursor"].is_null()) << second;
  ASSERT_TRUE(wait_count("state=delivered&app_id=" + a, 3)) << daemon_->log();
  // Kept whole: a range-for over a temporary's member would read freed memory.
  const json listed = call_json("GET", "/v1/callbacks?app_id=" + a, "", 200);
  for (const json& d : listed["items"]) {
    ASSERT_EQ(d["attempts"].size(), 7u) << d;
    EXPECT_EQ(d["attempts"][6]["n"], 7) << "attempts are numbered on";
  }
  EXPECT_EQ(count("state=dead&app_id=" + b), 1u) << "another app's are left alone";

  // The CLI loops over the cursor and prints the total.
  const auto cli_run = cli(
      {"deliveries", "redeliver", "--state", "dead", "--since", "2h", "--app", b, "--limit", "5"});
  ASSERT_EQ(cli_run.exit_code, 0) << cli_run.output;
  EXPECT_NE(cli_run.output.find("queued 1 deliveries"), std::string::npos) << cli_run.output;
  ASSERT_TRUE(wait_count("state=delivered", 4)) << daemon_->log();
  const auto nothing_left = cli({"deliveries", "redeliver", "--since", "2h", "--until", "0ms"});
  EXPECT_EQ(nothing_left.exit_code, 0) << nothing_left.output;
  EXPECT_NE(nothing_left.output.find("queued 0 deliveries"), std::string::npos)
      << nothing_left.output;
  const auto bad = cli({"deliveries", "redeliver", "--since", "soon"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--since"), std::string::npos) << bad.output;
  const auto wrong_state = cli({"deliveries", "redeliver", "--state", "pending"});
  EXPECT_EQ(wrong_state.exit_code, 1) << wrong_state.output;
  EXPECT_NE(wrong_state.output.find("HTTP 400 invalid_field: state:"), std::string::npos)
      << wrong_state.output;
}

}  // namespace
}  // namespace callbackd
