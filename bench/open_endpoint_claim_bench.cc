// Claims while one endpoint is open with a large backlog due: before (its rows skipped through
// ClaimRequest::skip_hosts, which the claim walks past one by one) and after Queue::defer_host
// moved them to the probe time (out of the due range), in one run on one store.
//   build/release/bench/callbackd_open_endpoint_claim_bench [open_rows=100000]
// Prints the median time of a 64-row claim both ways, their ratio, and the time the deferral
// took (statements of 10 k rows, as the dispatcher runs them).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "sqlite/sqlite_queue.h"

namespace callbackd {
namespace {

using Stopwatch = std::chrono::steady_clock;
constexpr Millis kLease{30000};
constexpr const char* kOpenHost = "https://dead.example:443";
constexpr std::int64_t kLiveRows = 10'000;
constexpr int kClaims = 50;

// The open host's rows are the oldest due, so an unhelped claim walks all of them first.
void seed(const std::string& path, std::int64_t open_rows) {
  { auto queue = SqliteQueue::open({.path = path}); }  // creates the schema
  std::filesystem::remove(path + ".lock");
  auto c = std::move(*sqlite::Connection::open(path, true));
  for (const char* sql :
       {"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF",
        "INSERT INTO apps VALUES ('app_1', 'bench', 0, x'00', x'', NULL, 0)", "BEGIN"}) {
    (void)c->exec(sql);
  }
  const std::int64_t total = open_rows + kLiveRows;
  (void)c->exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                std::to_string(total) +
                ") INSERT INTO deliveries (seq, id, app_id, task_id, callback_url, state, due_at, "
                "attempts_made, budget_used, created_at, host_key) SELECT i, "
                "printf('dlv_%012d', i), 'app_1', printf('task_%012d', i), 'https://x/cb', 0, "
                "1700000000000 + i, 0, 0, 0, CASE WHEN i <= " +
                std::to_string(open_rows) + " THEN '" + kOpenHost +
                "' ELSE 'https://live' || (i % 50) || '.example:443' END FROM n");
  (void)c->exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                std::to_string(total) +
                ") INSERT INTO delivery_bodies (seq, body) SELECT i, zeroblob(256) FROM n");
  (void)c->exec("COMMIT");
}

// Median microseconds of a 64-row claim skipping the open host; claimed rows go back due now.
double median_claim_us(SqliteQueue& queue) {
  std::vector<double> us;
  for (int i = 0; i < kClaims; ++i) {
    const auto start = Stopwatch::now();
    auto claimed = queue.claim({.limit = 64, .lease = kLease, .skip_hosts = {kOpenHost}});
    us.push_back(std::chrono::duration<double, std::micro>(Stopwatch::now() - start).count());
    if (!claimed.ok() || claimed->size() != 64) {
      std::fprintf(stderr, "claim did not return 64 rows\n");
      std::exit(1);
    }
    std::vector<LeaseToken> tokens;
    for (const auto& d : *claimed) tokens.push_back(d.lease);
    (void)queue.release(tokens, Millis(0));
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

}  // namespace
}  // namespace callbackd

int main(int argc, char** argv) {
  using namespace callbackd;
  const std::int64_t open_rows = argc > 1 ? std::atoll(argv[1]) : 100'000;
  const char* base = std::getenv("TMPDIR");
  const std::string path = std::string(base ? base : "/tmp") + "/callbackd-open-endpoint-bench-" +
                           std::to_string(getpid()) + ".db";
  seed(path, open_rows);
  auto queue = SqliteQueue::open({.path = path});
  if (!queue.ok()) {
    std::fprintf(stderr, "%s\n", queue.status().to_string().c_str());
    return 1;
  }
  const double before = median_claim_us(**queue);
  const auto start = Stopwatch::now();
  std::size_t moved = 0, statements = 0;
  HostDeferral request{kOpenHost, Millis(30000), std::nullopt, 10'000};
  for (;;) {
    auto batch = (*queue)->scheduling_hints()->defer_host(request);
    if (!batch.ok()) return 1;
    moved += batch->moved;
    ++statements;
    if (batch->moved < request.limit) break;
    request.until = batch->until;
  }
  const double defer_ms =
      std::chrono::duration<double, std::milli>(Stopwatch::now() - start).count();
  const double after = median_claim_us(**queue);
  std::printf(
      "open host with %lld due rows, claim of 64 (median of %d):\n"
      "  skipped (skip_hosts only): %.0f us\n  deferred (defer_host):     %.0f us\n"
      "  ratio %.1fx; deferring %zu rows took %.0f ms in %zu statements\n",
      static_cast<long long>(open_rows), kClaims, before, after, before / after, moved, defer_ms,
      statements);
  queue->reset();
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(path + suffix);
}
