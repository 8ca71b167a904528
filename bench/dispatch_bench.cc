// End-to-end delivery rate to a loopback sink answering 204, against the ceiling measured in
// the same run: a bare libcurl-multi loop posting the same body to the same sink with the same
// concurrency (the per-host cap, since the sink is one host).
//   build/release/bench/callbackd_dispatch_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
// BM_DrainBacklog: N callbacks already stored; time from start() until the sink has them all.
// BM_EnqueueAndDeliver: 8 threads enqueue N callbacks into a running engine; time until the
// sink has them all (durable enqueue included).
// BM_BareCurlMulti: the ceiling. The ratio of items_per_second is the figure to report.
// CPU per delivery is counted for the whole process and, from each thread's CPU, for the parts:
// the engine's io thread (transfers, dispatch), its store thread (claims, records) and the sink;
// for the bare loop, its client (everything but the sink) and the sink.
// CALLBACKD_BENCH_DELIVERIES=N changes the 20,000 (e.g. a small N under valgrind).
// SINK_URL=http://… sends to that sink instead of one inside this process (so that other
// senders can be measured against the same sink process: bench/bullmq/run.sh,
// bench/sidecar_vs_ceilings.sh); deliveries are then counted by the engine.
#include <benchmark/benchmark.h>
#include <callbackd/engine.h>
#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "receiver.h"
#include "sqlite_engine.h"
#include "thread_cpu.h"
#include "transport/http_client.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t kConcurrency = 32;  // EngineOptions::max_in_flight_per_host default

int deliveries() {
  const char* n = std::getenv("CALLBACKD_BENCH_DELIVERIES");
  return n ? std::atoi(n) : 20000;
}

TaskResult task(int i) {
  TaskResult t;
  t.task_id = "task_" + std::to_string(i);
  t.results.push_back(Track{"clip_" + std::to_string(i), "https://cdn.example/a.mp3",
                            "https://cdn.example/a.jpg", "Night Drive", 182.5, "synthwave",
                            std::string(600, 'p'), 1767225600000});
  return t;
}

std::filesystem::path fresh_dir() {
  static int run = 0;
  const char* base = std::getenv("TMPDIR");
  auto dir = std::filesystem::path(base ? base : "/tmp") /
             ("callbackd-dispatch-bench-" + std::to_string(getpid()) + "-" + std::to_string(run++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::unique_ptr<Engine> open_engine(const std::filesystem::path& dir,
                                    std::shared_ptr<EngineObserver> observer = nullptr) {
  EngineOptions options;
  options.observer = std::move(observer);
  const auto database = dir / "callbackd.db";
  options.allow_networks = {"127.0.0.0/8"};
  if (const char* cap = std::getenv("PER_HOST")) options.max_in_flight_per_host = std::atoi(cap);
  return std::move(*testing::open_sqlite_engine(database, options));
}

// CPU time of the whole process (every thread: engine, storage, sink) in seconds.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A sending loop's CPU per delivery since the snapshots: in all, the sink's, and the rest (the
// client: whatever runs besides the sink).
void report_client_cpu(benchmark::State& state, int n, double cpu_before,
                       const bench::ThreadCpu& threads_before) {
  const double cpu_seconds = process_cpu_seconds() - cpu_before;
  const double sink_seconds =
      bench::used_between(threads_before, bench::thread_cpu_seconds(), "test-receiver");
  const double us_each = 1e6 / static_cast<double>(state.iterations() * n);
  state.counters["cpu_us_per_delivery"] = cpu_seconds * us_each;
  state.counters["client_us"] = (cpu_seconds - sink_seconds) * us_each;
  state.counters["sink_us"] = sink_seconds * us_each;
}

void wait_for(const testing::Receiver& sink, std::size_t n) {
  if (!sink.wait_for_count(n, 300s)) std::abort();
}

const char* external_sink() { return std::getenv("SINK_URL"); }

// Counts finished deliveries, for an external sink that cannot be asked.
class DeliveredCounter : public EngineObserver {
 public:
  void on_attempt(const Attempt&, DeliveryState next) override {
    if (next != DeliveryState::kDelivered) return;
    std::lock_guard lock(mutex_);
    ++delivered_;
    if (delivered_ >= target_) reached_.notify_all();
  }
  void wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    target_ = n;
    if (!reached_.wait_for(lock, 300s, [&] { return delivered_ >= n; })) std::abort();
  }

 private:
  std::mutex mutex_;
  std::condition_variable reached_;
  std::size_t delivered_ = 0, target_ = SIZE_MAX;
};

// Stores n callbacks (many commits in flight at once) and waits until all are on disk.
void enqueue_all(Engine& engine, const std::string& app, const std::string& url, int n) {
  std::mutex mutex;
  std::condition_variable all_stored;
  int left = n;
  for (int i = 0; i < n; ++i) {
    engine.enqueue_async(app, url, task(i), [&](Result<EnqueueReceipt>) {
      std::lock_guard lock(mutex);
      if (--left == 0) all_stored.notify_one();
    });
  }
  std::unique_lock lock(mutex);
  all_stored.wait(lock, [&] { return left == 0; });
}

void BM_DrainBacklog(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  testing::Receiver sink({}, /*record=*/false);
  double cpu_seconds = 0, io_seconds = 0, store_seconds = 0, sink_seconds = 0;
  for (auto _ : state) {
    const auto dir = fresh_dir();
    auto counter = std::make_shared<DeliveredCounter>();
    auto engine = open_engine(dir, counter);
    const std::string app = engine->create_app("bench")->app.id;
    enqueue_all(*engine, app, external_sink() ? external_sink() : sink.url(), n);
    const std::size_t before = sink.count();
    const double cpu_before = process_cpu_seconds();
    const bench::ThreadCpu threads_before = bench::thread_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    engine->start();
    if (external_sink())
      counter->wait_for(static_cast<std::size_t>(n));
    else
      wait_for(sink, before + static_cast<std::size_t>(n));
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    cpu_seconds += process_cpu_seconds() - cpu_before;
    const bench::ThreadCpu threads_after = bench::thread_cpu_seconds();
    io_seconds += bench::used_between(threads_before, threads_after, "callbackd-io");
    store_seconds += bench::used_between(threads_before, threads_after, "callbackd-store");
    sink_seconds += bench::used_between(threads_before, threads_after, "test-receiver");
    engine->stop();
    engine.reset();
    std::filesystem::remove_all(dir);
  }
  state.SetItemsProcessed(state.iterations() * n);
  const double us_each = 1e6 / static_cast<double>(state.iterations() * n);
  state.counters["cpu_us_per_delivery"] = cpu_seconds * us_each;
  state.counters["io_us"] = io_seconds * us_each;
  state.counters["store_us"] = store_seconds * us_each;
  state.counters["sink_us"] = sink_seconds * us_each;
  state.counters["connections"] = static_cast<double>(sink.connections_accepted());
}
BENCHMARK(BM_DrainBacklog)->Arg(deliveries())->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_EnqueueAndDeliver(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  testing::Receiver sink({}, /*record=*/false);
  for (auto _ : state) {
    const auto dir = fresh_dir();
    auto engine = open_engine(dir);
    const std::string app = engine->create_app("bench")->app.id;
    engine->start();
    const std::size_t before = sink.count();
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> producers;
    for (int t = 0; t < 8; ++t) {
      producers.emplace_back([&, t] {
        for (int i = t; i < n; i += 8) (void)engine->enqueue(app, sink.url(), task(i));
      });
    }
    for (auto& p : producers) p.join();
    wait_for(sink, before + static_cast<std::size_t>(n));
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    engine->stop();
    engine.reset();
    std::filesystem::remove_all(dir);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_EnqueueAndDeliver)->Arg(deliveries())->UseManualTime()->Unit(benchmark::kMillisecond);

// The ceiling: no storage, no signing, no scheduling — curl multi keeping kConcurrency POSTs
// of the same body in flight to the same sink.
void BM_BareCurlMulti(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  testing::Receiver sink({}, /*record=*/false);
  const std::string url = external_sink() ? external_sink() : sink.url();
  const std::string body = *build_callback_body(task(0));
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  std::vector<CURL*> easies;
  for (std::size_t i = 0; i < kConcurrency; ++i) {
    CURL* e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(
        e, CURLOPT_WRITEFUNCTION,
        +[](char*, std::size_t s, std::size_t m, void*) { return s * m; });
    easies.push_back(e);
  }
  const double cpu_before = process_cpu_seconds();
  const bench::ThreadCpu threads_before = bench::thread_cpu_seconds();
  for (auto _ : state) {
    int started = 0, finished = 0;
    for (CURL* e : easies) {
      if (started < n) {
        curl_multi_add_handle(multi, e);
        ++started;
      }
    }
    while (finished < n) {
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        ++finished;
        CURL* e = m->easy_handle;
        curl_multi_remove_handle(multi, e);
        if (started < n) {
          curl_multi_add_handle(multi, e);
          ++started;
        }
      }
      if (finished < n) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
  }
  report_client_cpu(state, n, cpu_before, threads_before);
  state.counters["connections"] = static_cast<double>(sink.connections_accepted());
  for (CURL* e : easies) curl_easy_cleanup(e);
  curl_slist_free_all(headers);
  curl_multi_cleanup(multi);
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_BareCurlMulti)->Arg(deliveries())->UseRealTime()->Unit(benchmark::kMillisecond);

// The engine's transport alone: HttpClient (libcurl multi_socket driven by an Asio io_context)
// keeping kConcurrency POSTs of the same body in flight, no dispatcher, store or signing. Beside
// BM_BareCurlMulti it shows what the Asio integration costs; beside BM_DrainBacklog's io_us, what
// the dispatcher and the hand-offs to the store cost.
void BM_HttpClientOnly(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  testing::Receiver sink({}, /*record=*/false);
  const std::string url = external_sink() ? external_sink() : sink.url();
  const auto body = std::make_shared<const std::string>(*build_callback_body(task(0)));
  boost::asio::io_context io;
  HttpClient client(io, HttpClientOptions{});
  const double cpu_before = process_cpu_seconds();
  const bench::ThreadCpu threads_before = bench::thread_cpu_seconds();
  for (auto _ : state) {
    int started = 0, finished = 0;
    std::function<void()> start_one = [&] {
      ++started;
      client.post(HttpRequest{url, {}, body, Millis(10000)}, [&](HttpResponse response) {
        if (response.error != AttemptError::kNone) std::abort();
        ++finished;
        if (started < n) start_one();
      });
    };
    for (std::size_t i = 0; i < kConcurrency && started < n; ++i) start_one();
    io.restart();
    while (finished < n) io.run_one();
  }
  report_client_cpu(state, n, cpu_before, threads_before);
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_HttpClientOnly)->Arg(deliveries())->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace callbackd

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
