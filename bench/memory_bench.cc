// Memory stays flat as the backlog grows: the backlog lives on disk, the dispatcher holds at
// most 2 x max_in_flight deliveries. Stores N callbacks, then delivers for a few seconds to a
// loopback sink, and prints the process's resident set (VmRSS now, VmHWM peak).
//   build/release/bench/callbackd_memory_bench [pending=1000000] [seconds=5]
// Run it with 10000 and with 1000000 to compare.
#include <callbackd/engine.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "receiver.h"
#include "sqlite_engine.h"

namespace {

// "VmRSS" or "VmHWM" from /proc/self/status, in MiB.
double status_mib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace callbackd;
  const int pending = argc > 1 ? std::atoi(argv[1]) : 1'000'000;
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 5;
  spdlog::set_level(spdlog::level::warn);
  const char* base = std::getenv("TMPDIR");
  const auto dir = std::filesystem::path(base ? base : "/tmp") /
                   ("callbackd-memory-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  // A sink that answers slowly, so the backlog stays large while attempts run at full cap.
  testing::Receiver sink(
      [](const testing::ReceivedRequest&) {
        return testing::Reply{.status = 204, .delay = std::chrono::milliseconds(20)};
      },
      /*record=*/false);
  {
    EngineOptions options;
    const auto database = dir / "callbackd.db";
    options.allow_networks = {"127.0.0.0/8"};
    options.max_pending_per_app = static_cast<std::size_t>(pending) + 1;
    auto engine = std::move(*testing::open_sqlite_engine(database, options));
    const std::string app = engine->create_app("bench")->app.id;
    std::mutex mutex;
    std::condition_variable stored;
    int left = pending;
    for (int i = 0; i < pending; ++i) {
      TaskResult task;
      task.task_id = "t" + std::to_string(i);
      task.status = TaskStatus::kFailed;
      task.error = std::string(200, 'e');
      engine->enqueue_async(app, sink.url(), task, [&](Result<EnqueueReceipt>) {
        std::lock_guard lock(mutex);
        --left;
        stored.notify_one();
      });
      if (i % 4096 == 4095) {  // keep the queue of in-flight enqueues bounded
        std::unique_lock lock(mutex);
        stored.wait(lock, [&] { return left <= pending - i - 1 + 4096; });
      }
    }
    std::unique_lock lock(mutex);
    stored.wait(lock, [&] { return left == 0; });
    lock.unlock();
    const double rss_stored = status_mib("VmRSS");
    engine->start();
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    const double rss_running = status_mib("VmRSS");
    engine->stop();
    std::printf(
        "pending=%d delivered_during_run=%zu rss_after_store=%.1fMiB "
        "rss_while_delivering=%.1fMiB peak_rss=%.1fMiB\n",
        pending, sink.count(), rss_stored, rss_running, status_mib("VmHWM"));
  }
  std::filesystem::remove_all(dir);
  return 0;
}
