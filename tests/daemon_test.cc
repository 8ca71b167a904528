// The callbackd binary, black-box: started on a free loopback port with a temp data dir and a
// millisecond retry schedule, driven over HTTP, delivering to a loopback receiver.
#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "api_client.h"
#include "callback_json.h"
#include "daemon_process.h"
#include "encoding.h"
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

std::string hmac_hex(const std::string& key, const std::string& body) {
  unsigned char mac[32];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &length);
  return hex_encode(std::span<const unsigned char>(mac, length));
}

// The pipeline's POST body for a completed task (one shape for every daemon test).
json completed_body(const std::string& app_id, const std::string& url, const std::string& task) {
  return testing::completed_callback(app_id, url, task);
}

class DaemonTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra_args = {}, std::vector<std::string> env = {}) {
    std::vector<std::string> args = {"serve",
                                     "--listen=127.0.0.1:0",
                                     "--data-dir=" + (dir_ / "data").string(),
                                     "--retry-schedule=20ms,20ms,20ms,20ms,20ms",
                                     "--attempt-timeout=2s",
                                     "--poll-interval=10ms",
                                     "--allow-networks=127.0.0.0/8",
                                     "--log-level=debug"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    daemon_ = std::make_unique<DaemonProcess>(CALLBACKD_BINARY, args, dir_ / "daemon.log", env);
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->log();
  }

  ApiReply call(const std::string& method, const std::string& path, const std::string& body = "",
                const std::string& token = "", const std::vector<std::string>& headers = {}) {
    Result<ApiReply> reply = call_api(method, daemon_->base_url(), path, token, body, headers);
    EXPECT_TRUE(reply.ok()) << reply.status().to_string();
    return reply.ok() ? *reply : ApiReply{};
  }

  json call_json(const std::string& method, const std::string& path, const std::string& body = "",
                 long expected_status = 200, const std::string& token = "") {
    ApiReply reply = call(method, path, body, token);
    EXPECT_EQ(reply.status, expected_status) << method << " " << path << ": " << reply.body;
    return json::parse(reply.body, nullptr, false);
  }

  json create_app(const std::string& token = "") {
    return call_json("POST", "/v1/apps", R"({"name":"acme"})", 201, token);
  }

  // Enqueues `count` completed tasks ("<prefix>0", ...) and returns their delivery ids, each
  // acknowledged with 202.
  std::set<std::string> enqueue_tasks(const std::string& app_id, const std::string& url,
                                      const std::string& prefix, int count) {
    std::set<std::string> ids;
    for (int i = 0; i < count; ++i) {
      const json accepted =
          call_json("POST", "/v1/callbacks",
                    completed_body(app_id, url, prefix + std::to_string(i)).dump(), 202);
      ids.insert(accepted["delivery_id"].get<std::string>());
    }
    return ids;
  }

  json wait_for_state(const std::string& id, const std::string& state) {
    json delivery;
    EXPECT_TRUE(wait_until(
        [&] {
          delivery = call_json("GET", "/v1/callbacks/" + id);
          return delivery.value("state", "") == state;
        },
        15s))
        << id << " never became " << state << ": " << delivery.dump();
    return delivery;
  }

  testing::TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(DaemonTest, CompletedAndFailedTasksAreDeliveredSignedWithTheCreatedSecret) {
  Receiver receiver;
  start();
  const json app = create_app();
  ASSERT_TRUE(app.contains("signing_secret"));
  EXPECT_EQ(app["signature_scheme"], "hex");
  const std::string secret = app["signing_secret"];

  const json accepted = call_json(
      "POST", "/v1/callbacks", completed_body(app["app_id"], receiver.url(), "task-1").dump(), 202);
  const std::string id = accepted["delivery_id"];
  EXPECT_EQ(accepted.size(), 2u) << accepted.dump();
  EXPECT_TRUE(accepted["state"] == "pending" || accepted["state"] == "in_flight")
      << accepted.dump();
  json failed = {{"app_id", app["app_id"]},
                 {"callback_url", receiver.url()},
                 {"task_id", "task-2"},
                 {"status", "failed"},
                 {"error", "lyrics rejected"}};
  const json accepted_failed = call_json("POST", "/v1/callbacks", failed.dump(), 202);

  ASSERT_TRUE(receiver.wait_for_count(2, 10s));
  for (const ReceivedRequest& r : receiver.requests()) {
    EXPECT_EQ(r.headers.at("x-signature"), hmac_hex(secret, r.body));
    const json body = json::parse(r.body);
    if (body["task_id"] == "task-1") {
      EXPECT_EQ(
          r.body,
          R"({"task_id":"task-1","status":"completed","results":[{"id":"clip_1",)"
          R"("audio_url":"https://cdn.example/1.mp3","image_url":"https://cdn.example/1.jpg",)"
          R"("title":"Night Drive","duration":182.5,"tags":"synthwave",)"
          R"("prompt":"[Verse] neon","expire_at":1767225600000}]})");
      EXPECT_EQ(r.headers.at("x-callback-id"), id);
    } else {
      EXPECT_EQ(r.body, R"({"task_id":"task-2","status":"failed","error":"lyrics rejected"})");
      EXPECT_EQ(r.headers.at("x-callback-id"), accepted_failed["delivery_id"]);
    }
  }

  const json delivery = wait_for_state(id, "delivered");
  EXPECT_EQ(delivery["app_id"], app["app_id"]);
  EXPECT_EQ(delivery["task_id"], "task-1");
  EXPECT_EQ(delivery["callback_url"], receiver.url());
  ASSERT_EQ(delivery["attempts"].size(), 1u);
  EXPECT_EQ(delivery["attempts"][0]["n"], 1);
  EXPECT_EQ(delivery["attempts"][0]["http_status"], 204);
  EXPECT_TRUE(delivery["attempts"][0]["error"].is_null());
  EXPECT_TRUE(delivery["attempts"][0]["duration_ms"].is_number_integer());
  EXPECT_TRUE(delivery["next_attempt_at"].is_null());

  // A repeated task is the same delivery: 200, not 202, and no second callback.
  const json again = call_json("POST", "/v1/callbacks",
                               completed_body(app["app_id"], receiver.url(), "task-1").dump(), 200);
  EXPECT_EQ(again["delivery_id"], id);
  EXPECT_EQ(again["state"], "delivered");
  // No second delivery exists to send: the store holds the two tasks, each delivered once.
  wait_for_state(accepted_failed["delivery_id"], "delivered");
  const json all = call_json("GET", "/v1/callbacks");
  ASSERT_EQ(all["items"].size(), 2u) << all.dump();
  for (const json& d : all["items"]) {
    EXPECT_EQ(d["state"], "delivered") << d.dump();
    EXPECT_EQ(d["attempts"].size(), 1u) << d.dump();
  }
  EXPECT_EQ(receiver.count(), 2u);
}

TEST_F(DaemonTest, RetriesToDeadThenRedeliver) {
  std::atomic<int> status{500};
  Receiver receiver([&](const ReceivedRequest&) { return Reply{.status = status.load()}; });
  start();
  const json app = create_app();
  const json accepted = call_json("POST", "/v1/callbacks",
                                  completed_body(app["app_id"], receiver.url(), "t").dump(), 202);
  const std::string id = accepted["delivery_id"];
  json dead = wait_for_state(id, "dead");
  ASSERT_EQ(dead["attempts"].size(), 6u);
  for (int n = 0; n < 6; ++n) {
    EXPECT_EQ(dead["attempts"][n]["n"], n + 1);
    EXPECT_EQ(dead["attempts"][n]["http_status"], 500);
    EXPECT_EQ(dead["attempts"][n]["error"], "status");
  }
  EXPECT_EQ(receiver.count(), 6u);

  status = 204;
  const json redelivered = call_json("POST", "/v1/callbacks/" + id + "/redeliver");
  EXPECT_EQ(redelivered["delivery_id"], id);
  const json delivered = wait_for_state(id, "delivered");
  EXPECT_EQ(delivered["attempts"].size(), 7u);
  EXPECT_EQ(receiver.requests().back().headers.at("x-callback-attempt"), "7")
      << "the header is attempts[].n: it counts on after a redelivery";

  // Redelivering something not finished is a conflict; an unknown id is 404.
  EXPECT_EQ(call("POST", "/v1/callbacks/dlv_unknown/redeliver").status, 404);
}

TEST_F(DaemonTest, ListFiltersByStateAndAppAndPagesWithACursor) {
  Receiver receiver;
  start();
  const json a = create_app();
  const json b = create_app();
  std::set<std::string> ids_a;
  for (int i = 0; i < 5; ++i) {
    ids_a.insert(
        call_json("POST", "/v1/callbacks",
                  completed_body(a["app_id"], receiver.url(), "a" + std::to_string(i)).dump(),
                  202)["delivery_id"]
            .get<std::string>());
  }
  call_json("POST", "/v1/callbacks", completed_body(b["app_id"], receiver.url(), "b0").dump(), 202);
  ASSERT_TRUE(receiver.wait_for_count(6, 10s));
  ASSERT_TRUE(wait_until(
      [&] {
        return call_json("GET", "/v1/callbacks?state=delivered&limit=100")["items"].size() == 6;
      },
      10s));

  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    const std::string app_id = a["app_id"];
    json page = call_json("GET", "/v1/callbacks?app_id=" + app_id + "&limit=2" +
                                     (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_LE(page["items"].size(), 2u);
    for (const auto& item : page["items"]) {
      EXPECT_EQ(item["app_id"], a["app_id"]);
      EXPECT_TRUE(seen.insert(item["delivery_id"]).second) << "an item came twice";
    }
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(seen, ids_a);
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(call_json("GET", "/v1/callbacks?state=dead")["items"].empty());
}

TEST_F(DaemonTest, BearerTokenGuardsEveryV1Route) {
  start({"--api-token=t0ken-xyz"});
  EXPECT_EQ(call("POST", "/v1/apps", R"({"name":"x"})").status, 401);
  EXPECT_EQ(call("POST", "/v1/apps", R"({"name":"x"})", "wrong").status, 401);
  EXPECT_EQ(call("GET", "/v1/callbacks").status, 401);
  EXPECT_EQ(call("GET", "/v1/callbacks/dlv_x").status, 401);
  const json app = create_app("t0ken-xyz");
  EXPECT_TRUE(app.contains("app_id"));
  EXPECT_EQ(call("GET", "/v1/callbacks", "", "t0ken-xyz").status, 200);
  // Health and metrics stay open for probes and scrapers.
  EXPECT_EQ(call("GET", "/healthz").status, 200);
  EXPECT_EQ(call("GET", "/readyz").status, 200);
  EXPECT_EQ(call("GET", "/metrics").status, 200);
  EXPECT_EQ(daemon_->log().find("t0ken-xyz"), std::string::npos) << "the token was logged";
}

TEST_F(DaemonTest, WithoutATokenItRefusesANonLoopbackAddress) {
  testing::CommandResult result = testing::run_command(
      CALLBACKD_BINARY, {"serve", "--listen=0.0.0.0:0", "--data-dir=" + (dir_ / "data").string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.output.find("listen: 0.0.0.0:0 is not a loopback address; set api_token"),
            std::string::npos)
      << result.output;
}

struct BadRequest {
  const char* name;
  std::string method;
  std::string path;
  std::string body;
  long status;
  const char* code;
  const char* message_part;  // the field or limit the message must name
};

TEST_F(DaemonTest, BadInputGetsAClearErrorAndStoresNothing) {
  start({"--max-body-bytes=4KiB"});
  const json app = create_app();
  const std::string id = app["app_id"];
  auto body = [&](auto edit) {
    json b = completed_body(id, "https://example.com/hook", "task-bad");
    edit(b);
    return b.dump();
  };
  const BadRequest cases[] = {
      {"malformed JSON", "POST", "/v1/callbacks", "{\"app_id\":", 400, "malformed_json", "JSON"},
      {"not an object", "POST", "/v1/callbacks", "[1,2]", 400, "malformed_json", "object"},
      {"missing app_id", "POST", "/v1/callbacks", body([](json& b) { b.erase("app_id"); }), 400,
       "invalid_field", "app_id: required"},
      {"app_id not a string", "POST", "/v1/callbacks", body([](json& b) { b["app_id"] = 7; }), 400,
       "invalid_field", "app_id: must be a string"},
      {"missing callback_url", "POST", "/v1/callbacks",
       body([](json& b) { b.erase("callback_url"); }), 400, "invalid_field",
       "callback_url: required"},
      {"missing task_id", "POST", "/v1/callbacks", body([](json& b) { b.erase("task_id"); }), 400,
       "invalid_field", "task_id: required"},
      {"bad status", "POST", "/v1/callbacks", body([](json& b) { b["status"] = "done"; }), 400,
       "invalid_field", "status: must be"},
      {"results with failed", "POST", "/v1/callbacks", body([](json& b) {
         b["status"] = "failed";
         b["error"] = "x";
       }),
       400, "invalid_field", "results: only allowed when status is \"completed\""},
      {"error with completed", "POST", "/v1/callbacks", body([](json& b) { b["error"] = "x"; }),
       400, "invalid_field", "error: only allowed when status is \"failed\""},
      {"failed without error", "POST", "/v1/callbacks", body([](json& b) {
         b["status"] = "failed";
         b.erase("results");
       }),
       400, "invalid_field", "error: required"},
      {"duration a string", "POST", "/v1/callbacks",
       body([](json& b) { b["results"][0]["duration"] = "3m"; }), 400, "invalid_field",
       "results[0].duration: must be a number"},
      {"expire_at a float", "POST", "/v1/callbacks",
       body([](json& b) { b["results"][0]["expire_at"] = 1.5; }), 400, "invalid_field",
       "results[0].expire_at: must be an integer"},
      {"missing track field", "POST", "/v1/callbacks",
       body([](json& b) { b["results"][0].erase("title"); }), 400, "invalid_field",
       "results[0].title: required"},
      {"unknown field", "POST", "/v1/callbacks", body([](json& b) { b["callbackUrl"] = "x"; }), 400,
       "invalid_field", "callbackUrl: unknown field"},
      {"unknown app", "POST", "/v1/callbacks", body([](json& b) { b["app_id"] = "app_nope"; }), 404,
       "app_not_found", "app_id"},
      {"ftp scheme", "POST", "/v1/callbacks",
       body([](json& b) { b["callback_url"] = "ftp://example.com/x"; }), 400, "invalid_field",
       "callback_url: scheme must be http or https"},
      {"CR/LF in URL", "POST", "/v1/callbacks",
       body([](json& b) { b["callback_url"] = "https://example.com/x\r\nX-Evil: 1"; }), 400,
       "invalid_field", "callback_url: must not contain spaces or control characters"},
      {"credentials in URL", "POST", "/v1/callbacks",
       body([](json& b) { b["callback_url"] = "https://u:p@example.com/x"; }), 400, "invalid_field",
       "callback_url: must not contain credentials"},
      {"metadata address", "POST", "/v1/callbacks",
       body([](json& b) { b["callback_url"] = "http://169.254.169.254/latest/meta-data/"; }), 422,
       "blocked_url", "callback_url: 169.254.169.254 is a link-local address"},
      {"private address in hex", "POST", "/v1/callbacks",
       body([](json& b) { b["callback_url"] = "http://0xa000001/"; }), 422, "blocked_url",
       "10.0.0.1 is a private address"},
      {"synchronous endpoint", "POST", "/v1/callbacks",
       body([](json& b) { b["endpoint"] = "stem"; }), 422, "unsupported_endpoint",
       "endpoint: \"stem\" is synchronous"},
      {"unknown endpoint", "POST", "/v1/callbacks", body([](json& b) { b["endpoint"] = "sing"; }),
       400, "invalid_field", "endpoint: must be one of"},
      {"oversize body", "POST", "/v1/callbacks",
       body([](json& b) { b["results"][0]["prompt"] = std::string(5000, 'x'); }), 413,
       "payload_too_large", "max_body_bytes"},
      {"unknown route", "GET", "/v2/things", "", 404, "not_found", "/v2/things"},
      {"wrong method", "DELETE", "/v1/callbacks", "", 405, "method_not_allowed", "DELETE"},
      {"bad list state", "GET", "/v1/callbacks?state=lost", "", 400, "invalid_field", "state:"},
      {"bad list limit", "GET", "/v1/callbacks?limit=0", "", 400, "invalid_field", "limit:"},
      {"bad cursor", "GET", "/v1/callbacks?cursor=%%%", "", 400, "invalid_field", "cursor"},
      {"app without name", "POST", "/v1/apps", "{}", 400, "invalid_field", "name: required"},
      {"app bad scheme", "POST", "/v1/apps", R"({"name":"a","signature_scheme":"md5"})", 400,
       "invalid_field", "signature_scheme"},
      {"rotate unknown app", "POST", "/v1/apps/app_nope/rotate-secret", "", 404, "app_not_found",
       "app_nope"},
      {"unknown delivery", "GET", "/v1/callbacks/dlv_nope", "", 404, "delivery_not_found",
       "dlv_nope"},
  };
  for (const BadRequest& c : cases) {
    ApiReply reply = call(c.method, c.path, c.body);
    EXPECT_EQ(reply.status, c.status) << c.name << ": " << reply.body;
    const json error = json::parse(reply.body, nullptr, false);
    ASSERT_FALSE(error.is_discarded()) << c.name << ": " << reply.body;
    EXPECT_EQ(error["error"]["code"], c.code) << c.name;
    EXPECT_NE(error["error"]["message"].get<std::string>().find(c.message_part), std::string::npos)
        << c.name << ": " << error.dump();
  }
  // Oversize headers: 431 naming the limit.
  ApiReply big_headers =
      call("GET", "/v1/callbacks", "", "", {"X-Big: " + std::string(20000, 'h')});
  EXPECT_EQ(big_headers.status, 431);

  EXPECT_TRUE(call_json("GET", "/v1/callbacks")["items"].empty()) << "something was stored";
  // The daemon is still healthy after all of it.
  EXPECT_EQ(call("GET", "/healthz").status, 200);
}

// SIGTERM while callbacks are in flight: the daemon finishes them, exits 0, and a restart on
// the same data dir delivers whatever was left; every accepted callback arrives.
TEST_F(DaemonTest, SigtermDuringDeliveryLosesNothing) {
  Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 204, .delay = 200ms}; });
  start({"--max-in-flight-per-host=4"});
  const json app = create_app();
  const std::set<std::string> accepted = enqueue_tasks(app["app_id"], receiver.url(), "s", 30);
  ASSERT_TRUE(receiver.wait_for_count(4, 5s));
  daemon_->signal(SIGTERM);
  EXPECT_EQ(daemon_->wait_exit(), 0) << daemon_->log();
  EXPECT_NE(daemon_->log().find("event=shutdown_complete"), std::string::npos);
  const std::size_t before_restart = receiver.count();
  EXPECT_LT(before_restart, accepted.size()) << "shutdown should not have waited for everything";

  start({"--max-in-flight-per-host=4"});
  auto delivered = [&] {
    std::set<std::string> ids;
    for (const auto& r : receiver.requests()) ids.insert(r.headers.at("x-callback-id"));
    return ids;
  };
  EXPECT_TRUE(wait_until([&] { return delivered() == accepted; }, 20s))
      << delivered().size() << " of " << accepted.size() << " arrived";
}

// A second SIGTERM while attempts are still in flight exits at once; what was acknowledged is
// on disk, and a restart delivers it once the dead process's leases run out.
TEST_F(DaemonTest, SecondSignalExitsAtOnceLosingNothingAcknowledged) {
  Receiver receiver([](const ReceivedRequest&) { return Reply{.hang = true}; });
  start({"--attempt-timeout=2s"});
  const json app = create_app();
  const std::set<std::string> accepted = enqueue_tasks(app["app_id"], receiver.url(), "x", 3);
  ASSERT_TRUE(receiver.wait_for_count(3, 5s));
  daemon_->signal(SIGTERM);
  // The first signal has been handled once it is logged; attempts still hang for ~2 s.
  ASSERT_TRUE(wait_until(
      [&] { return daemon_->log().find("event=shutdown_started") != std::string::npos; }, 5s));
  ASSERT_TRUE(daemon_->running()) << "the first signal should wait for attempts in flight";
  daemon_->signal(SIGTERM);
  EXPECT_EQ(daemon_->wait_exit(1500ms), 1) << daemon_->log();
  EXPECT_NE(daemon_->log().find("event=shutdown_forced"), std::string::npos);

  receiver.set_responder([](const ReceivedRequest&) { return Reply{.status = 204}; });
  start({"--attempt-timeout=2s"});
  for (const std::string& id : accepted) wait_for_state(id, "delivered");
  std::set<std::string> arrived;
  for (const auto& r : receiver.requests()) arrived.insert(r.headers.at("x-callback-id"));
  EXPECT_EQ(arrived, accepted);
}

TEST_F(DaemonTest, NoSecretReachesTheLog) {
  Receiver receiver;
  start();
  const json app = create_app();
  const std::string app_id = app["app_id"];
  const json rotated = call_json("POST", "/v1/apps/" + app_id + "/rotate-secret");
  call_json("POST", "/v1/callbacks", completed_body(app_id, receiver.url(), "t").dump(), 202);
  ASSERT_TRUE(receiver.wait_for_count(1, 10s));
  EXPECT_EQ(receiver.requests()[0].headers.at("x-signature"),
            hmac_hex(rotated["signing_secret"], receiver.requests()[0].body));
  daemon_->signal(SIGTERM);
  daemon_->wait_exit();
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("event=app_created"), std::string::npos) << log;
  EXPECT_EQ(log.find(app["signing_secret"].get<std::string>()), std::string::npos);
  EXPECT_EQ(log.find(rotated["signing_secret"].get<std::string>()), std::string::npos);
  EXPECT_EQ(log.find("Night Drive"), std::string::npos) << "a callback body was logged";
}

TEST_F(DaemonTest, MetricsCountAttemptsAndStates) {
  Receiver receiver;
  start();
  const json app = create_app();
  const json accepted = call_json("POST", "/v1/callbacks",
                                  completed_body(app["app_id"], receiver.url(), "m").dump(), 202);
  wait_for_state(accepted["delivery_id"], "delivered");
  ApiReply metrics = call("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  for (const char* line : {
           "callbackd_attempts_total{outcome=\"success\"} 1\n",
           "callbackd_attempts_total{outcome=\"timeout\"} 0\n",
           "callbackd_deliveries_finished_total{state=\"delivered\"} 1\n",
           "callbackd_deliveries{state=\"delivered\"} 1\n",
           "callbackd_deliveries{state=\"pending\"} 0\n",
           "callbackd_attempts_in_flight 0\n",
           "callbackd_enqueued_total{result=\"created\"} 1\n",
           "callbackd_attempt_duration_seconds_count 1\n",
           "callbackd_enqueue_duration_seconds_count 1\n",
           "callbackd_enqueue_duration_seconds_bucket{le=\"+Inf\"} 1\n",
       }) {
    EXPECT_NE(metrics.body.find(line), std::string::npos) << line << "\n" << metrics.body;
  }
}

TEST_F(DaemonTest, CliDrivesTheDaemon) {
  Receiver receiver;
  start({"--api-token=cli-token"});
  const std::string listen = "--listen=127.0.0.1:" + daemon_->base_url().substr(17);
  const std::vector<std::string> env = {"CALLBACKD_API_TOKEN=cli-token"};

  auto created =
      testing::run_command(CALLBACKD_BINARY, {"apps", "create", "--name", "cli", listen}, "", env);
  ASSERT_EQ(created.exit_code, 0) << created.output;
  const json app = json::parse(created.output);
  const std::string secret = app["signing_secret"];

  auto sent =
      testing::run_command(CALLBACKD_BINARY, {"send", listen},
                           completed_body(app["app_id"], receiver.url(), "cli-1").dump(), env);
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  const std::string id = json::parse(sent.output)["delivery_id"];
  ASSERT_TRUE(receiver.wait_for_count(1, 10s));

  const std::string body = receiver.requests()[0].body;
  const std::string signature = receiver.requests()[0].headers.at("x-signature");
  EXPECT_EQ(testing::run_command(CALLBACKD_BINARY,
                                 {"verify", "--secret", secret, "--signature", signature}, body)
                .exit_code,
            0);
  EXPECT_EQ(testing::run_command(CALLBACKD_BINARY,
                                 {"verify", "--secret", "wrong", "--signature", signature}, body)
                .exit_code,
            1);

  ASSERT_TRUE(wait_until(
      [&] {
        auto shown =
            testing::run_command(CALLBACKD_BINARY, {"deliveries", "show", id, listen}, "", env);
        return shown.exit_code == 0 && json::parse(shown.output)["state"] == "delivered";
      },
      10s));
  auto listed = testing::run_command(
      CALLBACKD_BINARY, {"deliveries", "list", "--state", "delivered", listen}, "", env);
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_EQ(json::parse(listed.output)["items"][0]["delivery_id"], id);
  auto redelivered =
      testing::run_command(CALLBACKD_BINARY, {"deliveries", "redeliver", id, listen}, "", env);
  EXPECT_EQ(redelivered.exit_code, 0) << redelivered.output;
  EXPECT_TRUE(receiver.wait_for_count(2, 10s));

  // Without the token the daemon refuses, and the CLI says so and fails.
  auto refused = testing::run_command(CALLBACKD_BINARY, {"deliveries", "show", id, listen});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("HTTP 401 unauthorized"), std::string::npos) << refused.output;
}

TEST_F(DaemonTest, StandardSchemeAppsAndPerAppQuota) {
  Receiver receiver([](const ReceivedRequest&) { return Reply{.hang = true}; });
  start({"--max-pending-per-app=2", "--attempt-timeout=5s"});
  const json app =
      call_json("POST", "/v1/apps", R"({"name":"std","signature_scheme":"standard"})", 201);
  EXPECT_EQ(app["signature_scheme"], "standard");
  EXPECT_EQ(app["signing_secret"].get<std::string>().rfind("whsec_", 0), 0u);
  const std::string id = app["app_id"];
  call_json("POST", "/v1/callbacks", completed_body(id, receiver.url(), "q1").dump(), 202);
  call_json("POST", "/v1/callbacks", completed_body(id, receiver.url(), "q2").dump(), 202);
  ApiReply over = call("POST", "/v1/callbacks", completed_body(id, receiver.url(), "q3").dump());
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_EQ(json::parse(over.body)["error"]["code"], "quota_exceeded");
  ASSERT_TRUE(receiver.wait_for_count(1, 10s));
  EXPECT_TRUE(receiver.requests()[0].headers.contains("webhook-signature"));
}

TEST_F(DaemonTest, AWrongMasterKeyStopsStartUp) {
  start();
  create_app();
  daemon_->signal(SIGTERM);
  ASSERT_EQ(daemon_->wait_exit(), 0);
  ASSERT_TRUE(std::filesystem::exists(dir_ / "data" / "callbackd.db.key"));
  auto result = testing::run_command(
      CALLBACKD_BINARY, {"serve", "--listen=127.0.0.1:0", "--data-dir=" + (dir_ / "data").string()},
      "", {"CALLBACKD_MASTER_KEY=" + std::string(64, 'a')});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("not the key the store"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find(std::string(64, 'a')), std::string::npos) << "the key was logged";
}

TEST(DaemonCommandLine, HelpListsEveryKeyAndBadConfigStopsStartUp) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, std::vector<std::string>{"serve", "--help"}}) {
    auto help = testing::run_command(CALLBACKD_BINARY, args);
    EXPECT_EQ(help.exit_code, 0);
    for (const char* key :
         {"--listen", "--data-dir", "--api-token", "--retry-schedule", "--attempt-timeout",
          "--max-in-flight ", "--max-in-flight-per-host", "--allow-networks", "--max-body-bytes",
          "--retention", "--log-level", "--ca-bundle", "--master-key-file", "--secret-overlap",
          "--max-pending-per-app", "--max-connections"}) {
      EXPECT_NE(help.output.find(key), std::string::npos) << key;
    }
    EXPECT_NE(help.output.find("(default: 30s,60s,120s,300s,600s)"), std::string::npos);
  }
  auto unknown = testing::run_command(CALLBACKD_BINARY, {"serve", "--max-inflight=3"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.output.find("--max-inflight: unknown flag"), std::string::npos)
      << unknown.output;
  auto bad_value = testing::run_command(CALLBACKD_BINARY, {"serve", "--attempt-timeout=10"});
  EXPECT_EQ(bad_value.exit_code, 2);
  EXPECT_NE(bad_value.output.find("--attempt-timeout: \"10\" is not a positive duration"),
            std::string::npos)
      << bad_value.output;
  auto bad_env =
      testing::run_command(CALLBACKD_BINARY, {"serve"}, "", {"CALLBACKD_MAX_IN_FLIGHT=lots"});
  EXPECT_EQ(bad_env.exit_code, 2);
  EXPECT_NE(bad_env.output.find("CALLBACKD_MAX_IN_FLIGHT: \"lots\""), std::string::npos);
}

}  // namespace
}  // namespace callbackd
