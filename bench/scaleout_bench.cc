// Deliveries per second with 1, 2 and 4 callbackd processes on one PostgreSQL database, on a
// throw-away cluster: a backlog of callbacks is stored first, then N daemons start and drain
// it to a loopback receiver. With a receiver that answers after 20 ms the work is bound by
// latency and concurrency (per-host cap 32 per process), so N processes should reach about N
// times one; with a receiver that answers at once it is bound by the machine's CPU.
//
//   callbackd_scaleout_bench [callbacks=4000] [reply_ms=20]
#include <callbackd/postgres_store.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api_client.h"
#include "daemon_process.h"
#include "postgres_cluster.h"
#include "receiver.h"
#include "temp_dir.h"

namespace {

using namespace callbackd;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kMasterKey =
    "CALLBACKD_MASTER_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

std::unique_ptr<testing::DaemonProcess> start_daemon(const testing::TempDir& dir,
                                                     const std::string& store, int n) {
  auto daemon = std::make_unique<testing::DaemonProcess>(
      CALLBACKD_BINARY,
      std::vector<std::string>{"serve", "--listen=127.0.0.1:0", "--store=" + store,
                               "--data-dir=" + (dir / ("data" + std::to_string(n))).string(),
                               "--allow-networks=127.0.0.0/8", "--log-level=warn"},
      dir / ("daemon" + std::to_string(n) + ".log"), std::vector<std::string>{kMasterKey});
  return daemon;
}

double run(int processes, int callbacks, std::chrono::milliseconds reply) {
  testing::TempDir dir;
  const std::string store = testing::fresh_postgres_database();
  testing::Receiver sink(
      [reply](const testing::ReceivedRequest&) { return testing::Reply{.delay = reply}; },
      /*record=*/false);

  // The app, created through a daemon so its secret is sealed under the shared key.
  std::string app_id;
  {
    auto first = std::make_unique<testing::DaemonProcess>(
        CALLBACKD_BINARY,
        std::vector<std::string>{"serve", "--listen=127.0.0.1:0", "--store=" + store,
                                 "--data-dir=" + (dir / "setup").string()},
        dir / "setup.log", std::vector<std::string>{kMasterKey});
    if (!first->wait_listening()) {
      std::fprintf(stderr, "daemon did not start: %s\n", first->log().c_str());
      std::exit(1);
    }
    auto app = call_api("POST", first->base_url(), "/v1/apps", "", R"({"name":"bench"})");
    app_id = nlohmann::json::parse(app->body)["app_id"];
  }
  // The backlog, stored pending before any dispatcher runs.
  {
    auto queue = open_postgres_queue({.conninfo = store});
    auto body = std::make_shared<const std::string>(R"({"task_id":"x","status":"completed"})");
    for (int i = 0; i < callbacks; ++i) {
      const std::string task = std::to_string(i);
      (*queue)->enqueue_async(NewDelivery{"dlv_" + task, app_id, task, sink.url(),
                                          "http://127.0.0.1:" + std::to_string(sink.port()), body,
                                          system_clock()->now(), std::nullopt},
                              [](Result<Enqueued>) {});
    }
    (*queue)->drain();
  }
  const auto start = Clock::now();
  std::vector<std::unique_ptr<testing::DaemonProcess>> daemons;
  for (int n = 0; n < processes; ++n) daemons.push_back(start_daemon(dir, store, n));
  if (!sink.wait_for_count(static_cast<std::size_t>(callbacks), 300s)) {
    std::fprintf(stderr, "only %zu of %d arrived\n", sink.count(), callbacks);
  }
  return static_cast<double>(sink.count()) /
         std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int callbacks = argc > 1 ? std::atoi(argv[1]) : 4000;
  const auto reply = std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 20);
  double one = 0;
  for (int processes : {1, 2, 4}) {
    const double rate = run(processes, callbacks, reply);
    if (processes == 1) one = rate;
    std::printf("%d process(es), receiver answers after %lld ms: %.0f deliveries/s (%.2f x one)\n",
                processes, static_cast<long long>(reply.count()), rate, rate / one);
    std::fflush(stdout);
  }
  return 0;
}
