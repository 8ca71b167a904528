// Latency from enqueue to the receiver at a steady 1,000 callbacks/s (4 producers × 250/s),
// durable commit included: a fresh callback is handed to the dispatcher right after its
// commit, never left for a poll. Prints p50/p90/p99/max over the run.
//   build/release/bench/callbackd_latency_bench [seconds=5] [rate=1000]
#include <callbackd/engine.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "receiver.h"
#include "sqlite_engine.h"

using namespace callbackd;
using Steady = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int rate = argc > 2 ? std::atoi(argv[2]) : 1000;
  constexpr int kProducers = 4;
  spdlog::set_level(spdlog::level::warn);

  const char* base = std::getenv("TMPDIR");
  const auto dir = std::filesystem::path(base ? base : "/tmp") /
                   ("callbackd-latency-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  EngineOptions options;
  const auto database = dir / "callbackd.db";
  options.allow_networks = {"127.0.0.0/8"};
  auto engine = std::move(*testing::open_sqlite_engine(database, options));
  const std::string app = engine->create_app("bench")->app.id;
  engine->start();
  testing::Receiver sink;

  std::mutex mutex;
  std::unordered_map<std::string, Steady::time_point> enqueued_at;
  const int per_producer = seconds * rate / kProducers;
  const auto interval = std::chrono::nanoseconds(1'000'000'000LL * kProducers / rate);
  const auto start = Steady::now();
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      // Staggered, evenly paced sends: the load is a steady rate, not bursts.
      auto next = start + interval * p / kProducers;
      for (int i = 0; i < per_producer; ++i, next += interval) {
        std::this_thread::sleep_until(next);
        TaskResult task;
        task.task_id = "t" + std::to_string(p) + "-" + std::to_string(i);
        task.status = TaskStatus::kFailed;
        task.error = "e";
        const auto t0 = Steady::now();
        auto receipt = engine->enqueue(app, sink.url(), task);
        if (!receipt.ok()) continue;
        std::lock_guard lock(mutex);
        enqueued_at[receipt->delivery_id] = t0;
      }
    });
  }
  for (auto& p : producers) p.join();
  const std::size_t sent = enqueued_at.size();
  sink.wait_for_count(sent, std::chrono::seconds(30));
  const double elapsed = std::chrono::duration<double>(Steady::now() - start).count();

  std::vector<double> latencies_ms;
  for (const auto& r : sink.requests()) {
    auto it = enqueued_at.find(r.headers.at("x-callback-id"));
    if (it == enqueued_at.end()) continue;
    latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(r.received_at - it->second).count());
  }
  engine->stop();
  std::filesystem::remove_all(dir);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double q) {
    return latencies_ms[std::min(
        latencies_ms.size() - 1,
        static_cast<std::size_t>(q * static_cast<double>(latencies_ms.size())))];
  };
  if (latencies_ms.empty()) return 1;
  std::printf("callbacks=%zu received=%zu offered_rate=%d/s achieved_rate=%.0f/s\n", sent,
              latencies_ms.size(), rate, static_cast<double>(sent) / elapsed);
  std::printf("enqueue->receiver latency ms: p50=%.2f p90=%.2f p99=%.2f max=%.2f\n", pct(0.50),
              pct(0.90), pct(0.99), latencies_ms.back());
  return 0;
}
