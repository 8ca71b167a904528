// Claiming due deliveries with a small and a large backlog waiting: the claim walks the
// (state, due_at) index, so its cost must not grow with the rows behind it.
//   build/release/bench/callbackd_claim_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
// Set CALLBACKD_BENCH_BIG_BACKLOG=10000000 for the 10 M case (takes a few minutes to build).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "sqlite/sqlite_queue.h"

namespace callbackd {
namespace {

// Every row is due long before the run: its due time is an old wall-clock time.
const TimePoint kNow = from_unix_ms(1'700'000'000'000);
constexpr Millis kLease{30000};

std::int64_t big_backlog() {
  const char* v = std::getenv("CALLBACKD_BENCH_BIG_BACKLOG");
  return v ? std::atoll(v) : 1'000'000;
}

// A store with `rows` pending deliveries, all due, built with bulk inserts in one transaction.
std::unique_ptr<SqliteQueue> build_store(std::int64_t rows) {
  const char* base = std::getenv("TMPDIR");
  const std::string dir =
      std::string(base ? base : "/tmp") + "/callbackd-claim-bench-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + std::to_string(rows) + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  {
    auto c = std::move(*sqlite::Connection::open(path, true));
    (void)c->exec("PRAGMA journal_mode=WAL");
    auto queue = SqliteQueue::open({.path = path});  // creates the schema
    (void)c->exec("INSERT INTO apps VALUES ('app_1', 'bench', 0, x'00', x'', NULL, 0)");
    (void)c->exec("BEGIN");
    (void)c->exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
        std::to_string(rows) +
        ") INSERT INTO deliveries (id, app_id, task_id, callback_url, body, state, due_at, "
        "attempts_made, budget_used, created_at, host_key) SELECT 'dlv_' || i, 'app_1', "
        "'task_' || i, 'https://hooks.example.com/cb', zeroblob(512), 0, " +
        std::to_string(to_unix_ms(kNow)) + " - i, 0, 0, 0, 'https://hooks.example.com:443' FROM n");
    (void)c->exec("COMMIT");
    (void)c->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  return std::move(*SqliteQueue::open({.path = path}));
}

SqliteQueue& store(std::int64_t rows) {
  static std::map<std::int64_t, std::unique_ptr<SqliteQueue>> stores;
  auto& s = stores[rows];
  if (!s) s = build_store(rows);
  return *s;
}

// One claim of 64 due deliveries (what the dispatcher asks for at a time). Outside the timed
// part the claimed rows go back to the end of the line, so the backlog keeps its size and
// successive claims walk through it rather than taking the same rows again.
void BM_Claim64(benchmark::State& state) {
  SqliteQueue& queue = store(state.range(0));
  std::vector<LeaseToken> tokens;
  for (auto _ : state) {
    Result<std::vector<ClaimedDelivery>> claimed = queue.claim({.limit = 64, .lease = kLease});
    state.PauseTiming();
    if (!claimed.ok() || claimed->size() != 64) {
      state.SkipWithError("claim did not return 64 rows");
      break;
    }
    tokens.clear();
    for (const auto& d : *claimed) tokens.push_back(d.lease);
    // Due again right away, behind every row already waiting.
    (void)queue.release(tokens, Millis(0));
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * 64);
  state.counters["backlog"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_Claim64)->Arg(10'000)->Arg(big_backlog())->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace callbackd

BENCHMARK_MAIN();
