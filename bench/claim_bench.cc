// Claiming due deliveries with a small and a large backlog waiting: the claim walks the
// (state, due_at) index and rewrites only the narrow deliveries rows (bodies live apart), so its
// cost must not grow with the rows behind it. Prints the ratio of the mean claim times.
//   build/release/bench/callbackd_claim_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
// The large backlog is 10 M rows (CALLBACKD_BENCH_BIG_BACKLOG changes it). Seeded stores are kept
// in $TMPDIR/callbackd-claim-bench/ and reused by later runs (10 M rows: ~6 GB, a few minutes
// to build once); claims and releases keep every row due, so a reused store is as good as new.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "sqlite/schema.h"
#include "sqlite/sqlite_queue.h"

namespace callbackd {
namespace {

// Every row is due long before the run: its due time is an old wall-clock time.
const TimePoint kNow = from_unix_ms(1'700'000'000'000);
constexpr Millis kLease{30000};

std::int64_t big_backlog() {
  const char* v = std::getenv("CALLBACKD_BENCH_BIG_BACKLOG");
  return v ? std::atoll(v) : 10'000'000;
}

// Builds a store of `rows` pending deliveries, all due, with bulk inserts in one transaction
// (ids zero-padded so every index is appended to in order). Seeding skips the journal and fsync:
// it is a fixture; the file is renamed into place only once complete.
void seed(const std::string& path, std::int64_t rows) {
  const std::string partial = path + ".partial";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(partial + suffix);
  { auto queue = SqliteQueue::open({.path = partial}); }  // creates the schema
  std::filesystem::remove(partial + ".lock");
  auto c = std::move(*sqlite::Connection::open(partial, true));
  for (const char* sql :
       {"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA cache_size=-1000000",
        "INSERT INTO apps VALUES ('app_1', 'bench', 0, x'00', x'', NULL, 0)", "BEGIN"}) {
    (void)c->exec(sql);
  }
  const std::string n =
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
      std::to_string(rows) + ") ";
  (void)c->exec(n +
                "INSERT INTO deliveries (seq, id, app_id, task_id, callback_url, state, due_at, "
                "attempts_made, budget_used, created_at, host_key) SELECT i, "
                "printf('dlv_%012d', i), 'app_1', printf('task_%012d', i), "
                "'https://hooks.example.com/cb', 0, " +
                std::to_string(to_unix_ms(kNow)) +
                " - i, 0, 0, 0, 'https://hooks.example.com:443' FROM n");
  (void)c->exec(n + "INSERT INTO delivery_bodies (seq, body) SELECT i, zeroblob(512) FROM n");
  (void)c->exec("COMMIT");
  c.reset();
  std::filesystem::rename(partial, path);
}

std::unique_ptr<SqliteQueue> open_store(std::int64_t rows) {
  const char* base = std::getenv("TMPDIR");
  const std::string dir = std::string(base ? base : "/tmp") + "/callbackd-claim-bench";
  std::filesystem::create_directories(dir);
  const std::string path =
      dir + "/" + std::to_string(rows) + "-v" + std::to_string(sqlite::kSchemaVersion) + ".db";
  if (!std::filesystem::exists(path)) seed(path, rows);
  auto queue = SqliteQueue::open({.path = path});
  if (!queue.ok()) {
    std::fprintf(stderr, "%s\n", queue.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(*queue);
}

SqliteQueue& store(std::int64_t rows) {
  static std::map<std::int64_t, std::unique_ptr<SqliteQueue>> stores;
  auto& s = stores[rows];
  if (!s) s = open_store(rows);
  return *s;
}

// Wall time and this thread's CPU time spent in claims, and their count, per backlog, over every
// repetition. The CPU time is the steadier figure on a shared machine.
struct ClaimTimes {
  double wall = 0;
  double cpu = 0;
  std::int64_t claims = 0;
};
std::map<std::int64_t, ClaimTimes> claim_times;

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// One claim of 64 due deliveries (what the dispatcher asks for at a time). Outside the timed
// part the claimed rows go back to the end of the line, so the backlog keeps its size and
// successive claims walk through it rather than taking the same rows again.
void BM_Claim64(benchmark::State& state) {
  SqliteQueue& queue = store(state.range(0));
  std::vector<LeaseToken> tokens;
  ClaimTimes& times = claim_times[state.range(0)];
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = thread_cpu_seconds();
    Result<std::vector<ClaimedDelivery>> claimed = queue.claim({.limit = 64, .lease = kLease});
    times.cpu += thread_cpu_seconds() - cpu_start;
    times.wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++times.claims;
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

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  using callbackd::claim_times;
  if (claim_times.size() < 2) return 0;
  const auto& [small_rows, small] = *claim_times.begin();
  const auto& [big_rows, big] = *claim_times.rbegin();
  const auto us = [](double seconds, const callbackd::ClaimTimes& t) {
    return seconds * 1e6 / static_cast<double>(std::max<std::int64_t>(1, t.claims));
  };
  std::printf(
      "claim64 mean wall: %lld rows %.0f us, %lld rows %.0f us: ratio %.2f (goal <= 1.2)\n"
      "claim64 mean cpu:  %lld rows %.0f us, %lld rows %.0f us: ratio %.2f\n",
      static_cast<long long>(small_rows), us(small.wall, small), static_cast<long long>(big_rows),
      us(big.wall, big), us(big.wall, big) / us(small.wall, small),
      static_cast<long long>(small_rows), us(small.cpu, small), static_cast<long long>(big_rows),
      us(big.cpu, big), us(big.cpu, big) / us(small.cpu, small));
}
