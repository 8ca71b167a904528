// The daemon's store under real trouble: a disk that cannot take more (a file size limit set
// on the running process with prlimit), and a damaged database file at start.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "api_client.h"
#include "daemon_process.h"
#include "receiver.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::DaemonProcess;
using testing::Receiver;
using testing::wait_until;

json failed_body(const std::string& app_id, const std::string& url, const std::string& task,
                 std::size_t error_bytes = 16) {
  return {{"app_id", app_id},
          {"callback_url", url},
          {"task_id", task},
          {"status", "failed"},
          {"error", std::string(error_bytes, 'e')}};
}

class DaemonStorageTest : public ::testing::Test {
 protected:
  void start(const std::string& log_name = "daemon.log") {
    daemon_ = std::make_unique<DaemonProcess>(
        CALLBACKD_BINARY,
        std::vector<std::string>{"serve", "--listen=127.0.0.1:0", "--data-dir=" + data().string(),
                                 "--poll-interval=10ms", "--allow-networks=127.0.0.0/8",
                                 "--log-level=info"},
        dir_ / log_name);
  }
  std::filesystem::path data() const { return dir_ / "data"; }
  std::filesystem::path database() const { return data() / "callbackd.db"; }

  ApiReply call(const std::string& method, const std::string& path, const std::string& body = "") {
    Result<ApiReply> reply = call_api(method, daemon_->base_url(), path, "", body);
    EXPECT_TRUE(reply.ok()) << reply.status().to_string();
    return reply.ok() ? *reply : ApiReply{};
  }

  // A file size limit at the WAL's size now: the WAL cannot grow, and every commit appends to
  // it (nothing has been checkpointed yet that would let it start over).
  rlim_t wal_size() const {
    const auto size = std::filesystem::file_size(database().string() + "-wal");
    EXPECT_GT(size, 0u);
    return static_cast<rlim_t>(size);
  }

  void limit_file_size(rlim_t bytes) {
    rlimit limit{};
    ASSERT_EQ(prlimit(daemon_->pid(), RLIMIT_FSIZE, nullptr, &limit), 0) << std::strerror(errno);
    limit.rlim_cur = bytes;
    ASSERT_EQ(prlimit(daemon_->pid(), RLIMIT_FSIZE, &limit, nullptr), 0) << std::strerror(errno);
  }

  static void expect_storage_unavailable(const ApiReply& reply, const std::string& what) {
    EXPECT_EQ(reply.status, 503) << what << ": " << reply.body;
    EXPECT_FALSE(reply.header("Retry-After").empty()) << what << " has no Retry-After";
    const json error = json::parse(reply.body, nullptr, false)["error"];
    EXPECT_EQ(error.value("code", ""), "storage_unavailable") << what << ": " << reply.body;
    EXPECT_EQ(error.value("message", "").rfind("the store cannot write: ", 0), 0u)
        << what << ": " << reply.body;
  }

  testing::TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(DaemonStorageTest, AFullDiskAnswers503WithRetryAfterAndNotReadyUntilSpaceReturns) {
  Receiver receiver;
  start();
  ASSERT_TRUE(daemon_->wait_listening()) << daemon_->log();
  const json app = json::parse(call("POST", "/v1/apps", R"({"name":"acme"})").body);
  const std::string app_id = app["app_id"];
  ASSERT_EQ(call("POST", "/v1/callbacks", failed_body(app_id, receiver.url(), "t0").dump()).status,
            202);
  ASSERT_TRUE(receiver.wait_for_count(1, 10s));
  ASSERT_EQ(call("GET", "/readyz").status, 200);

  // From here no store file may grow: the disk is full as far as the daemon can tell.
  limit_file_size(wal_size());
  ApiReply refused;
  std::string refused_task;
  for (int i = 1; i <= 20 && refused.status != 503; ++i) {
    refused_task = "t" + std::to_string(i);
    refused = call("POST", "/v1/callbacks",
                   failed_body(app_id, receiver.url(), refused_task, 256 * 1024).dump());
    ASSERT_TRUE(refused.status == 202 || refused.status == 503) << refused.body;
  }
  expect_storage_unavailable(refused, "enqueue on a full disk");
  // A small write may still fit where a checkpoint let the WAL start over: app creations
  // fill what is left until one is refused too.
  ApiReply app_refused;
  for (int i = 0; i < 20 && app_refused.status != 503; ++i) {
    app_refused = call("POST", "/v1/apps", R"({"name":"beta"})");
    ASSERT_TRUE(app_refused.status == 201 || app_refused.status == 503) << app_refused.body;
  }
  expect_storage_unavailable(app_refused, "app creation on a full disk");
  expect_storage_unavailable(call("GET", "/readyz"), "readiness on a full disk");
  EXPECT_EQ(call("GET", "/healthz").status, 200) << "the process itself is fine";

  // Space returns: readiness and writes recover without a restart.
  limit_file_size(RLIM_INFINITY);
  const ApiReply ready = call("GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(call("POST", "/v1/callbacks", failed_body(app_id, receiver.url(), refused_task).dump())
                .status,
            202)
      << "the refused callback was not half-stored: it is new now";
  EXPECT_EQ(call("POST", "/v1/apps", R"({"name":"beta"})").status, 201);
}

TEST_F(DaemonStorageTest, ADamagedStoreStopsStartUpNamingTheFileAndWhatToDo) {
  Receiver receiver;
  start();
  ASSERT_TRUE(daemon_->wait_listening()) << daemon_->log();
  const json app = json::parse(call("POST", "/v1/apps", R"({"name":"acme"})").body);
  for (int i = 0; i < 50; ++i) {
    const std::string task = "t" + std::to_string(i);
    ASSERT_EQ(
        call("POST", "/v1/callbacks", failed_body(app["app_id"], receiver.url(), task, 2000).dump())
            .status,
        202);
  }
  daemon_->signal(SIGTERM);
  ASSERT_EQ(daemon_->wait_exit(), 0) << daemon_->log();

  // A page in the middle of the file turns to noise (a bad sector, a torn write).
  const std::uintmax_t pages = std::filesystem::file_size(database()) / 4096;
  ASSERT_GT(pages, 4u);
  std::string noise(4096, '\0');
  std::mt19937 random(7);
  for (char& c : noise) c = static_cast<char>(random());
  {
    std::fstream file(database(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(pages / 2 * 4096));
    file.write(noise.data(), static_cast<std::streamsize>(noise.size()));
    ASSERT_TRUE(file.good());
  }

  start("damaged-start.log");
  const std::optional<int> exit_code = daemon_->wait_exit();
  ASSERT_TRUE(exit_code.has_value()) << "a daemon on a damaged store kept running";
  EXPECT_NE(*exit_code, 0);
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("event=start_failed"), std::string::npos) << log;
  EXPECT_NE(log.find(database().string()), std::string::npos) << log;
  EXPECT_NE(log.find("damaged"), std::string::npos) << log;
  EXPECT_NE(log.find(".recover"), std::string::npos) << log;
}

}  // namespace
}  // namespace callbackd
