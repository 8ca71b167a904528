// The callbackd binary, black-box, at the edges of its input: hostile JSON, bodies that should
// never be read, too many connections, too few file descriptors, odd methods.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "api_client.h"
#include "daemon_process.h"
#include "raw_connection.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::DaemonProcess;
using testing::RawConnection;
using testing::wait_until;

#ifdef __SANITIZE_ADDRESS__  // the asan preset builds with ASan and UBSan
constexpr bool kUnderSanitizers = true;
#else
constexpr bool kUnderSanitizers = false;
#endif

// A /proc/<pid>/status field in KiB ("VmHWM", "VmRSS").
long proc_status_kib(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

class DaemonLimitsTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra_args = {}) {
    std::vector<std::string> args = {"serve", "--listen=127.0.0.1:0",
                                     "--data-dir=" + (dir_ / "data").string(),
                                     "--allow-networks=127.0.0.0/8"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    daemon_ = std::make_unique<DaemonProcess>(CALLBACKD_BINARY, args, dir_ / "daemon.log");
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->log();
  }

  std::uint16_t port() const {
    return static_cast<std::uint16_t>(
        std::stoi(daemon_->base_url().substr(daemon_->base_url().rfind(':') + 1)));
  }

  ApiReply call(const std::string& method, const std::string& path, const std::string& body = "",
                const std::string& token = "") {
    Result<ApiReply> reply = call_api(method, daemon_->base_url(), path, token, body);
    EXPECT_TRUE(reply.ok()) << reply.status().to_string();
    return reply.ok() ? *reply : ApiReply{};
  }

  // The error's code and message, or ("", body) when it is not one.
  static std::pair<std::string, std::string> error_of(const ApiReply& reply) {
    const json body = json::parse(reply.body, nullptr, false);
    if (body.is_discarded() || !body.contains("error")) return {"", reply.body};
    return {body["error"].value("code", ""), body["error"].value("message", "")};
  }

  testing::TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(DaemonLimitsTest, DeeplyNestedOrHugeJsonGetsA400NamingTheLimit) {
  start();
  const std::string nested((1 << 20) - 1, '[');  // just under the default max_body_bytes
  std::string wide = "[";
  while (wide.size() < (1 << 20) - 4) wide += "1,";
  wide += "1]";
  for (const char* path : {"/v1/callbacks", "/v1/apps"}) {
    const ApiReply deep = call("POST", path, nested);
    EXPECT_EQ(deep.status, 400) << path;
    EXPECT_EQ(error_of(deep), std::make_pair(std::string("malformed_json"),
                                             std::string("body: JSON nested deeper than 32 "
                                                         "levels")))
        << path;
    const ApiReply many = call("POST", path, wide);
    EXPECT_EQ(many.status, 400) << path;
    EXPECT_EQ(error_of(many).second, "body: more than 10000 JSON values") << path;
  }

  // Eight at a time, as many as there are handler threads: memory stays bounded.
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      for (int n = 0; n < 4; ++n) {
        EXPECT_EQ(call("POST", "/v1/callbacks", (n + i) % 2 ? nested : wide).status, 400);
      }
    });
  }
  for (std::thread& client : clients) client.join();
  // ASan keeps freed memory in quarantine: the bound is only meaningful without it.
  if (!kUnderSanitizers) {
    const long peak_kib = proc_status_kib(daemon_->pid(), "VmHWM");
    EXPECT_LT(peak_kib, 128 * 1024) << "peak RSS " << peak_kib / 1024 << " MiB";
  }
  EXPECT_EQ(call("GET", "/healthz").status, 200);
}

// Bytes up to the end of the response head, or "" when none arrives in time.
std::string head_of(RawConnection& connection) {
  return connection.read_until("\r\n\r\n", 10s).value_or("");
}

TEST_F(DaemonLimitsTest, AWrongTokenIsRefusedOnTheHeadWithoutReadingTheBody) {
  start({"--api-token=t0ken-xyz"});
  // It asks before sending its body: a 401 comes back, never "100 Continue".
  RawConnection asking(port());
  asking.send(
      "POST /v1/callbacks HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer wrong\r\n"
      "Content-Type: application/json\r\nContent-Length: 500000\r\n"
      "Expect: 100-continue\r\n\r\n");
  const std::string refused = head_of(asking);
  EXPECT_EQ(refused.rfind("HTTP/1.1 401 ", 0), 0u) << refused;
  // It announces a body that never comes: the answer does not wait for it.
  RawConnection announcing(port());
  announcing.send("POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\n");
  const std::string also_refused = head_of(announcing);
  EXPECT_EQ(also_refused.rfind("HTTP/1.1 401 ", 0), 0u) << also_refused;
  EXPECT_NE(also_refused.find("WWW-Authenticate: Bearer"), std::string::npos) << also_refused;
  // The right token: "100 Continue", then the body is read and handled.
  RawConnection allowed(port());
  allowed.send(
      "POST /v1/apps HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer t0ken-xyz\r\n"
      "Content-Type: application/json\r\nContent-Length: 15\r\nExpect: 100-continue\r\n\r\n");
  const std::string go_on = head_of(allowed);
  EXPECT_EQ(go_on.rfind("HTTP/1.1 100 ", 0), 0u) << go_on;
  allowed.send(R"({"name":"acme"})");
  const std::string created = head_of(allowed);
  EXPECT_EQ(created.rfind("HTTP/1.1 201 ", 0), 0u) << created;
  EXPECT_EQ(daemon_->log().find("t0ken-xyz"), std::string::npos) << "the token was logged";
}

TEST_F(DaemonLimitsTest, ConnectionsPastMaxConnectionsGetA503AndOthersAreStillServed) {
  start({"--max-connections=4"});
  const std::string healthz = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  std::vector<RawConnection> held;
  for (int i = 0; i < 4; ++i) {
    RawConnection connection(port());
    connection.send(healthz);
    ASSERT_TRUE(connection.read_until(R"({"status":"ok"})", 10s)) << "connection " << i;
    held.push_back(std::move(connection));  // open and idle, kept alive
  }
  RawConnection extra(port());
  extra.send(healthz);
  const std::optional<std::string> refused = extra.read_until_closed(10s);
  ASSERT_TRUE(refused) << "the fifth connection was not closed";
  EXPECT_EQ(refused->rfind("HTTP/1.1 503 ", 0), 0u) << *refused;
  EXPECT_NE(refused->find(R"("code":"too_many_connections")"), std::string::npos) << *refused;
  EXPECT_NE(refused->find("max_connections (4)"), std::string::npos) << *refused;

  held.pop_back();  // one slot free again
  EXPECT_TRUE(wait_until([&] { return call("GET", "/healthz").status == 200; }, 10s));
  EXPECT_NE(
      daemon_->log().find("event=connection_refused reason=too_many_connections max_connections=4"),
      std::string::npos)
      << daemon_->log();
}

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t count = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

// utime + stime of a process, in clock ticks.
long cpu_ticks(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

TEST_F(DaemonLimitsTest, OutOfDescriptorsAcceptBacksOffLogsLittleAndRecovers) {
  if (kUnderSanitizers) {
    // UBSan's vptr check probes memory through a pipe(); with no descriptor left it reports a
    // false "invalid vptr" and aborts the daemon.
    GTEST_SKIP() << "needs a build without sanitizers";
  }
  start();
  // Leave the daemon a few descriptors beyond what it holds now.
  std::size_t open_now = 0;
  for ([[maybe_unused]] const auto& fd :
       std::filesystem::directory_iterator("/proc/" + std::to_string(daemon_->pid()) + "/fd")) {
    ++open_now;
  }
  const rlimit limit{open_now + 4, open_now + 4};
  ASSERT_EQ(prlimit(daemon_->pid(), RLIMIT_NOFILE, &limit, nullptr), 0) << strerror(errno);
  std::vector<RawConnection> held;
  for (int i = 0; i < 32; ++i) held.emplace_back(port());  // the kernel queues what is not accepted

  const std::string failed = "event=accept_failed";
  ASSERT_TRUE(wait_until([&] { return count_of(daemon_->log(), failed) >= 1; }, 10s))
      << daemon_->log();
  const long ticks_at_first = cpu_ticks(daemon_->pid());
  const auto first = std::chrono::steady_clock::now();
  // The line is logged once a second at most: the third comes two seconds or more later.
  ASSERT_TRUE(wait_until([&] { return count_of(daemon_->log(), failed) >= 3; }, 15s));
  const double window_ticks =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - first).count() *
      static_cast<double>(sysconf(_SC_CLK_TCK));
  const std::string log = daemon_->log();
  EXPECT_LE(count_of(log, failed), 4u) << log.substr(0, 2000);
  EXPECT_LT(log.size(), 64u << 10);
  EXPECT_NE(log.find("suppressed="), std::string::npos);
  // Waiting, not spinning: far less than a core (a generous bound, not a speed test).
  EXPECT_LT(static_cast<double>(cpu_ticks(daemon_->pid()) - ticks_at_first), window_ticks / 2);

  held.clear();
  EXPECT_TRUE(wait_until([&] { return call("GET", "/healthz").status == 200; }, 10s));
}

TEST_F(DaemonLimitsTest, DuplicateKeysAndLongTaskIdsAreRefusedNamingTheField) {
  start();
  const json app = json::parse(call("POST", "/v1/apps", R"({"name":"acme"})").body);
  const std::string id = app["app_id"];
  const std::string tail =
      R"(,"callback_url":"http://127.0.0.1:9/h","status":"failed","error":"x")";
  const ApiReply twice =
      call("POST", "/v1/callbacks",
           R"({"app_id":"app_other","app_id":")" + id + R"(","task_id":"t1")" + tail + "}");
  EXPECT_EQ(twice.status, 400);
  EXPECT_EQ(error_of(twice),
            std::make_pair(std::string("invalid_field"), std::string("app_id: duplicate key")));
  const ApiReply app_twice = call("POST", "/v1/apps", R"({"name":"a","name":"b"})");
  EXPECT_EQ(app_twice.status, 400);
  EXPECT_EQ(error_of(app_twice).second, "name: duplicate key");

  auto enqueue = [&](const std::string& task_id) {
    return call("POST", "/v1/callbacks",
                R"({"app_id":")" + id + R"(","task_id":")" + task_id + "\"" + tail + "}");
  };
  const ApiReply too_long = enqueue(std::string(257, 't'));
  EXPECT_EQ(too_long.status, 400);
  EXPECT_EQ(error_of(too_long).second, "task_id: longer than 256 bytes");
  EXPECT_EQ(enqueue(std::string(256, 't')).status, 202);
  // Only the valid one was stored.
  EXPECT_EQ(json::parse(call("GET", "/v1/callbacks").body)["items"].size(), 1u);
}

TEST_F(DaemonLimitsTest, HeadOnHealthAndReadinessAnswersLikeGetWithoutABody) {
  start();
  for (const char* path : {"/healthz", "/readyz"}) {
    const std::string get = call("GET", path).body;
    RawConnection connection(port());
    connection.send(std::string("HEAD ") + path +
                    " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    const std::optional<std::string> reply = connection.read_until_closed(10s);
    ASSERT_TRUE(reply) << path;
    EXPECT_EQ(reply->rfind("HTTP/1.1 200 ", 0), 0u) << *reply;
    EXPECT_NE(reply->find("Content-Length: " + std::to_string(get.size()) + "\r\n"),
              std::string::npos)
        << *reply;
    EXPECT_EQ(reply->substr(reply->find("\r\n\r\n") + 4), "") << "HEAD got a body";
  }
}

TEST_F(DaemonLimitsTest, DurationsPastTheirBoundStopStartUpNamingTheKey) {
  const std::pair<std::string, std::string> cases[] = {
      {"--attempt-timeout=2h", "--attempt-timeout: \"2h\" is not a positive duration up to 1h"},
      {"--retry-schedule=30s,999999d", "--retry-schedule: \"999999d\" is not a positive duration"},
      {"--retention=3651d", "--retention: \"3651d\" is not a positive duration up to 3650d"},
  };
  for (const auto& [flag, message] : cases) {
    const testing::CommandResult result = testing::run_command(
        CALLBACKD_BINARY, {"serve", "--data-dir=" + (dir_ / "data").string(), flag});
    EXPECT_EQ(result.exit_code, 2) << flag;
    EXPECT_NE(result.output.find(message), std::string::npos) << result.output;
  }
}

}  // namespace
}  // namespace callbackd
