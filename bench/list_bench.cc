// Listing `state=dead` among a million deliveries (nearly all delivered, 300 dead spread
// through them): the first page and a deep one (after the 250th dead row), 50 rows a page.
//   build/release/bench/callbackd_list_bench --benchmark_repetitions=3
//   --benchmark_report_aggregates_only=true
// "before": the listing statement and schema of version 2 (one statement for every filter,
// `(?2 IS NULL OR state = ?2)`, no listing index), which walks rows in seq order until it has
// found a page. "after": SqliteQueue::list as it is now, on the (state, seq) index, attempts
// included. Same store, same rows.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sqlite/sqlite_queue.h"

namespace callbackd {
namespace {

constexpr std::int64_t kRows = 1'000'000;
constexpr std::int64_t kDeadEvery = kRows / 300;  // 300 dead rows, spread evenly
constexpr std::int64_t kPage = 50;
constexpr std::int64_t kDeepAfter = 250 * kDeadEvery;  // the cursor after the 250th dead row

// The listing of schema version 2, kept here to measure against.
constexpr const char* kListBefore =
    "SELECT seq, id, app_id, task_id, callback_url, state, due_at, created_at FROM deliveries "
    "WHERE seq > ?1 AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR app_id = ?3) "
    "ORDER BY seq LIMIT ?4";
constexpr const char* kListingIndexes[] = {"deliveries_by_state_seq", "deliveries_by_app_seq",
                                           "deliveries_by_app_state_seq", "deliveries_by_task"};

struct Store {
  std::string path;
  std::unique_ptr<SqliteQueue> queue;
  std::unique_ptr<sqlite::Connection> raw;
};

const std::string& bench_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    return std::string(base ? base : "/tmp") + "/callbackd-list-bench-" + std::to_string(getpid());
  }();
  return dir;
}

Store build_store() {
  const std::string& dir = bench_dir();
  std::filesystem::create_directories(dir);
  Store s{dir + "/list.db", nullptr, nullptr};
  {
    auto queue = SqliteQueue::open({.path = s.path});  // creates the schema
    auto c = std::move(*sqlite::Connection::open(s.path, false));
    (void)c->exec("INSERT INTO apps VALUES ('app_1', 'bench', 0, x'00', x'', NULL, 0)");
    (void)c->exec("BEGIN");
    (void)c->exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
        std::to_string(kRows) +
        ") INSERT INTO deliveries (seq, id, app_id, task_id, callback_url, state, due_at, "
        "attempts_made, budget_used, created_at, host_key) SELECT i, 'dlv_' || i, 'app_1', "
        "'task_' || i, 'https://hooks.example.com/cb', "
        "CASE WHEN i % " +
        std::to_string(kDeadEvery) +
        " = 0 THEN 3 ELSE 2 END, 1700000000000 + i, 6, 6, 1700000000000 + i, "
        "'https://hooks.example.com:443' FROM n");
    (void)c->exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                  std::to_string(kRows) +
                  ") INSERT INTO delivery_bodies (seq, body) SELECT i, zeroblob(200) FROM n");
    (void)c->exec("COMMIT");
    (void)c->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  s.queue = std::move(*SqliteQueue::open({.path = s.path}));
  s.raw = std::move(*sqlite::Connection::open(s.path, false));
  return s;
}

Store& store() {
  static Store s = build_store();
  return s;
}

// Drops the listing indexes, or puts them back exactly as the schema defines them (partial ones
// included), from the definitions the store was created with.
void set_listing_indexes(bool present) {
  static const std::vector<std::string> definitions = [] {
    std::vector<std::string> out;
    for (const char* index : kListingIndexes) {
      auto row = store().raw->prepare("SELECT sql FROM sqlite_master WHERE name = ?1");
      (*row)->bind(1, std::string(index));
      if ((*row)->step() == SQLITE_ROW) {
        const std::string sql = (*row)->text(0);
        out.push_back("CREATE INDEX IF NOT EXISTS" +
                      sql.substr(std::string("CREATE INDEX").size()));
      }
    }
    return out;
  }();
  for (const char* index : kListingIndexes) {
    if (!present) (void)store().raw->exec("DROP INDEX IF EXISTS " + std::string(index));
  }
  if (present) {
    for (const std::string& sql : definitions) (void)store().raw->exec(sql);
  }
}

// range(0): 0 for the first page, 1 for the deep one.
void BM_ListDeadBefore(benchmark::State& state) {
  set_listing_indexes(false);
  const std::int64_t after = state.range(0) == 0 ? 0 : kDeepAfter;
  for (auto _ : state) {
    auto rows = store().raw->prepare(kListBefore);
    (*rows)->bind(1, after).bind(2, std::int64_t{3}).bind_null(3).bind(4, kPage + 1);
    std::int64_t found = 0;
    while ((*rows)->step() == SQLITE_ROW) ++found;
    if (found < (state.range(0) == 0 ? kPage : 300 - 250)) {
      state.SkipWithError("too few dead rows listed");
      break;
    }
    benchmark::DoNotOptimize(found);
  }
}

void BM_ListDeadAfter(benchmark::State& state) {
  set_listing_indexes(true);
  const std::string cursor = state.range(0) == 0 ? "" : std::to_string(kDeepAfter);
  for (auto _ : state) {
    Result<DeliveryPage> page = store().queue->list({.state = DeliveryState::kDead,
                                                     .limit = static_cast<std::size_t>(kPage),
                                                     .cursor = cursor});
    if (!page.ok() || page->items.empty()) {
      state.SkipWithError("listing failed");
      break;
    }
    benchmark::DoNotOptimize(page->items.data());
  }
}

BENCHMARK(BM_ListDeadBefore)->Arg(0)->Arg(1)->ArgNames({"deep"})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ListDeadAfter)->Arg(0)->Arg(1)->ArgNames({"deep"})->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace callbackd

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(callbackd::bench_dir());
  return 0;
}
