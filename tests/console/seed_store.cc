// Fills a fresh SQLite store with delivered callbacks before a daemon opens it, fast: the
// queue's batched enqueue (rows stored already claimed) and batched records, as the engine
// itself writes them. For the browser test's "a dead callback among a million".
//
//   seed_store --data-dir DIR --count N
//
// Creates one app ("seeded", its secret sealed under DIR/callbackd.db.key, the daemon's
// default key file) and N deliveries to https://seeded.example/hooks/music, each delivered by
// one 200 attempt. Prints {"app_id","count","seconds"} on stdout.
#include <callbackd/engine.h>
#include <callbackd/sqlite_store.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "intake/ids.h"

namespace {

using namespace callbackd;
using namespace std::chrono_literals;

constexpr std::size_t kChunk = 20000;  // rows enqueued, then recorded, at a time

int fail(const std::string& message) {
  std::fprintf(stderr, "seed_store: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir;
  long count = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--data-dir")
      data_dir = argv[i + 1];
    else if (flag == "--count")
      count = std::strtol(argv[i + 1], nullptr, 10);
    else
      return fail("unknown flag " + flag);
  }
  if (data_dir.empty() || count < 0) return fail("usage: seed_store --data-dir DIR --count N");

  const auto started = std::chrono::steady_clock::now();
  const std::string db = data_dir + "/callbackd.db";
  Result<std::unique_ptr<Queue>> opened = open_sqlite_queue({.path = db});
  if (!opened.ok()) return fail(opened.status().to_string());
  std::shared_ptr<Queue> queue = std::move(*opened);
  Result<std::unique_ptr<Engine>> engine =
      Engine::open({.queue = queue, .master_key_file = db + ".key"});
  if (!engine.ok()) return fail(engine.status().to_string());
  Result<AppWithSecret> app = (*engine)->create_app("seeded");
  if (!app.ok()) return fail(app.status().to_string());

  const TimePoint now = system_clock()->now();
  std::mutex mutex;
  std::vector<LeaseToken> leased;
  Status first_error = Status::Ok();
  for (long begin = 0; begin < count; begin += kChunk) {
    const long end = std::min<long>(count, begin + kChunk);
    leased.clear();
    for (long i = begin; i < end; ++i) {
      const std::string task = "seed_" + std::to_string(i);
      // Spread over the last few days, oldest first, as a long-running pipeline's would be.
      const TimePoint created = now - Millis((count - i) * 300);
      NewDelivery d{
          new_delivery_id(created),
          app->app.id,
          task,
          "https://seeded.example/hooks/music",
          "https://seeded.example:443",
          std::make_shared<const std::string>(
              R"({"task_id":")" + task +
              R"(","status":"completed","results":[{"id":"clip_1","audio_url":"https://cdn.example/1.mp3","title":"Night Drive","duration":182.5}]})"),
          created,
          Millis(std::chrono::hours(1))};
      queue->enqueue_async(std::move(d), [&](Result<Enqueued> r) {
        std::lock_guard lock(mutex);
        if (!r.ok()) {
          if (first_error.ok()) first_error = r.status();
        } else if (r->lease) {
          leased.push_back(*r->lease);
        }
      });
    }
    queue->drain();
    if (!first_error.ok()) return fail(first_error.to_string());
    std::vector<AttemptRecord> records;
    records.reserve(leased.size());
    for (const LeaseToken& token : leased) {
      Attempt attempt;
      attempt.number = 1;
      attempt.started_at = now;
      attempt.duration = 35ms;
      attempt.http_status = 200;
      attempt.response_head = R"({"ok":true})";
      records.push_back(AttemptRecord{token, std::move(attempt), DeliveryState::kDelivered, 0ms});
    }
    Result<StaleTokens> stored = queue->record(records);
    if (!stored.ok()) return fail(stored.status().to_string());
    if (!stored->empty()) return fail("records refused as stale");
  }
  engine->reset();
  queue.reset();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << R"({"app_id":")" << app->app.id << R"(","count":)" << count << R"(,"seconds":)"
            << seconds << "}\n";
  return 0;
}
