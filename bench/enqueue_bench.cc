// Durable enqueue (synchronous=FULL, a real file) against raw SQLite inserts of the same rows
// (same schema, statement, body size and synchronous mode), with the ceilings fixed before the
// run:
//   BM_EngineEnqueueAsync (Engine::enqueue_async, 4096 in flight: URL check, serialization,
//     quota, commit) against BM_RawBatchedInsert/1000 (1000-row transactions);
//   BM_EngineEnqueue/threads:8 (blocking callers) against BM_RawBatchedInsert/1 (single-row
//     commits/s) times the rows per commit the engine's group commit reached.
// BM_Enqueue* measure the SQLite queue alone (SqliteQueue::enqueue), for where the time goes.
//   bench/enqueue_vs_sqlite.sh build/release 5   # runs them side by side, prints the ratios
#include <benchmark/benchmark.h>
#include <callbackd/engine.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "sqlite/schema.h"
#include "sqlite/sqlite_queue.h"

namespace callbackd {
namespace {

const TimePoint kNow = from_unix_ms(1'700'000'000'000);
// A typical finished task, and its body as the engine builds it (raw inserts store the same).
TaskResult typical_task(std::string task_id) {
  TaskResult t;
  t.task_id = std::move(task_id);
  t.results.push_back(Track{"clip_1", "https://cdn.example/1.mp3", "https://cdn.example/1.jpg",
                            "Night Drive", 182.5, "synthwave", std::string(600, 'p'),
                            1767225600000});
  return t;
}
const auto kBody = std::make_shared<const std::string>(*build_callback_body(typical_task("t")));

std::string fresh_path(const char* name) {
  const char* base = std::getenv("TMPDIR");
  const std::string dir =
      std::string(base ? base : "/tmp") + "/callbackd-bench-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return path;
}

std::unique_ptr<SqliteQueue> g_queue;
std::atomic<std::int64_t> g_task{0};

void open_queue(const benchmark::State&) {
  g_queue = std::move(*SqliteQueue::open({.path = fresh_path("enqueue")}));
  StoredApp app;
  app.app = App{"app_1", "bench", SignatureScheme::kHex, kNow};
  app.sealed_secret = "s";
  (void)g_queue->insert_app(app);
}
void close_queue(const benchmark::State&) { g_queue.reset(); }

NewDelivery next_delivery() {
  const std::string n = std::to_string(g_task.fetch_add(1));
  return NewDelivery{"dlv_" + n,
                     "app_1",
                     "task_" + n,
                     "https://hooks.example.com/cb",
                     "https://hooks.example.com:443",
                     kBody,
                     kNow,
                     std::nullopt};
}

// Each call returns only after its row is committed to disk.
void BM_Enqueue(benchmark::State& state) {
  const std::uint64_t commits_before = g_queue->enqueue_commits();
  const std::uint64_t rows_before = g_queue->enqueued_rows();
  for (auto _ : state) {
    Result<Enqueued> r = g_queue->enqueue(next_delivery());
    if (!r.ok()) state.SkipWithError(r.status().to_string().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const double commits = static_cast<double>(g_queue->enqueue_commits() - commits_before);
    const double rows = static_cast<double>(g_queue->enqueued_rows() - rows_before);
    state.counters["rows_per_commit"] = commits > 0 ? rows / commits : 0;
  }
}
BENCHMARK(BM_Enqueue)->Setup(open_queue)->Teardown(close_queue)->UseRealTime()->Threads(1);
BENCHMARK(BM_Enqueue)->Setup(open_queue)->Teardown(close_queue)->UseRealTime()->Threads(8);
BENCHMARK(BM_Enqueue)->Setup(open_queue)->Teardown(close_queue)->UseRealTime()->Threads(64);

// One producer keeping up to 4096 enqueues in flight (as a pipeline thread, or the sidecar's
// HTTP handlers, do with enqueue_async): every callback still waits for its commit, and
// commits are shared by as many rows as are waiting.
void BM_EnqueueAsync(benchmark::State& state) {
  constexpr std::int64_t kWindow = 4096;
  std::mutex mutex;
  std::condition_variable room;
  std::int64_t outstanding = 0;
  const std::uint64_t commits_before = g_queue->enqueue_commits();
  const std::uint64_t rows_before = g_queue->enqueued_rows();
  auto done = [&](Result<Enqueued>) {
    std::lock_guard lock(mutex);
    if (--outstanding < kWindow) room.notify_one();
  };
  for (auto _ : state) {
    {
      std::unique_lock lock(mutex);
      room.wait(lock, [&] { return outstanding < kWindow; });
      ++outstanding;
    }
    g_queue->enqueue_async(next_delivery(), done);
  }
  std::unique_lock lock(mutex);
  room.wait(lock, [&] { return outstanding == 0; });  // every row committed
  state.SetItemsProcessed(state.iterations());
  const double commits = static_cast<double>(g_queue->enqueue_commits() - commits_before);
  state.counters["rows_per_commit"] =
      commits > 0 ? static_cast<double>(g_queue->enqueued_rows() - rows_before) / commits : 0;
}
BENCHMARK(BM_EnqueueAsync)->Setup(open_queue)->Teardown(close_queue)->UseRealTime();

// The whole path an embedder or the daemon takes: Engine::enqueue on an engine that is not
// dispatching (so that delivery does not share the CPU), quota high enough never to refuse.
std::unique_ptr<Engine> g_engine;
SqliteQueue* g_engine_queue = nullptr;  // owned by g_engine; read for its commit counters
std::string g_app;

void open_engine(const benchmark::State&) {
  const std::string path = fresh_path("engine");
  std::shared_ptr<SqliteQueue> queue = std::move(*SqliteQueue::open({.path = path}));
  g_engine_queue = queue.get();
  EngineOptions options;
  options.queue = std::move(queue);
  options.master_key_file = path + ".key";
  options.max_pending_per_app = 100'000'000;
  g_engine = std::move(*Engine::open(std::move(options)));
  g_app = g_engine->create_app("bench")->app.id;
}

double rows_per_commit(std::uint64_t commits_before, std::uint64_t rows_before) {
  const double commits = static_cast<double>(g_engine_queue->enqueue_commits() - commits_before);
  const double rows = static_cast<double>(g_engine_queue->enqueued_rows() - rows_before);
  return commits > 0 ? rows / commits : 0;
}
void close_engine(const benchmark::State&) { g_engine.reset(); }

// Blocking callers: each returns once its callback is on disk; concurrent ones share commits.
void BM_EngineEnqueue(benchmark::State& state) {
  const std::uint64_t commits_before = g_engine_queue->enqueue_commits();
  const std::uint64_t rows_before = g_engine_queue->enqueued_rows();
  for (auto _ : state) {
    const auto r = g_engine->enqueue(g_app, "https://hooks.example.com/cb",
                                     typical_task("task_" + std::to_string(g_task.fetch_add(1))));
    if (!r.ok()) state.SkipWithError(r.status().to_string().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0)
    state.counters["rows_per_commit"] = rows_per_commit(commits_before, rows_before);
}
BENCHMARK(BM_EngineEnqueue)
    ->Setup(open_engine)
    ->Teardown(close_engine)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(8);

void BM_EngineEnqueueAsync(benchmark::State& state) {
  constexpr std::int64_t kWindow = 4096;
  std::mutex mutex;
  std::condition_variable room;
  std::int64_t outstanding = 0;
  const std::uint64_t commits_before = g_engine_queue->enqueue_commits();
  const std::uint64_t rows_before = g_engine_queue->enqueued_rows();
  auto done = [&](Result<EnqueueReceipt>) {
    std::lock_guard lock(mutex);
    if (--outstanding < kWindow) room.notify_one();
  };
  for (auto _ : state) {
    {
      std::unique_lock lock(mutex);
      room.wait(lock, [&] { return outstanding < kWindow; });
      ++outstanding;
    }
    g_engine->enqueue_async(g_app, "https://hooks.example.com/cb",
                            typical_task("task_" + std::to_string(g_task.fetch_add(1))), done);
  }
  std::unique_lock lock(mutex);
  room.wait(lock, [&] { return outstanding == 0; });
  state.SetItemsProcessed(state.iterations());
  state.counters["rows_per_commit"] = rows_per_commit(commits_before, rows_before);
}
BENCHMARK(BM_EngineEnqueueAsync)->Setup(open_engine)->Teardown(close_engine)->UseRealTime();

// The ceiling: the same INSERT, prepared once, `batch` rows per transaction, synchronous=FULL.
void BM_RawBatchedInsert(benchmark::State& state) {
  const auto batch = state.range(0);
  auto connection = sqlite::Connection::open(fresh_path("raw"), true);
  sqlite::Connection& c = **connection;
  (void)sqlite::configure_connection(c);
  (void)sqlite::create_or_upgrade_schema(c);
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(
      c.handle(),
      "INSERT INTO deliveries (id, app_id, task_id, callback_url, body, state, "
      "due_at, attempts_made, budget_used, created_at, host_key) VALUES "
      "(?1, ?2, ?3, ?4, ?5, 0, ?6, 0, 0, ?6, ?7) ON CONFLICT (app_id, task_id) DO NOTHING",
      -1, &insert, nullptr);
  std::int64_t n = 0;
  for (auto _ : state) {
    (void)c.exec("BEGIN IMMEDIATE");
    for (std::int64_t i = 0; i < batch; ++i, ++n) {
      const std::string id = std::to_string(n);
      const std::string dlv = "dlv_" + id, task = "task_" + id;
      sqlite3_bind_text(insert, 1, dlv.data(), static_cast<int>(dlv.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(insert, 2, "app_1", 5, SQLITE_STATIC);
      sqlite3_bind_text(insert, 3, task.data(), static_cast<int>(task.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(insert, 4, "https://hooks.example.com/cb", -1, SQLITE_STATIC);
      sqlite3_bind_blob(insert, 5, kBody->data(), static_cast<int>(kBody->size()), SQLITE_STATIC);
      sqlite3_bind_text(insert, 7, "https://hooks.example.com:443", -1, SQLITE_STATIC);
      sqlite3_bind_int64(insert, 6, to_unix_ms(kNow));
      sqlite3_step(insert);
      sqlite3_reset(insert);
    }
    (void)c.exec("COMMIT");
  }
  sqlite3_finalize(insert);
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_RawBatchedInsert)->Arg(1)->Arg(8)->Arg(64)->Arg(1000)->UseRealTime();

}  // namespace
}  // namespace callbackd

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // stdout carries the JSON report
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
