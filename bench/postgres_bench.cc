// The PostgreSQL store against what PostgreSQL itself does in the same run, on a throw-away
// cluster of its own (tests/support/postgres-cluster; fsync off, synchronous_commit on):
//   1. durable enqueue (group commit, 4096 in flight) vs raw batched INSERTs of the same rows;
//   2. the cost of claiming 64 due rows with 10 k and with 1 M rows waiting.
//
//   callbackd_postgres_bench [rows=20000] [repetitions=3]
// Prints medians; compare ratios, the machine is shared.
#include <callbackd/postgres_store.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "postgres_cluster.h"

namespace {

using namespace callbackd;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::unique_ptr<Queue> open_queue(const std::string& conninfo) {
  auto queue = open_postgres_queue({.conninfo = conninfo});
  if (!queue.ok()) {
    std::fprintf(stderr, "%s\n", queue.status().to_string().c_str());
    std::exit(1);
  }
  StoredApp app;
  app.app.id = "app_1";
  app.app.name = "bench";
  app.sealed_secret = "sealed";
  (void)(*queue)->insert_app(app);
  return std::move(*queue);
}

const std::string kBody(600, 'x');  // about a finished task's JSON

double enqueue_rate(Queue& queue, int rows, int round) {
  auto body = std::make_shared<const std::string>(kBody);
  std::mutex mutex;
  std::condition_variable room;
  int outstanding = 0;
  const auto start = Clock::now();
  for (int i = 0; i < rows; ++i) {
    {
      std::unique_lock lock(mutex);
      room.wait(lock, [&] { return outstanding < 4096; });  // at most 4096 in flight
      ++outstanding;
    }
    const std::string task = std::to_string(round) + "-" + std::to_string(i);
    queue.enqueue_async(
        NewDelivery{"dlv_" + task, "app_1", task, "https://a.example/hook", "https://a.example:443",
                    body, system_clock()->now(), std::nullopt},
        [&](Result<Enqueued> r) {
          if (!r.ok()) std::fprintf(stderr, "%s\n", r.status().to_string().c_str());
          std::lock_guard lock(mutex);
          --outstanding;
          room.notify_one();
        });
  }
  queue.drain();
  return rows / seconds_since(start);
}

void exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
    std::fprintf(stderr, "%s: %s\n", sql.substr(0, 60).c_str(), PQresultErrorMessage(r));
    std::exit(1);
  }
  PQclear(r);
}

// The same rows, 1000 per transaction, with one multi-row INSERT each: the ceiling.
double raw_insert_rate(const std::string& conninfo, int rows, int round) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  // The same shape and indexes as the queue's table.
  exec(c, "SET client_min_messages = warning");
  exec(c, "CREATE TABLE IF NOT EXISTS raw (LIKE deliveries INCLUDING ALL)");
  const auto start = Clock::now();
  for (int done = 0; done < rows;) {
    std::string sql =
        "BEGIN; INSERT INTO raw (id, app_id, task_id, callback_url, body, state, due_at, "
        "created_at, host_key) VALUES ";
    for (int i = 0; i < 1000 && done < rows; ++i, ++done) {
      const std::string task = std::to_string(round) + "-" + std::to_string(done);
      if (i > 0) sql += ',';
      sql += "('dlv_" + task + "','app_1','" + task + "','https://a.example/hook','" + kBody +
             "',0,0,0,'https://a.example:443')";
    }
    sql += "; COMMIT";
    exec(c, sql);
  }
  const double rate = rows / seconds_since(start);
  PQfinish(c);
  return rate;
}

// Median time of claiming 64 due rows (and giving them back) with `waiting` rows pending.
double claim_micros(const std::string& conninfo, int waiting) {
  auto queue = open_queue(conninfo);
  PGconn* c = PQconnectdb(conninfo.c_str());
  exec(c,
       "INSERT INTO deliveries (id, app_id, task_id, callback_url, body, state, due_at, "
       "created_at, host_key) SELECT 'w' || g, 'app_1', 'w' || g, 'https://a.example/', "
       "'\\x7b7d', 0, g, 0, 'https://h' || (g % 1000) || '.example:443' "
       "FROM generate_series(1, " +
           std::to_string(waiting) + ") AS g");
  exec(c, "ANALYZE deliveries");
  PQfinish(c);
  std::vector<double> times;
  for (int i = 0; i < 200; ++i) {
    const auto start = Clock::now();
    auto claimed = queue->claim({.limit = 64, .lease = std::chrono::seconds(30)});
    times.push_back(seconds_since(start) * 1e6);
    std::vector<LeaseToken> tokens;
    for (const auto& d : *claimed) tokens.push_back(d.lease);
    (void)queue->release(tokens, Millis(0));
  }
  return median(times);
}

}  // namespace

int main(int argc, char** argv) {
  const int rows = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int repetitions = argc > 2 ? std::atoi(argv[2]) : 3;
  testing::PostgresCluster cluster;

  std::vector<double> ours, raw;
  {
    auto queue = open_queue(cluster.conninfo());
    for (int r = 0; r < repetitions; ++r) {
      ours.push_back(enqueue_rate(*queue, rows, r));
      raw.push_back(raw_insert_rate(cluster.conninfo(), rows, r));
    }
  }
  std::printf(
      "enqueue, %d rows x %d: callbackd %.0f rows/s, raw 1000-row INSERTs %.0f rows/s, "
      "ratio %.2f\n",
      rows, repetitions, median(ours), median(raw), median(ours) / median(raw));

  for (int waiting : {10000, 1000000}) {
    const std::string name = "claim_" + std::to_string(waiting);
    testing::run_postgres_sql(cluster.conninfo(), "CREATE DATABASE " + name);
    std::printf("claim 64 with %d waiting: median %.0f us\n", waiting,
                claim_micros(cluster.conninfo() + " dbname=" + name, waiting));
  }
  return 0;
}
